"""Runs a call's TwiML, verb by verb, against a :class:`CallSession`.

The interpreter is pure call logic: it fetches documents, turns verbs into audio sources and
asks the session (implemented by the calls layer) to play them, join conferences or hang up.
Any failure on a live call is logged with Twilio's error code and the caller hears a short
apology before the call ends cleanly, as on Twilio.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
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
from appliance.twiml.verbs import (
    Conference,
    Dial,
    Document,
    Gather,
    Hangup,
    Pause,
    Play,
    PlivoConference,
    Redirect,
    Say,
)
from appliance.twiml.wait import WaitRenderer, WaitUrlError

log = logging.getLogger(__name__)

APOLOGY = "We are sorry, an application error has occurred. Goodbye."
MAX_DOCUMENTS_PER_CALL = 100  # a Redirect loop is cut off here (Twilio's own limit is similar)
DIGIT_MS = 100  # <Play digits>: each key's tone, then a gap as long
DIGIT_WAIT_MS = 500  # <Play digits>: a "w" waits half a second (Twilio's TwiML reference)
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


class ConferenceExit(Protocol):
    """How a call left a Plivo conference."""

    status: str
    params: dict[str, str]


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
        first_key: str | None = None,
    ) -> str:
        """The caller's keys (``first_key`` already pressed), without ``finish_on_key``:
        until ``num_digits`` are in, ``finish_on_key`` is pressed, or ``timeout`` seconds of
        the call's audio pass without a key."""
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
    ) -> None:
        self.session = session
        self.fetcher = fetcher
        self.synth = synth
        self.fmt = fmt
        self.media = media
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
            if self.session.ended:
                return None
            match verb:
                case Say() | Play() | Pause():
                    for source in self._sources(document, verb):
                        self._play(source)
                case Hangup():
                    self.session.hangup()
                    return None
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
                case _:
                    name = type(verb).__name__
                    raise CallFailed(12200, f"<{name}> is not supported on this appliance yet")
        return None

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
        first: str | None = None
        for child in verb.children:
            for source in self._sources(document, child):
                if self.session.ended:
                    return None
                first = self.session.play_until_key(source)
                if first is not None:
                    break
            if first is not None:
                break
        if self.session.ended:
            return None
        digits = self.session.collect_digits(verb.num_digits, verb.timeout,
                                             verb.finish_on_key, first)
        if self.session.ended or (not digits and not verb.action_on_empty_result):
            return None  # no input: Twilio goes on with the next verb
        url = resolve_url(document.source, verb.action) if verb.action else document.source
        return self._load(url, verb.method, {"Digits": digits})

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
                parts.append(np.zeros(rate * DIGIT_WAIT_MS // 1000, dtype=np.int16))
            else:
                parts += [dtmf(key, DIGIT_MS, rate), np.zeros(rate * DIGIT_MS // 1000, np.int16)]
        return BufferSource(np.concatenate(parts), self.fmt)

    def _dial(self, document: Document, dial: Dial) -> Document | None:
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
        if self.session.ended:
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
