"""Read call-control XML into the verb tree of ``appliance.twiml.verbs``.

Two stages, both pure (no I/O):

1. ``read_xml`` turns the text into a neutral ``Node`` tree with the line of every start tag,
   through defusedxml's parser only (no DTD entities, no external references) and with limits
   on size and nesting.
2. A reader for the document's dialect turns the nodes into verbs. ``READERS`` maps a dialect
   name to its reader: TwiML here, Plivo XML in ``appliance.twiml.plivo``. The dialect is told
   by the verbs directly inside <Response> (``detect_dialect``); one document never mixes both.

Readers collect every problem instead of stopping at the first, so ``check_twiml`` can list
them all; ``parse_twiml`` raises the first one.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from appliance.twiml.verbs import (
    BEEP_VALUES,
    CONFERENCE_EVENTS,
    CONFERENCE_RECORD_VALUES,
    DIAL_RECORD_VALUES,
    JITTER_BUFFER_SIZES,
    MAX_PARTICIPANTS,
    METHODS,
    PARTICIPANT_LABEL_MAX,
    RECORDING_EVENTS,
    REGIONS,
    REJECT_REASONS,
    TRIM_VALUES,
    Conference,
    Dial,
    DialNoun,
    Document,
    Gather,
    GatherChild,
    Hangup,
    Number,
    Pause,
    Play,
    Record,
    Redirect,
    Reject,
    Say,
    Verb,
)

# Twilio error codes.
DOCUMENT_PARSE_FAILURE = 12100
SCHEMA_VALIDATION = 12200
RESPONSE_TOO_LARGE = 11750  # "TwiML response body too large" (Twilio's limit is 64 kB)

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DEPTH = 32


log = logging.getLogger(__name__)


class TwimlError(Exception):
    """A problem in a document: a Twilio error ``code``, a ``message`` and the source ``line``."""

    def __init__(
        self, code: int, message: str, line: int | None = None, warning: bool = False
    ) -> None:
        super().__init__(code, message, line)
        self.code = code
        self.message = message
        self.line = line
        self.warning = warning  # reported, but the document still runs (as on Twilio)

    @property
    def kind(self) -> str:
        return "warning" if self.warning else "error"

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.kind} {self.code}: {self.message}{where}"


# --- stage 1: XML to nodes ------------------------------------------------------------------


@dataclass
class Node:
    """One element: its tag, attributes, start line and content (text and child nodes, in order)."""

    tag: str
    attrib: dict[str, str]
    line: int
    content: list[Node | str] = field(default_factory=list)

    @property
    def children(self) -> list[Node]:
        return [item for item in self.content if isinstance(item, Node)]

    @property
    def text(self) -> str:
        """The text directly inside this element (not inside its children)."""
        return "".join(item for item in self.content if isinstance(item, str))


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _NodeBuilder:
    """Parser target building ``Node``s; ``line_of`` reads expat's current line."""

    def __init__(self) -> None:
        self.line_of: Callable[[], int] = lambda: 0
        self.root: Node | None = None
        self._stack: list[Node] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise _TooDeep(self.line_of())
        node = Node(tag, dict(attrib), self.line_of())
        if self._stack:
            self._stack[-1].content.append(node)
        else:
            self.root = node
        self._stack.append(node)

    def end(self, tag: str) -> None:
        self._stack.pop()

    def data(self, text: str) -> None:
        if self._stack:
            self._stack[-1].content.append(text)

    def close(self) -> Node | None:
        return self.root


_POSITION_SUFFIX = re.compile(r": line \d+, column (\d+)$")


def read_xml(data: str | bytes) -> Node:
    """Parse ``data`` into nodes; raise ``TwimlError`` for unsafe, oversized or broken XML."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise TwimlError(
            RESPONSE_TOO_LARGE,
            f"document is {len(raw)} bytes, more than the limit of {MAX_DOCUMENT_BYTES} (64 KiB)",
        )
    builder = _NodeBuilder()
    parser = DefusedXMLParser(target=builder)
    expat = parser.parser
    builder.line_of = lambda: expat.CurrentLineNumber
    try:
        parser.feed(raw)
        root = parser.close()
    except ParseError as exc:
        reason = _POSITION_SUFFIX.sub(r" at column \1", str(exc))
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE, f"document is not well-formed XML: {reason}", exc.position[0]
        ) from None
    except EntitiesForbidden:
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE, "entity declarations are not allowed", expat.CurrentLineNumber
        ) from None
    except ExternalReferenceForbidden:
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE,
            "external entity references are not allowed",
            expat.CurrentLineNumber,
        ) from None
    except DefusedXmlException as exc:
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE, f"forbidden XML construct: {exc}", expat.CurrentLineNumber
        ) from None
    except _TooDeep as exc:
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE, f"elements are nested more than {MAX_DEPTH} deep", exc.line
        ) from None
    if root is None:
        raise TwimlError(DOCUMENT_PARSE_FAILURE, "document has no root element")
    return root


# --- stage 2: nodes to verbs ----------------------------------------------------------------


class Problems:
    """The problems found in one document, in the order they were found."""

    def __init__(self) -> None:
        self.errors: list[TwimlError] = []

    def add(
        self, node: Node, message: str, code: int = SCHEMA_VALIDATION, warning: bool = False
    ) -> None:
        self.errors.append(TwimlError(code, message, node.line, warning))


Reader = Callable[[Node, Problems], tuple[Verb, ...]]

T = TypeVar("T")


def _did_you_mean(name: str, candidates: Iterable[str], fmt: str = '"{}"') -> str:
    options = sorted(candidates)
    by_case = [option for option in options if option.lower() == name.lower()]
    close = by_case or difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {fmt.format(close[0])}?)" if close else ""


class Attributes:
    """Reads one element's attributes; a bad value is reported and replaced by its default."""

    def __init__(self, node: Node, problems: Problems) -> None:
        self._node = node
        self._problems = problems
        self._known: set[str] = set()

    def get(self, name: str, convert: Callable[[str], T], default: T) -> T:
        self._known.add(name)
        raw = self._node.attrib.get(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except ValueError as exc:
            self._problems.add(self._node, f'<{self._node.tag}> attribute {name}="{raw}": {exc}')
            return default

    def finish(self, ignored: Collection[str] = ()) -> None:
        """Warn of attributes never asked for; ``ignored`` ones are valid but have no effect here.

        Twilio ignores an unknown attribute with a 12200 warning and runs the document (the
        seeds' own bridging example spells ``startConferenceOnJoin``), so this does too.
        """
        known = self._known | set(ignored)
        for name in self._node.attrib:
            if name not in known:
                hint = _did_you_mean(name, known)
                message = f'<{self._node.tag}> has no attribute "{name}"{hint}; ignored'
                self._problems.add(self._node, message, warning=True)


# --- attribute value converters: raise ValueError with the expectation -----------------------


def _listing(values: Collection[str]) -> str:
    quoted = [f'"{value}"' for value in values]
    return "one of " + ", ".join(quoted[:-1]) + " or " + quoted[-1]


def as_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise ValueError('must be "true" or "false"')


def as_integer(low: int, high: int | None = None) -> Callable[[str], int]:
    if high is not None:
        expected = f"must be a whole number from {low} to {high}"
    else:
        expected = f"must be a whole number, {low} or more"

    def convert(raw: str) -> int:
        text = raw.strip()
        if not re.fullmatch(r"[0-9]+", text):
            raise ValueError(expected)
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError(expected)
        return value

    return convert


def one_of(*allowed: str) -> Callable[[str], str]:
    """Case-insensitive match against ``allowed``, returning the canonical spelling."""
    lookup = {value.lower(): value for value in allowed}

    def convert(raw: str) -> str:
        try:
            return lookup[raw.strip().lower()]
        except KeyError:
            raise ValueError(f"must be {_listing(allowed)}") from None

    return convert


def as_events(*allowed: str) -> Callable[[str], tuple[str, ...]]:
    """Space- (or comma-) separated names from ``allowed``."""
    pick = one_of(*allowed)

    def convert(raw: str) -> tuple[str, ...]:
        events = []
        for name in raw.replace(",", " ").split():
            try:
                events.append(pick(name))
            except ValueError:
                expected = " ".join(allowed)
                raise ValueError(f'"{name}" is not an event; events are {expected}') from None
        return tuple(dict.fromkeys(events))

    return convert


def as_text(raw: str) -> str:
    return raw


def as_url(raw: str) -> str:
    return raw.strip()


def as_optional(raw: str) -> str | None:
    """A URL or name that may be left empty."""
    return raw.strip() or None


def as_digits(allowed: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        value = raw.strip()
        if not value or any(char not in allowed for char in value):
            raise ValueError(f"must be made of {' '.join(allowed)}")
        return value

    return convert


def _label(raw: str) -> str:
    if not raw or len(raw) > PARTICIPANT_LABEL_MAX:
        raise ValueError(f"must be 1 to {PARTICIPANT_LABEL_MAX} characters")
    return raw


def _finish_on_key(raw: str) -> str:
    value = raw.strip()
    if len(value) > 1 or (value and value not in "0123456789*#"):
        raise ValueError('must be one key of 0-9, * or #, or "" for none')
    return value


def _finish_on_keys(raw: str) -> str:
    """<Record>'s finishOnKey: any of the keys, or "" for none."""
    value = raw.strip()
    if any(char not in "0123456789*#" for char in value):
        raise ValueError('must be keys of 0-9, * and #, or "" for none')
    return value


def _gather_input(raw: str) -> str:
    kinds = set(raw.replace(",", " ").lower().split())
    if not kinds or not kinds <= {"dtmf", "speech"}:
        raise ValueError('must be "dtmf", "speech" or "dtmf speech"')
    return " ".join(kind for kind in ("dtmf", "speech") if kind in kinds)


def _speech_timeout(raw: str) -> str:
    value = raw.strip().lower()
    if value == "auto" or re.fullmatch(r"[0-9]+", value):
        return value
    raise ValueError('must be "auto" or a whole number of seconds')


as_method = one_of(*METHODS)
as_count = as_integer(0)
_PHONE = re.compile(r"\+?[0-9][0-9 ().-]*")
_DTMF = "0123456789*#wW"


# --- TwiML ----------------------------------------------------------------------------------

SSML_TAGS = frozenset(
    {"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"}
)
# Valid on Twilio, but not run by this appliance.
UNSUPPORTED_VERBS = frozenset(
    {"Enqueue", "Leave", "Connect", "Start", "Stop", "Refer", "Sms", "Echo", "Pay"}
)
UNSUPPORTED_NOUNS = frozenset({"Client", "Sip", "Queue", "Application", "WhatsApp"})


def _no_content(node: Node, problems: Problems) -> None:
    for child in node.children:
        problems.add(child, f"<{node.tag}> cannot contain <{child.tag}>")
    if node.text.strip():
        problems.add(node, f"<{node.tag}> takes no text")


def _text_only(node: Node, problems: Problems) -> str:
    for child in node.children:
        problems.add(child, f"<{node.tag}> cannot contain <{child.tag}>")
    return node.text.strip()


def _speech_text(node: Node, problems: Problems, tags: Collection[str] = SSML_TAGS) -> str:
    """The words of a <Say> (or Plivo <Speak>), with SSML ``tags`` flattened to their text."""
    parts: list[str] = []

    def walk(element: Node) -> None:
        for item in element.content:
            if isinstance(item, str):
                parts.append(item)
            elif item.tag not in tags:
                problems.add(item, f"<{node.tag}> cannot contain <{item.tag}>")
            elif item.tag == "sub" and "alias" in item.attrib:
                parts.append(f" {item.attrib['alias']} ")
            else:
                parts.append(" ")
                walk(item)
                parts.append(" ")

    walk(node)
    return " ".join("".join(parts).split())


def _read_say(node: Node, problems: Problems) -> Say:
    attrs = Attributes(node, problems)
    say = Say(
        text=_speech_text(node, problems),
        voice=attrs.get("voice", as_text, "man"),
        language=attrs.get("language", as_text, "en-US"),
        loop=attrs.get("loop", as_count, 1),
        line=node.line,
    )
    attrs.finish()
    if not say.text:
        problems.add(node, "<Say> has no text to say")
    return say


def _read_play(node: Node, problems: Problems) -> Play:
    attrs = Attributes(node, problems)
    play = Play(
        url=_text_only(node, problems),
        loop=attrs.get("loop", as_count, 1),
        digits=attrs.get("digits", as_digits(_DTMF), None),
        line=node.line,
    )
    attrs.finish()
    if not play.url and play.digits is None:
        problems.add(node, "<Play> needs a URL or a digits attribute")
    return play


def _read_pause(node: Node, problems: Problems) -> Pause:
    attrs = Attributes(node, problems)
    pause = Pause(length=attrs.get("length", as_count, 1), line=node.line)
    attrs.finish()
    _no_content(node, problems)
    return pause


def _read_hangup(node: Node, problems: Problems) -> Hangup:
    Attributes(node, problems).finish()
    _no_content(node, problems)
    return Hangup(line=node.line)


def _read_reject(node: Node, problems: Problems) -> Reject:
    attrs = Attributes(node, problems)
    reject = Reject(reason=attrs.get("reason", one_of(*REJECT_REASONS), "rejected"), line=node.line)
    attrs.finish()
    _no_content(node, problems)
    return reject


def _read_redirect(node: Node, problems: Problems) -> Redirect:
    attrs = Attributes(node, problems)
    redirect = Redirect(
        url=_text_only(node, problems),
        method=attrs.get("method", as_method, "POST"),
        line=node.line,
    )
    attrs.finish()
    if not redirect.url:
        problems.add(node, "<Redirect> needs a URL")
    return redirect


_GATHER_CHILDREN: dict[str, Callable[[Node, Problems], GatherChild]] = {
    "Say": _read_say,
    "Play": _read_play,
    "Pause": _read_pause,
}


def _read_gather(node: Node, problems: Problems) -> Gather:
    attrs = Attributes(node, problems)
    children: list[GatherChild] = []
    for child in node.children:
        reader = _GATHER_CHILDREN.get(child.tag)
        if reader is None:
            problems.add(child, f"<Gather> cannot contain <{child.tag}>")
        else:
            children.append(reader(child, problems))
    if node.text.strip():
        problems.add(node, "<Gather> takes no text; put words in a <Say>")
    gather = Gather(
        children=tuple(children),
        action=attrs.get("action", as_optional, None),
        method=attrs.get("method", as_method, "POST"),
        timeout=attrs.get("timeout", as_count, 5),
        finish_on_key=attrs.get("finishOnKey", _finish_on_key, "#"),
        num_digits=attrs.get("numDigits", as_integer(1), None),
        input=attrs.get("input", _gather_input, "dtmf"),
        language=attrs.get("language", as_text, "en-US"),
        hints=attrs.get("hints", as_text, ""),
        speech_timeout=attrs.get("speechTimeout", _speech_timeout, None),
        action_on_empty_result=attrs.get("actionOnEmptyResult", as_bool, False),
        partial_result_callback=attrs.get("partialResultCallback", as_optional, None),
        partial_result_callback_method=attrs.get("partialResultCallbackMethod", as_method, "POST"),
        line=node.line,
    )
    attrs.finish(
        ignored=("maxSpeechTime", "profanityFilter", "bargeIn", "debug", "speechModel", "enhanced")
    )
    return gather


def _read_record(node: Node, problems: Problems) -> Record:
    """TwiML's <Record>, with Twilio's defaults (Plivo's are in ``appliance.twiml.plivo``)."""
    attrs = Attributes(node, problems)
    record = Record(
        action=attrs.get("action", as_optional, None),
        method=attrs.get("method", as_method, "POST"),
        file_format="wav",
        timeout=attrs.get("timeout", as_integer(0), 5),
        max_length=attrs.get("maxLength", as_integer(1), 3600),
        play_beep=attrs.get("playBeep", as_bool, True),
        finish_on_key=attrs.get("finishOnKey", _finish_on_keys, "1234567890*#"),
        trim=attrs.get("trim", one_of(*TRIM_VALUES), "trim-silence"),
        callback_url=attrs.get("recordingStatusCallback", as_optional, None),
        callback_method=attrs.get("recordingStatusCallbackMethod", as_method, "POST"),
        recording_status_callback_event=attrs.get(
            "recordingStatusCallbackEvent", as_events(*RECORDING_EVENTS), ("completed",)
        ),
        transcribe=attrs.get("transcribe", as_bool, False),
        transcription_url=attrs.get("transcribeCallback", as_optional, None),
        line=node.line,
    )
    attrs.finish(ignored=("recordingChannels", "recordingTrack"))
    _no_content(node, problems)
    return record


def _phone_number(node: Node, problems: Problems, number: str) -> str:
    if not _PHONE.fullmatch(number):
        problems.add(node, f'<{node.tag}> "{number}" is not a phone number')
    return number


def _read_number(node: Node, problems: Problems) -> Number:
    attrs = Attributes(node, problems)
    number = Number(
        number=_phone_number(node, problems, _text_only(node, problems)),
        send_digits=attrs.get("sendDigits", as_digits(_DTMF), ""),
        url=attrs.get("url", as_optional, None),
        method=attrs.get("method", as_method, "POST"),
        line=node.line,
    )
    attrs.finish(
        ignored=(
            "statusCallbackEvent",
            "statusCallback",
            "statusCallbackMethod",
            "byoc",
            "machineDetection",
            "amdStatusCallback",
            "amdStatusCallbackMethod",
            "machineDetectionTimeout",
            "machineDetectionSpeechThreshold",
            "machineDetectionSpeechEndThreshold",
            "machineDetectionSilenceTimeout",
        )
    )
    return number


def _read_conference(node: Node, problems: Problems) -> Conference:
    attrs = Attributes(node, problems)
    conference = Conference(
        name=_text_only(node, problems),
        muted=attrs.get("muted", as_bool, False),
        beep=attrs.get("beep", one_of(*BEEP_VALUES), "true"),
        start_conference_on_enter=attrs.get("startConferenceOnEnter", as_bool, True),
        end_conference_on_exit=attrs.get("endConferenceOnExit", as_bool, False),
        wait_url=attrs.get("waitUrl", as_url, None),
        wait_method=attrs.get("waitMethod", as_method, "POST"),
        max_participants=attrs.get(
            "maxParticipants", as_integer(1, MAX_PARTICIPANTS), MAX_PARTICIPANTS
        ),
        record=attrs.get("record", one_of(*CONFERENCE_RECORD_VALUES), "do-not-record"),
        trim=attrs.get("trim", one_of(*TRIM_VALUES), "trim-silence"),
        region=attrs.get("region", one_of(*REGIONS), None),
        coach=attrs.get("coach", as_optional, None),
        status_callback_event=attrs.get("statusCallbackEvent", as_events(*CONFERENCE_EVENTS), ()),
        status_callback=attrs.get("statusCallback", as_optional, None),
        status_callback_method=attrs.get("statusCallbackMethod", as_method, "POST"),
        recording_status_callback=attrs.get("recordingStatusCallback", as_optional, None),
        recording_status_callback_method=attrs.get(
            "recordingStatusCallbackMethod", as_method, "POST"
        ),
        recording_status_callback_event=attrs.get(
            "recordingStatusCallbackEvent", as_events(*RECORDING_EVENTS), ("completed",)
        ),
        event_callback_url=attrs.get("eventCallbackUrl", as_optional, None),
        jitter_buffer_size=attrs.get("jitterBufferSize", one_of(*JITTER_BUFFER_SIZES), "large"),
        participant_label=attrs.get("participantLabel", _label, None),
        line=node.line,
    )
    attrs.finish(ignored=("recordingConfigurationId",))
    if not conference.name:
        problems.add(node, "<Conference> needs a room name")
    return conference


_DIAL_NOUNS: dict[str, Callable[[Node, Problems], DialNoun]] = {
    "Number": _read_number,
    "Conference": _read_conference,
}


def _read_dial_nouns(node: Node, problems: Problems) -> tuple[DialNoun, ...]:
    nouns: list[DialNoun] = []
    for child in node.children:
        reader = _DIAL_NOUNS.get(child.tag)
        if reader is not None:
            nouns.append(reader(child, problems))
        elif child.tag in UNSUPPORTED_NOUNS:
            problems.add(child, f"<Dial><{child.tag}> is not supported by this appliance")
        else:
            hint = _did_you_mean(child.tag, _DIAL_NOUNS, "<{}>")
            problems.add(child, f"unknown noun <{child.tag}> in <Dial>{hint}")
    number = node.text.strip()
    if number and node.children:
        problems.add(node, "<Dial> has both a number as text and nouns")
    elif number:
        nouns.append(Number(_phone_number(node, problems, number), line=node.line))
    elif not node.children:
        problems.add(node, "<Dial> needs a number or a noun such as <Conference>")
    if any(isinstance(noun, Conference) for noun in nouns) and len(nouns) > 1:
        problems.add(node, "<Conference> must be the only noun in its <Dial>")
    return tuple(nouns)


def _read_dial(node: Node, problems: Problems) -> Dial:
    attrs = Attributes(node, problems)
    dial = Dial(
        nouns=_read_dial_nouns(node, problems),
        action=attrs.get("action", as_optional, None),
        method=attrs.get("method", as_method, "POST"),
        hangup_on_star=attrs.get("hangupOnStar", as_bool, False),
        time_limit=attrs.get("timeLimit", as_integer(1), 14400),
        caller_id=attrs.get("callerId", as_optional, None),
        timeout=attrs.get("timeout", as_integer(1), 30),
        record=attrs.get("record", one_of(*DIAL_RECORD_VALUES), "do-not-record"),
        trim=attrs.get("trim", one_of(*TRIM_VALUES), "trim-silence"),
        recording_status_callback=attrs.get("recordingStatusCallback", as_optional, None),
        recording_status_callback_method=attrs.get(
            "recordingStatusCallbackMethod", as_method, "POST"
        ),
        recording_status_callback_event=attrs.get(
            "recordingStatusCallbackEvent", as_events(*RECORDING_EVENTS), ("completed",)
        ),
        answer_on_bridge=attrs.get("answerOnBridge", as_bool, False),
        ring_tone=attrs.get("ringTone", as_optional, None),
        line=node.line,
    )
    attrs.finish(
        ignored=(
            "recordingConfigurationId",
            "recordingTrack",
            "sequential",
            "referUrl",
            "referMethod",
            "events",
            "passports",
        )
    )
    return dial


TWIML_VERBS: dict[str, Callable[[Node, Problems], Verb]] = {
    "Say": _read_say,
    "Play": _read_play,
    "Pause": _read_pause,
    "Hangup": _read_hangup,
    "Reject": _read_reject,
    "Redirect": _read_redirect,
    "Gather": _read_gather,
    "Dial": _read_dial,
    "Record": _read_record,
}


def read_twiml(root: Node, problems: Problems) -> tuple[Verb, ...]:
    """The verbs of a TwiML <Response>."""
    Attributes(root, problems).finish()
    if root.text.strip():
        problems.add(root, f'text outside any verb: "{root.text.strip()[:40]}"')
    verbs: list[Verb] = []
    for node in root.children:
        reader = TWIML_VERBS.get(node.tag)
        if reader is not None:
            verbs.append(reader(node, problems))
        elif node.tag in UNSUPPORTED_VERBS:
            problems.add(node, f"<{node.tag}> is not supported by this appliance")
        else:
            hint = _did_you_mean(node.tag, TWIML_VERBS, "<{}>")
            problems.add(node, f"unknown verb <{node.tag}>{hint}")
    return tuple(verbs)


# --- dialects -------------------------------------------------------------------------------

# Top-level elements only Plivo XML has (Plivo's <Conference> is a verb, not a <Dial> noun).
PLIVO_VERBS = frozenset(
    {"Speak", "Wait", "GetDigits", "GetInput", "Conference", "PreAnswer", "DTMF", "MultiPartyCall"}
)
# Verbs both dialects have: they follow whatever else the document holds.
SHARED_VERBS = frozenset({"Play", "Hangup", "Redirect", "Record", "Dial"})
TWIML_ONLY_VERBS = (frozenset(TWIML_VERBS) | UNSUPPORTED_VERBS) - SHARED_VERBS
# Attributes of shared verbs that only Plivo XML has: they make the document Plivo XML
# (Plivo's own reject example is a lone <Hangup reason="rejected"/>).
PLIVO_ONLY_ATTRIBUTES = {
    "Hangup": frozenset({"reason", "schedule"}),
    "Record": frozenset({"fileFormat", "redirect", "callbackUrl", "callbackMethod",
                         "recordSession", "startOnDialAnswer", "transcriptionType",
                         "transcriptionUrl", "transcriptionMethod"}),
}


def _is_plivo_only(node: Node) -> bool:
    if node.tag in PLIVO_VERBS:
        return True
    return bool(PLIVO_ONLY_ATTRIBUTES.get(node.tag, frozenset()) & node.attrib.keys())


def detect_dialect(root: Node) -> str:
    """The dialect of a <Response>: "plivo" when it holds Plivo-only verbs (or shared verbs with
    attributes only Plivo has), else "twiml".

    A document of shared verbs only reads as TwiML; one holding verbs only Plivo XML has and
    verbs only TwiML has is refused with both named.
    """
    plivo = next((child for child in root.children if _is_plivo_only(child)), None)
    if plivo is None:
        return "twiml"
    twiml = next((child for child in root.children if child.tag in TWIML_ONLY_VERBS), None)
    if twiml is not None:
        later = max(plivo, twiml, key=lambda node: node.line)
        raise TwimlError(
            SCHEMA_VALIDATION,
            f"document mixes Plivo XML and TwiML: <{plivo.tag}> (line {plivo.line}) is Plivo XML,"
            f" <{twiml.tag}> (line {twiml.line}) is TwiML",
            later.line,
        )
    return "plivo"


def _read_plivo(root: Node, problems: Problems) -> tuple[Verb, ...]:
    # The Plivo reader builds on this module's Attributes and converters: imported on use.
    from appliance.twiml.plivo import read_plivo

    return read_plivo(root, problems)


READERS: dict[str, Reader] = {"twiml": read_twiml, "plivo": _read_plivo}


def _parse(data: str | bytes, source: str) -> tuple[Document, list[TwimlError]]:
    root = read_xml(data)
    if root.tag != "Response":
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE,
            f"the root element must be <Response>, not <{root.tag}>",
            root.line,
        )
    dialect = detect_dialect(root)
    problems = Problems()
    verbs = READERS[dialect](root, problems)
    errors = sorted(problems.errors, key=lambda error: error.line or 0)
    return Document(verbs, dialect, source), errors


def parse_twiml(text: str | bytes, source: str = "") -> Document:
    """Parse a document; raise ``TwimlError`` (the first error in the document) if invalid.

    Warnings (unknown attributes) are logged and the document runs, as on Twilio.
    """
    document, problems = _parse(text, source)
    for problem in problems:
        if not problem.warning:
            raise problem
    for problem in problems:
        log.warning("%s: %s", source or "document", problem)
    return document


def check_twiml(text: str | bytes, source: str = "") -> list[TwimlError]:
    """Every problem in a document (errors and warnings), in line order; empty when clean."""
    try:
        return _parse(text, source)[1]
    except TwimlError as exc:
        return [exc]
