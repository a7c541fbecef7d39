"""Runs a call's TwiML, verb by verb, against a :class:`CallSession`.

The interpreter is pure call logic: it fetches documents, turns verbs into audio sources and
asks the session (implemented by the calls layer) to play them, join conferences or hang up.
Any failure on a live call is logged with Twilio's error code and the caller hears a short
apology before the call ends cleanly, as on Twilio.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np

from appliance.audio.frames import AudioFormat
from appliance.audio.media import (
    BufferSource,
    MediaError,
    MediaSource,
    SilenceSource,
    SpeechSynth,
    hold_music,
)
from appliance.audio.tones import dtmf, join_beep, leave_beep, tone_sequence
from appliance.twiml.fetch import Fetcher, FetchError, resolve_url
from appliance.twiml.media_cache import MediaCache
from appliance.twiml.parse import TwimlError, parse_twiml
from appliance.twiml.record import (
    RecordOutcome,
    RecordRequest,
    SessionRecordingStarted,
    StatusCallback,
    beep,
)
from appliance.twiml.verbs import (
    Conference,
    Dial,
    Document,
    Gather,
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
    Reject,
    Say,
    SendDigits,
)
from appliance.twiml.wait import WaitRenderer, WaitUrlError

log = logging.getLogger(__name__)

APOLOGY = "We are sorry, an application error has occurred. Goodbye."
MAX_DOCUMENTS_PER_CALL = 100  # a Redirect loop is cut off here (Twilio's own limit is similar)
DIGIT_MS = 100  # <Play digits>: each key's tone, then a gap as long
DIGIT_WAIT_MS = 500  # <Play digits>: a "w" waits half a second (Twilio's TwiML reference)
DIGIT_LONG_WAIT_MS = 1000  # Plivo's <DTMF>: a "W" waits one second
DOUBLE_BEEP_GAP_MS = 200  # Plivo's "beep:2": the beep, this gap, the beep again


def plivo_params(params: Mapping[str, str], event: str = "") -> dict[str, str]:
    """The call's request parameters with Plivo's names added (Twilio's are kept)."""
    extra = {
        "CallUUID": params.get("CallSid", ""),
        "From": params.get("From", ""),
        "To": params.get("To", ""),
        "CallStatus": params.get("CallStatus", ""),
        "Direction": params.get("Direction", ""),
    }
    if event:
        extra["Event"] = event
    return {**params, **extra}


_transcriber_noted = threading.Event()


def _note_no_transcriber(sid: str) -> None:
    """No transcriber runs on the appliance: the recording is made, the text never comes."""
    if not _transcriber_noted.is_set():
        _transcriber_noted.set()
        log.info("call %s: <Record> transcription asked for; this appliance has no "
                 "transcriber, so none is made (logged once)", sid)


class ConferenceExit(Protocol):
    """How a call left a Plivo conference."""

    status: str
    params: dict[str, str]


class DialOutcome(Protocol):
    """How a <Dial><Number> ended: Twilio's DialCallStatus and the action's parameters."""

    status: str

    def params(self) -> dict[str, str]: ...


class CallSession(Protocol):
    """What the interpreter needs from a live call."""

    sid: str

    @property
    def ended(self) -> bool: ...

    def params(self) -> dict[str, str]: ...

    def play(self, source: MediaSource) -> bool: ...

    def discard_keys(self) -> None:
        """Forget the keys pressed so far (a <Gather> hears only keys pressed after it starts)."""
        ...

    def play_until_key(self, source: MediaSource) -> str | None:
        """Play ``source`` until it ends or the caller presses a key, which stops it; returns
        that key, or None when it played to the end or the call ended."""
        ...

    def collect_digits(
        self, num_digits: int | None, timeout: float, finish_on_key: str,
        first_key: str | None = None, digit_timeout: float | None = None,
        valid_keys: str | None = None,
    ) -> str:
        """The caller's keys (``first_key`` already pressed), without ``finish_on_key``:
        until ``num_digits`` are in, ``finish_on_key`` is pressed, or ``timeout`` seconds of
        the call's audio pass without a first key (``digit_timeout``, when given, between
        keys). A key outside ``valid_keys`` ends the input as the last key returned."""
        ...

    def play_over(self, source: MediaSource) -> None:
        """Play ``source`` on top of whatever the caller hears next; return at once."""
        ...

    def record(self, request: RecordRequest) -> RecordOutcome | None:
        """Record the caller until a key of the request, its silence timeout, its maximum
        length or the hang-up; None when no recording could be made."""
        ...

    def record_session(self, file_format: str, stereo: bool, max_seconds: float | None,
                       callback: StatusCallback | None) -> SessionRecordingStarted | None:
        """Record both directions in the background until the call ends (or ``max_seconds``);
        None when no recording could be made."""
        ...

    def hangup(self) -> None: ...

    def join_conference(
        self, noun: Conference, dial: Dial, wait_audio: Callable[[], MediaSource | None] | None
    ) -> str:
        """Block while the caller is in the conference; returns Twilio's DialCallStatus
        ("completed", "answered", "failed"), "hangup" when the caller hung up, or "refused"
        when the call did not join (room full, label taken) and goes on with the next verb."""
        ...

    def join_plivo_conference(
        self,
        verb: PlivoConference,
        wait_audio: Callable[[], MediaSource | None] | None,
        enter_sound: np.ndarray | None,
        exit_sound: np.ndarray | None,
    ) -> ConferenceExit:
        """Block while the caller is in Plivo's <Conference>; the status as for
        :meth:`join_conference`, and the parameters for its action URL."""
        ...

    def dial_numbers(self, dial: Dial, numbers: Sequence[Number]) -> DialOutcome:
        """Ring ``numbers`` (<Dial>'s URLs absolute) and bridge the first to answer; blocks
        until the bridge ends (every outbound leg is over when it returns)."""
        ...


class CallAnswering(Protocol):
    """A call that may still be ringing: the rules decide whether it is answered."""

    @property
    def answered(self) -> bool: ...

    def answer(self) -> bool:
        """Pick up; False when the caller hung up first (the call is over)."""
        ...

    def reject(self, reason: str) -> None:
        """Refuse the call without answering it ("busy" or "rejected")."""
        ...


class CallFailed(Exception):
    """A live call cannot go on; carries Twilio's error code for the log."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"error {code}: {message}")
        self.code = code


class Interpreter:
    def __init__(
        self,
        session: CallSession,
        fetcher: Fetcher,
        synth: SpeechSynth,
        fmt: AudioFormat,
        media: MediaCache,
        answering: CallAnswering | None = None,
    ) -> None:
        """``answering`` controls a call that still rings (None: it is answered already)."""
        self.session = session
        self.fetcher = fetcher
        self.synth = synth
        self.fmt = fmt
        self.media = media
        self.answering = answering
        self._documents = 0

    # --- entry ------------------------------------------------------------------------------

    def run(self, url: str, method: str = "POST", fallback_url: str = "") -> None:
        """Run the call's rules from ``url`` until the document ends or the caller hangs up."""
        try:
            try:
                document = self._load(url, method)
            except CallFailed as exc:
                if not fallback_url:
                    raise
                log.warning("call %s: %s; trying fallback_url", self.session.sid, exc)
                document = self._load(fallback_url, method)
            while document is not None and not self.session.ended:
                document = self._execute(document)
        except CallFailed as exc:
            log.error("call %s: %s", self.session.sid, exc)
            self._apologise()
        except Exception:
            log.exception("call %s: unexpected failure", self.session.sid)
            self._apologise()
        finally:
            if not self.session.ended:
                self.session.hangup()

    # --- documents --------------------------------------------------------------------------

    def _load(self, url: str, method: str, extra: Mapping[str, str] | None = None,
              plivo: str | None = None) -> Document:
        """Fetch and parse a document; ``plivo`` (the Event, or "") asks for Plivo's
        parameters, for requests made by a Plivo document."""
        self._documents += 1
        if self._documents > MAX_DOCUMENTS_PER_CALL:
            raise CallFailed(11100, f"more than {MAX_DOCUMENTS_PER_CALL} documents in one call")
        params = self.session.params()
        if plivo is not None:
            params = plivo_params(params, plivo)
        if extra:
            params.update(extra)
        try:
            final_url, body, _content_type = self.fetcher.fetch_document(url, method, params)
        except FetchError as exc:
            raise CallFailed(exc.code, f"fetching {url}: {exc}") from exc
        try:
            return parse_twiml(body, source=final_url)
        except TwimlError as exc:
            raise CallFailed(exc.code, f"{final_url}: {exc}") from exc

    def _execute(self, document: Document) -> Document | None:
        """Run the verbs of one document; returns the next document, or None when done."""
        for verb in document.verbs:
            if self.session.ended or not self._answer_for(verb):
                return None
            match verb:
                case Say() | Play() | Pause():
                    for source in self._sources(document, verb):
                        self._play(source)
                case Hangup() | Reject():
                    self.session.hangup()  # once answered, <Reject> hangs up (Twilio)
                    return None
                case PreAnswer():
                    self._pre_answer(document, verb)
                case Redirect():
                    plivo = "Redirect" if document.dialect == "plivo" else None
                    return self._load(resolve_url(document.source, verb.url), verb.method,
                                      plivo=plivo)
                case Dial():
                    outcome = self._dial(document, verb)
                    if outcome is not None:
                        return outcome
                case PlivoConference():
                    outcome = self._plivo_conference(document, verb)
                    if outcome is not None:
                        return outcome
                case Gather():
                    outcome = self._gather(document, verb)
                    if outcome is not None:
                        return outcome
                case Record():
                    outcome = self._record(document, verb)
                    if outcome is not None:
                        return outcome
                case GetDigits():
                    outcome = self._get_digits(document, verb)
                    if outcome is not None:
                        return outcome
                case SendDigits():
                    self._send_digits(verb)
                case _:
                    name = type(verb).__name__
                    raise CallFailed(12200, f"<{name}> is not supported on this appliance yet")
        return None

    # --- answering ----------------------------------------------------------------------------

    def _answer_for(self, verb: object) -> bool:
        """Before ``verb`` runs on a call that still rings: refuse it (<Reject>, Plivo's
        <Hangup reason>), leave it ringing (<Dial answerOnBridge> to numbers) or answer it,
        as Twilio picks up for any other verb. False: the call is over."""
        answering = self.answering
        if answering is None or answering.answered:
            return True
        match verb:
            case Reject(reason=reason) | Hangup(reason=str() as reason):
                log.info("call %s: refused without answering (%s)", self.sid, reason)
                answering.reject(reason)
                return False
            case Dial(answer_on_bridge=True, nouns=nouns) if all(
                isinstance(noun, Number) for noun in nouns
            ):
                return True  # the caller hears the network's ringing until the bridge
        return answering.answer()

    def _pre_answer(self, document: Document, verb: PreAnswer) -> None:
        """Plivo's <PreAnswer>: a modem cannot send early media before it answers, so the
        call was answered and the prompts play as ordinary ones (README, notes)."""
        log.info("call %s: <PreAnswer> played after answering (no early media on a modem line)",
                 self.sid)
        for child in verb.children:
            for source in self._sources(document, child):
                if self.session.ended:
                    return
                self._play(source)

    # --- verbs ------------------------------------------------------------------------------

    def _play(self, source: MediaSource) -> None:
        self.session.play(source)

    def _sources(self, document: Document, verb: Say | Play | Pause) -> Iterator[MediaSource]:
        """What a prompt verb plays, in order (made one at a time, as it is reached)."""
        match verb:
            case Say():
                yield self._speech(verb)
            case Play():
                if verb.digits is not None:
                    yield self._digits(verb.digits)
                if verb.url:
                    yield self._audio(document.source, verb)
            case Pause():
                yield SilenceSource(self.fmt.frames_for(verb.length), self.fmt)

    def _gather(self, document: Document, verb: Gather) -> Document | None:
        """Twilio's <Gather input="dtmf">: the prompts, interrupted by the first key, then the
        keys; the action (default: this document) gets ``Digits``. None: the next verb."""
        if "dtmf" not in verb.input.split():
            raise CallFailed(12200, f'<Gather input="{verb.input}"> is not supported on this '
                                    "appliance yet (dtmf only)")
        self.session.discard_keys()  # as on Twilio: keys pressed before the Gather are dropped
        first = self._prompts_until_key(document, verb.children)
        if self.session.ended:
            return None
        digits = self.session.collect_digits(verb.num_digits, verb.timeout,
                                             verb.finish_on_key, first)
        if self.session.ended or (not digits and not verb.action_on_empty_result):
            return None  # no input: Twilio goes on with the next verb
        url = resolve_url(document.source, verb.action) if verb.action else document.source
        return self._load(url, verb.method, {"Digits": digits})

    def _prompts_until_key(self, document: Document, children: Sequence[GatherChild],
                           after: MediaSource | None = None) -> str | None:
        """Play ``children`` (then ``after``) until the caller presses a key; that key."""
        sources = (source for child in children for source in self._sources(document, child))
        for source in itertools.chain(sources, [after] if after is not None else []):
            if self.session.ended:
                return None
            key = self.session.play_until_key(source)
            if key is not None:
                return key
        return None

    # --- <Record>, Plivo's <GetDigits> and <DTMF> -------------------------------------------

    def _record(self, document: Document, verb: Record) -> Document | None:
        """TwiML's and Plivo's <Record>: a beep, the caller's voice until a key, silence, the
        maximum length or the hang-up, then the action with the recording's parameters."""
        plivo = document.dialect == "plivo"
        if verb.transcribe or verb.transcription_url or verb.transcription_type:
            _note_no_transcriber(self.sid)
        callback = None
        if verb.callback_url:
            callback = StatusCallback(resolve_url(document.source, verb.callback_url),
                                      verb.callback_method, verb.recording_status_callback_event,
                                      document.dialect)
        if plivo and verb.record_session:
            return self._record_session(document, verb, callback)
        if plivo and verb.start_on_dial_answer:
            log.warning("call %s: <Record startOnDialAnswer> needs Plivo's <Dial>, which this "
                        "appliance does not run; nothing is recorded", self.sid)
            return None
        if verb.play_beep:
            self._play(BufferSource(beep(self.fmt.rate, document.dialect), self.fmt))
            if self.session.ended:
                return None
        outcome = self.session.record(RecordRequest.for_verb(verb, document.dialect, callback))
        if outcome is None:
            raise CallFailed(12400, "<Record>: the recording could not be made")
        if outcome.empty and not plivo:
            # Twilio: an empty recording requests no action; the next verb runs.
            log.info("call %s: <Record> heard nothing; going on", self.sid)
            return None
        if plivo:
            return self._plivo_action(document, verb.action, verb.method, verb.redirect,
                                      outcome.plivo_params())
        url = resolve_url(document.source, verb.action) if verb.action else document.source
        if self.session.ended:
            # Twilio requests the action of a caller who hung up; its TwiML is not run.
            self._notify(url, verb.method, outcome.twilio_params())
            return None
        return self._load(url, verb.method, outcome.twilio_params())

    def _record_session(self, document: Document, verb: Record,
                        callback: StatusCallback | None) -> Document | None:
        """Plivo's recordSession: no beep, the call recorded in the background up to
        maxLength; the action hears of it at once, the callbackUrl once the file is ready."""
        started = self.session.record_session(verb.file_format,
                                              verb.record_channel_type == "stereo",
                                              float(verb.max_length), callback)
        if started is None:
            raise CallFailed(12400, "<Record recordSession>: the recording could not be made")
        return self._plivo_action(document, verb.action, verb.method, verb.redirect,
                                  started.plivo_params())

    def _plivo_action(self, document: Document, action: str | None, method: str,
                      redirect: bool, params: Mapping[str, str]) -> Document | None:
        """Plivo's action: with ``redirect`` its document takes over the call; without, it is
        only told and the document goes on."""
        if not action:
            return None
        url = resolve_url(document.source, action)
        if redirect and not self.session.ended:
            return self._load(url, method, params, plivo="")
        self._notify(url, method, {**plivo_params(self.session.params()), **params})
        return None

    def _get_digits(self, document: Document, verb: GetDigits) -> Document | None:
        """Plivo's <GetDigits>: ``retries`` rounds of the prompts (stopped by the first key),
        a beep when asked, then the keys. An invalid key plays invalidDigitsSound and starts
        the next round (FreeSWITCH's play_and_get_digits, which Plivo runs); no input after
        every round: the next element."""
        self.session.discard_keys()
        after = BufferSource(beep(self.fmt.rate, "plivo"), self.fmt) if verb.play_beep else None
        for attempt in range(1, verb.retries + 1):
            first = self._prompts_until_key(document, verb.children, after)
            if self.session.ended:
                return None
            digits = self.session.collect_digits(
                verb.num_digits, verb.timeout, verb.finish_on_key, first,
                digit_timeout=verb.digit_timeout, valid_keys=verb.valid_digits)
            if self.session.ended:
                return None
            if digits and digits[-1] not in verb.valid_digits:
                log.info("call %s: <GetDigits> invalid key %s (round %d of %d)", self.sid,
                         digits[-1], attempt, verb.retries)
                self._invalid_digits(document, verb)
                self.session.discard_keys()
                continue
            if digits:
                if verb.log:
                    log.info("call %s: <GetDigits> got %s", self.sid, digits)
                return self._plivo_action(document, verb.action, verb.method, verb.redirect,
                                          {"Digits": digits})
        log.info("call %s: <GetDigits> no input after %d round(s)", self.sid, verb.retries)
        return None

    def _invalid_digits(self, document: Document, verb: GetDigits) -> None:
        """invalidDigitsSound; one that cannot be played is logged, not fatal."""
        if not verb.invalid_digits_sound:
            return
        try:
            source = self._audio(document.source, Play(verb.invalid_digits_sound))
        except CallFailed as exc:
            log.error("call %s: invalidDigitsSound: %s", self.sid, exc)
            return
        self._play(source)

    def _send_digits(self, verb: SendDigits) -> None:
        """Plivo's <DTMF>: the keys as in-band tones; ``async`` goes on with the next element
        while they play, as Plivo does once the first digit is sent."""
        source = self._digits(verb.digits)
        if verb.async_:
            self.session.play_over(source)
        else:
            self._play(source)

    def _speech(self, verb: Say) -> MediaSource:
        try:
            samples = self.synth.synthesize(verb.text, verb.voice, verb.language, self.fmt.rate)
        except MediaError as exc:
            raise CallFailed(13520, f"<Say> failed: {exc}") from exc
        return BufferSource(samples, self.fmt, loop=verb.loop)

    def _audio(self, base: str, verb: Play) -> MediaSource:
        url = resolve_url(base, verb.url)
        try:
            samples = self.media.get(url)
        except FetchError as exc:
            raise CallFailed(exc.code, f"<Play> {url}: {exc}") from exc
        except MediaError as exc:
            raise CallFailed(13420, f"<Play> {url}: {exc}") from exc  # Play: Invalid Content-Type
        return BufferSource(samples, self.fmt, loop=verb.loop)

    def _digits(self, digits: str) -> MediaSource:
        rate = self.fmt.rate
        parts: list[np.ndarray] = []
        for key in digits:
            if key in "wW":
                wait_ms = DIGIT_LONG_WAIT_MS if key == "W" else DIGIT_WAIT_MS
                parts.append(np.zeros(rate * wait_ms // 1000, dtype=np.int16))
            else:
                parts += [dtmf(key, DIGIT_MS, rate), np.zeros(rate * DIGIT_MS // 1000, np.int16)]
        return BufferSource(np.concatenate(parts), self.fmt)

    def _dial(self, document: Document, dial: Dial) -> Document | None:
        numbers = [noun for noun in dial.nouns if isinstance(noun, Number)]
        if numbers and len(numbers) == len(dial.nouns) and document.dialect == "twiml":
            return self._dial_numbers(document, dial, numbers)
        conferences = [noun for noun in dial.nouns if isinstance(noun, Conference)]
        if len(conferences) != 1 or len(dial.nouns) != 1:
            raise CallFailed(12200, "<Dial> supports exactly one <Conference> on this appliance")
        noun = self._absolute_urls(document.source, conferences[0])
        status = self.session.join_conference(noun, dial, self._wait_audio(document.source, noun))
        if status in ("hangup", "refused") or self.session.ended:
            return None  # refused (room full, label taken): Twilio goes on with the next verb
        if dial.action:
            url = resolve_url(document.source, dial.action)
            return self._load(url, dial.method, {"DialCallStatus": status})
        return None

    def _dial_numbers(self, document: Document, dial: Dial,
                      numbers: list[Number]) -> Document | None:
        """Twilio's <Dial><Number>: the action gets DialCallStatus, DialCallSid and
        DialCallDuration; without one the caller goes on with the next verb."""
        if dial.recording_status_callback:
            dial = dataclasses.replace(dial, recording_status_callback=resolve_url(
                document.source, dial.recording_status_callback))
        outcome = self.session.dial_numbers(dial, numbers)
        log.info("call %s: <Dial> ended: %s", self.sid, outcome.status)
        if not dial.action:
            return None
        url = resolve_url(document.source, dial.action)
        if self.session.ended:
            # Twilio still requests the action of a caller who hung up; its TwiML is not run.
            self._notify(url, dial.method, outcome.params())
            return None
        return self._load(url, dial.method, outcome.params())

    def _notify(self, url: str, method: str, extra: Mapping[str, str]) -> None:
        """Request ``url`` with the call's parameters and ``extra``; the answer is not run."""
        try:
            self.fetcher.fetch_document(url, method, {**self.session.params(), **extra})
        except FetchError as exc:
            log.warning("call %s: %s: %s", self.sid, url, exc)

    def _wait_audio(
        self, base: str, noun: Conference
    ) -> Callable[[], MediaSource | None] | None:
        """A factory of fresh wait sources (each waiting participant has its own position)."""
        if noun.wait_url is None:
            music = hold_music(self.fmt.rate)
            return lambda: BufferSource(music, self.fmt, loop=0)
        if noun.wait_url == "":
            return None
        url = resolve_url(base, noun.wait_url)
        renderer = WaitRenderer(self.fetcher, self.synth, self.media, self.fmt,
                                self.session.params)
        try:
            first = renderer.render(url, noun.wait_method)
        except WaitUrlError as exc:
            # Twilio: a failing waitUrl leaves the participant waiting in silence.
            log.error("call %s: %s", self.session.sid, exc)
            return None
        return renderer.source_factory(first, url, noun.wait_method)

    # --- Plivo's <Conference> ---------------------------------------------------------------

    def _plivo_conference(self, document: Document, verb: PlivoConference) -> Document | None:
        base = document.source
        urls = ("action", "callback_url", "transcription_url", "wait_sound")
        verb = dataclasses.replace(verb, **{name: resolve_url(base, getattr(verb, name))
                                            for name in urls if getattr(verb, name)})
        wait = self._plivo_wait(verb.wait_sound) if verb.wait_sound else None
        enter = self._room_sound(base, verb.enter_sound, join_beep(self.fmt.rate))
        leave = self._room_sound(base, verb.exit_sound, leave_beep(self.fmt.rate))
        result = self.session.join_plivo_conference(verb, wait, enter, leave)
        if result.status in ("hangup", "refused") or self.session.ended or not verb.action:
            return None  # refused (maxMembers): Plivo skips the action too
        if verb.redirect:
            return self._load(verb.action, verb.method, result.params, plivo="")
        params = {**plivo_params(self.session.params()), **result.params}
        try:
            self.fetcher.fetch_document(verb.action, verb.method, params)
        except FetchError as exc:
            log.warning("call %s: conference action %s: %s", self.sid, verb.action, exc)
        return None

    def _plivo_renderer(self) -> WaitRenderer:
        return WaitRenderer(self.fetcher, self.synth, self.media, self.fmt,
                            lambda: plivo_params(self.session.params()), lenient=True)

    def _plivo_wait(self, url: str) -> Callable[[], MediaSource | None] | None:
        """waitSound: audio, or Play/Speak/Wait rendered, looped while the member waits."""
        renderer = self._plivo_renderer()
        try:
            first = renderer.render(url, "POST")
        except WaitUrlError as exc:
            log.error("call %s: waitSound: %s", self.sid, exc)
            return None
        return renderer.source_factory(first, url, "POST")

    def _room_sound(self, base: str, sound: str, beep: np.ndarray) -> np.ndarray | None:
        """enterSound / exitSound as samples: none, one beep, two beeps or a URL's audio."""
        if not sound:
            return None
        if sound == "beep:1":
            return beep
        if sound == "beep:2":
            gap = np.zeros(self.fmt.rate * DOUBLE_BEEP_GAP_MS // 1000, dtype=np.int16)
            return np.concatenate([beep, gap, beep])
        url = resolve_url(base, sound)
        try:
            audio = self._plivo_renderer().render(url, "POST")
        except WaitUrlError as exc:
            log.error("call %s: conference sound: %s", self.sid, exc)
            return None
        parts = [audio.once] + ([audio.forever] if audio.forever is not None else [])
        return np.concatenate(parts)

    @staticmethod
    def _absolute_urls(base: str, noun: Conference) -> Conference:
        """The noun with its callback URLs resolved against the document's URL."""
        fields = ("status_callback", "recording_status_callback", "event_callback_url")
        changes = {name: resolve_url(base, getattr(noun, name))
                   for name in fields if getattr(noun, name)}
        return dataclasses.replace(noun, **changes) if changes else noun

    def _apologise(self) -> None:
        # A document that fails before the call is answered: Twilio answers to apologise.
        if self.session.ended or not self._answer_for(None):
            return
        try:
            samples = self.synth.synthesize(APOLOGY, "", "en-US", self.fmt.rate)
        except MediaError:
            log.exception("call %s: cannot speak the apology; playing an error tone", self.sid)
            samples = tone_sequence([(480, 250), (0, 100), (480, 250), (0, 100), (480, 250)],
                                    self.fmt.rate)
        self._play(BufferSource(samples, self.fmt))

    @property
    def sid(self) -> str:
        return self.session.sid
