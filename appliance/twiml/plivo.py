"""Read Plivo XML into the verb tree of ``appliance.twiml.verbs``.

The same ``Node`` tree and the same ``Attributes``/``Problems`` machinery as TwiML
(``appliance.twiml.parse``), with Plivo's elements, attribute names, allowed values and
defaults, from Plivo's XML reference (seed 004 for <Conference>). Plivo element and attribute
names are case-sensitive ("camelCased"), as on Plivo. Shared verbs map onto the TwiML
dataclasses (<Speak> is a ``Say``, <Wait> a ``Pause``); Plivo-only ones have their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from appliance.twiml.parse import (
    SSML_TAGS,
    Attributes,
    Node,
    Problems,
    _did_you_mean,
    _no_content,
    _phone_number,
    _speech_text,
    _text_only,
    as_bool,
    as_count,
    as_digits,
    as_integer,
    as_method,
    as_optional,
    as_text,
    one_of,
)
from appliance.twiml.verbs import (
    PLIVO_BEEPS,
    PLIVO_CHANNEL_TYPES,
    PLIVO_CONFERENCE_TIME_LIMIT,
    PLIVO_HANGUP_REASONS,
    PLIVO_MAX_MEMBERS,
    PLIVO_RECORD_FORMATS,
    PLIVO_TRANSCRIPTION_TYPES,
    Dial,
    DialNoun,
    GatherChild,
    GetDigits,
    Hangup,
    Number,
    Pause,
    Play,
    PlivoConference,
    PreAnswer,
    Record,
    Redirect,
    Say,
    SendDigits,
    User,
    Verb,
)

# Plivo's <Speak> also takes <cont> (a continuation the builders turn into a space).
SPEAK_TAGS = SSML_TAGS | {"cont"}
# Valid on Plivo, but not run by this appliance.
UNSUPPORTED_VERBS = frozenset({"GetInput", "MultiPartyCall", "Message", "Stream"})
# What TwiML writers reach for, and Plivo's name for it.
TWIML_NAMES = {"Say": "Speak", "Pause": "Wait"}

KEYS = "0123456789*#"
DTMF = "0123456789*#wW"
URL_SCHEMES = ("http", "https", "file")
CALLER_NAME_MAX = 50
_POLLY_VOICE = re.compile(r"Polly\.[A-Za-z]+(-Neural)?")
_SIP_HEADER_PART = re.compile(r"[A-Za-z0-9]*")


# --- attribute value converters: raise ValueError with the expectation -----------------------


def as_url(raw: str) -> str | None:
    """An http(s) URL, or a path resolved against the document's own URL; "" means none."""
    value = raw.strip()
    scheme = urlsplit(value).scheme
    if scheme and scheme.lower() not in URL_SCHEMES:
        raise ValueError("must be an http(s) URL or a path relative to the document")
    return value or None


def as_sound(raw: str) -> str:
    """An enter/exit sound: "" (none), "beep:1", "beep:2" or a URL."""
    value = raw.strip()
    if value.lower() in PLIVO_BEEPS:
        return value.lower()
    try:
        return as_url(value) or ""
    except ValueError:
        raise ValueError('must be "", "beep:1", "beep:2" or a URL') from None


def as_voice(raw: str) -> str:
    """WOMAN or MAN (kept as TwiML's "woman"/"man"), or an Amazon Polly voice."""
    value = raw.strip()
    if value.upper() in ("WOMAN", "MAN"):
        return value.lower()
    if _POLLY_VOICE.fullmatch(value):
        return value
    raise ValueError('must be "WOMAN", "MAN" or a Polly voice such as "Polly.Joanna"')


def as_key(raw: str) -> str:
    """One key that ends the input; "" or "none" for none."""
    value = raw.strip()
    if value.lower() == "none":
        return ""
    if len(value) > 1 or (value and value not in KEYS):
        raise ValueError('must be one key of 0-9, * or #, or "none"')
    return value


def as_keys(raw: str) -> str:
    """Keys that stop a recording; "" or "none" for none."""
    value = raw.strip()
    if value.lower() == "none":
        return ""
    if any(char not in KEYS for char in value):
        raise ValueError('must be keys of 0-9, * and #, or "none"')
    return value


def as_valid_digits(raw: str) -> str:
    value = raw.strip()
    if not value or any(char not in KEYS for char in value):
        raise ValueError("must be keys of 0-9, * and #")
    return value


def as_digit_patterns(raw: str) -> tuple[str, ...]:
    """Key patterns separated by commas, such as "#0,99,000"."""
    if not raw.strip():
        return ()
    patterns = tuple(pattern.strip() for pattern in raw.split(","))
    if any(not pattern or any(char not in KEYS for char in pattern) for pattern in patterns):
        raise ValueError('must be patterns of 0-9, * and # separated by commas, such as "#0,99"')
    return patterns


def as_sip_headers(raw: str) -> tuple[tuple[str, str], ...]:
    """name=value pairs separated by commas, letters and digits only (Plivo adds X-PH-)."""
    if not raw.strip():
        return ()
    headers = []
    for item in raw.split(","):
        name, equals, value = item.strip().partition("=")
        if not (equals and name and _SIP_HEADER_PART.fullmatch(name + value)):
            raise ValueError(
                "must be name=value pairs separated by commas, letters and digits only"
            )
        headers.append((name, value))
    return tuple(headers)


def as_dial_music(raw: str) -> str | None:
    """A URL returning Play/Speak/Wait, or "real" for the called party's own ringback."""
    if raw.strip().lower() == "real":
        return "real"
    return as_url(raw)


def as_caller_name(raw: str) -> str:
    if len(raw) > CALLER_NAME_MAX:
        raise ValueError(f"must be at most {CALLER_NAME_MAX} characters")
    return raw


as_positive = as_integer(1)
as_transcription = one_of(*PLIVO_TRANSCRIPTION_TYPES)


# --- content --------------------------------------------------------------------------------


def _hint(tag: str) -> str:
    plivo = TWIML_NAMES.get(tag)
    return f" (Plivo XML uses <{plivo}>)" if plivo else ""


def _prompts(node: Node, problems: Problems, unsupported: frozenset[str]) -> list[GatherChild]:
    """The nested <Speak>, <Play> and <Wait> of a <GetDigits> or <PreAnswer>."""
    children: list[GatherChild] = []
    for child in node.children:
        reader = _PROMPTS.get(child.tag)
        if reader is not None:
            children.append(reader(child, problems))
        elif child.tag in unsupported:
            problems.add(child, f"<{node.tag}><{child.tag}> is not supported by this appliance")
        else:
            problems.add(child, f"<{node.tag}> cannot contain <{child.tag}>{_hint(child.tag)}")
    if node.text.strip():
        problems.add(node, f"<{node.tag}> takes no text; put words in a <Speak>")
    return children


# --- verbs ----------------------------------------------------------------------------------


def _read_speak(node: Node, problems: Problems) -> Say:
    attrs = Attributes(node, problems)
    say = Say(
        text=_speech_text(node, problems, SPEAK_TAGS),
        voice=attrs.get("voice", as_voice, "woman"),
        language=attrs.get("language", as_text, "en-US"),
        loop=attrs.get("loop", as_count, 1),
        line=node.line,
    )
    attrs.finish()
    if not say.text:
        problems.add(node, "<Speak> has no text to speak")
    return say


def _read_play(node: Node, problems: Problems) -> Play:
    attrs = Attributes(node, problems)
    play = Play(url=_text_only(node, problems), loop=attrs.get("loop", as_count, 1), line=node.line)
    attrs.finish()
    if not play.url:
        problems.add(node, "<Play> needs the URL of a sound")
    return play


def _read_wait(node: Node, problems: Problems) -> Pause:
    attrs = Attributes(node, problems)
    pause = Pause(
        length=attrs.get("length", as_positive, 1),
        silence=attrs.get("silence", as_bool, False),
        min_silence=attrs.get("minSilence", as_positive, 2000),
        beep=attrs.get("beep", as_bool, False),
        line=node.line,
    )
    attrs.finish()
    _no_content(node, problems)
    return pause


def _read_hangup(node: Node, problems: Problems) -> Hangup:
    attrs = Attributes(node, problems)
    hangup = Hangup(
        reason=attrs.get("reason", one_of(*PLIVO_HANGUP_REASONS), None),
        schedule=attrs.get("schedule", as_positive, None),
        line=node.line,
    )
    attrs.finish()
    _no_content(node, problems)
    return hangup


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


def _read_get_digits(node: Node, problems: Problems) -> GetDigits:
    attrs = Attributes(node, problems)
    get_digits = GetDigits(
        children=tuple(_prompts(node, problems, frozenset())),
        action=attrs.get("action", as_url, None),
        method=attrs.get("method", as_method, "POST"),
        timeout=attrs.get("timeout", as_positive, 5),
        digit_timeout=attrs.get("digitTimeout", as_positive, 2),
        finish_on_key=attrs.get("finishOnKey", as_key, "#"),
        num_digits=attrs.get("numDigits", as_positive, 99),
        retries=attrs.get("retries", as_positive, 1),
        redirect=attrs.get("redirect", as_bool, True),
        play_beep=attrs.get("playBeep", as_bool, False),
        valid_digits=attrs.get("validDigits", as_valid_digits, "1234567890*#"),
        invalid_digits_sound=attrs.get("invalidDigitsSound", as_url, None),
        log=attrs.get("log", as_bool, True),
        line=node.line,
    )
    attrs.finish()
    return get_digits


def _read_dtmf(node: Node, problems: Problems) -> SendDigits:
    attrs = Attributes(node, problems)
    digits = _text_only(node, problems)
    if not digits:
        problems.add(node, "<DTMF> needs the digits to send")
    elif any(char not in DTMF for char in digits):
        problems.add(node, f'<DTMF> "{digits}" must be made of {" ".join(DTMF)}')
    send = SendDigits(digits=digits, async_=attrs.get("async", as_bool, True), line=node.line)
    attrs.finish()
    return send


def _read_pre_answer(node: Node, problems: Problems) -> PreAnswer:
    Attributes(node, problems).finish()
    # Plivo also nests these in <PreAnswer>; this appliance plays prompts only.
    unsupported = frozenset({"GetDigits", "Redirect", "DTMF", "Message"})
    return PreAnswer(children=tuple(_prompts(node, problems, unsupported)), line=node.line)


def _read_record(node: Node, problems: Problems) -> Record:
    attrs = Attributes(node, problems)
    record = Record(
        action=attrs.get("action", as_url, None),
        method=attrs.get("method", as_method, "POST"),
        file_format=attrs.get("fileFormat", one_of(*PLIVO_RECORD_FORMATS), "mp3"),
        redirect=attrs.get("redirect", as_bool, True),
        timeout=attrs.get("timeout", as_positive, 15),
        max_length=attrs.get("maxLength", as_integer(2), 60),
        play_beep=attrs.get("playBeep", as_bool, True),
        finish_on_key=attrs.get("finishOnKey", as_keys, "#"),
        record_session=attrs.get("recordSession", as_bool, False),
        start_on_dial_answer=attrs.get("startOnDialAnswer", as_bool, False),
        record_channel_type=attrs.get("recordChannelType", one_of(*PLIVO_CHANNEL_TYPES), "stereo"),
        transcription_type=attrs.get("transcriptionType", as_transcription, None),
        transcription_url=attrs.get("transcriptionUrl", as_url, None),
        transcription_method=attrs.get("transcriptionMethod", as_method, "POST"),
        callback_url=attrs.get("callbackUrl", as_url, None),
        callback_method=attrs.get("callbackMethod", as_method, "POST"),
        line=node.line,
    )
    attrs.finish(ignored=("transcriptionReportType",))
    _no_content(node, problems)
    return record


def _read_number(node: Node, problems: Problems) -> Number:
    attrs = Attributes(node, problems)
    number = Number(
        number=_phone_number(node, problems, _text_only(node, problems)),
        send_digits=attrs.get("sendDigits", as_digits(DTMF), ""),
        send_on_preanswer=attrs.get("sendOnPreanswer", as_bool, False),
        line=node.line,
    )
    attrs.finish(ignored=("sendDigitsMode",))
    return number


def _read_user(node: Node, problems: Problems) -> User:
    attrs = Attributes(node, problems)
    user = User(
        uri=_text_only(node, problems),
        send_digits=attrs.get("sendDigits", as_digits(DTMF), ""),
        send_on_preanswer=attrs.get("sendOnPreanswer", as_bool, False),
        sip_headers=attrs.get("sipHeaders", as_sip_headers, ()),
        line=node.line,
    )
    attrs.finish()
    if not user.uri.lower().startswith("sip:"):
        problems.add(node, f'<User> "{user.uri}" is not a SIP URI such as sip:alice@example.com')
    return user


_DIAL_NOUNS: dict[str, Callable[[Node, Problems], DialNoun]] = {
    "Number": _read_number,
    "User": _read_user,
}


def _read_dial_nouns(node: Node, problems: Problems) -> tuple[DialNoun, ...]:
    nouns: list[DialNoun] = []
    for child in node.children:
        reader = _DIAL_NOUNS.get(child.tag)
        if reader is not None:
            nouns.append(reader(child, problems))
        elif child.tag == "Conference":
            problems.add(
                child, "<Dial> cannot contain <Conference> in Plivo XML; put it in <Response>"
            )
        else:
            hint = _did_you_mean(child.tag, _DIAL_NOUNS, "<{}>")
            problems.add(child, f"unknown noun <{child.tag}> in <Dial>{hint}")
    if node.text.strip():
        problems.add(node, "<Dial> takes no text; put the number in a <Number>")
    elif not node.children:
        problems.add(node, "<Dial> needs a <Number> or a <User>")
    return tuple(nouns)


def _read_dial(node: Node, problems: Problems) -> Dial:
    attrs = Attributes(node, problems)
    dial = Dial(
        nouns=_read_dial_nouns(node, problems),
        action=attrs.get("action", as_url, None),
        method=attrs.get("method", as_method, "POST"),
        hangup_on_star=attrs.get("hangupOnStar", as_bool, False),
        time_limit=attrs.get("timeLimit", as_positive, 14400),
        timeout=attrs.get("timeout", as_positive, 30),
        caller_id=attrs.get("callerId", as_optional, None),
        caller_name=attrs.get("callerName", as_caller_name, None),
        confirm_sound=attrs.get("confirmSound", as_url, None),
        confirm_key=attrs.get("confirmKey", as_key, None) or None,
        confirm_timeout=attrs.get("confirmTimeout", as_positive, 120),
        dial_music=attrs.get("dialMusic", as_dial_music, None),
        callback_url=attrs.get("callbackUrl", as_url, None),
        callback_method=attrs.get("callbackMethod", as_method, "POST"),
        redirect=attrs.get("redirect", as_bool, True),
        digits_match=attrs.get("digitsMatch", as_digit_patterns, ()),
        digits_match_b_leg=attrs.get("digitsMatchBLeg", as_digit_patterns, ()),
        sip_headers=attrs.get("sipHeaders", as_sip_headers, ()),
        line=node.line,
    )
    attrs.finish()
    return dial


def _read_conference(node: Node, problems: Problems) -> PlivoConference:
    attrs = Attributes(node, problems)
    conference = PlivoConference(
        name=_text_only(node, problems),
        muted=attrs.get("muted", as_bool, False),
        enter_sound=attrs.get("enterSound", as_sound, ""),
        exit_sound=attrs.get("exitSound", as_sound, ""),
        start_conference_on_enter=attrs.get("startConferenceOnEnter", as_bool, True),
        end_conference_on_exit=attrs.get("endConferenceOnExit", as_bool, False),
        stay_alone=attrs.get("stayAlone", as_bool, True),
        wait_sound=attrs.get("waitSound", as_url, None),
        max_members=attrs.get("maxMembers", as_integer(1, PLIVO_MAX_MEMBERS), PLIVO_MAX_MEMBERS),
        record=attrs.get("record", as_bool, False),
        record_file_format=attrs.get("recordFileFormat", one_of(*PLIVO_RECORD_FORMATS), "mp3"),
        record_when_alone=attrs.get("recordWhenAlone", as_bool, False),
        time_limit=attrs.get("timeLimit", as_count, PLIVO_CONFERENCE_TIME_LIMIT),
        hangup_on_star=attrs.get("hangupOnStar", as_bool, False),
        action=attrs.get("action", as_url, None),
        method=attrs.get("method", as_method, "POST"),
        redirect=attrs.get("redirect", as_bool, True),
        callback_url=attrs.get("callbackUrl", as_url, None),
        callback_method=attrs.get("callbackMethod", as_method, "POST"),
        digits_match=attrs.get("digitsMatch", as_digit_patterns, ()),
        floor_event=attrs.get("floorEvent", as_bool, False),
        relay_dtmf=attrs.get("relayDTMF", as_bool, True),
        send_digits=attrs.get("sendDigits", as_digits(DTMF), ""),
        transcription_type=attrs.get("transcriptionType", as_transcription, None),
        transcription_url=attrs.get("transcriptionUrl", as_url, None),
        transcription_method=attrs.get("transcriptionMethod", as_method, "POST"),
        line=node.line,
    )
    attrs.finish()
    if not conference.name:
        problems.add(node, "<Conference> needs a room name")
    return conference


_PROMPTS: dict[str, Callable[[Node, Problems], GatherChild]] = {
    "Speak": _read_speak,
    "Play": _read_play,
    "Wait": _read_wait,
}

PLIVO_VERBS: dict[str, Callable[[Node, Problems], Verb]] = {
    "Speak": _read_speak,
    "Play": _read_play,
    "Wait": _read_wait,
    "Hangup": _read_hangup,
    "Redirect": _read_redirect,
    "GetDigits": _read_get_digits,
    "DTMF": _read_dtmf,
    "PreAnswer": _read_pre_answer,
    "Record": _read_record,
    "Dial": _read_dial,
    "Conference": _read_conference,
}


def read_plivo(root: Node, problems: Problems) -> tuple[Verb, ...]:
    """The verbs of a Plivo XML <Response>."""
    Attributes(root, problems).finish()
    if root.text.strip():
        problems.add(root, f'text outside any element: "{root.text.strip()[:40]}"')
    verbs: list[Verb] = []
    for node in root.children:
        reader = PLIVO_VERBS.get(node.tag)
        if reader is not None:
            verbs.append(reader(node, problems))
        elif node.tag in UNSUPPORTED_VERBS:
            problems.add(node, f"<{node.tag}> is not supported by this appliance")
        else:
            hint = _did_you_mean(node.tag, PLIVO_VERBS, "<{}>")
            problems.add(node, f"unknown verb <{node.tag}>{hint}")
    return tuple(verbs)
