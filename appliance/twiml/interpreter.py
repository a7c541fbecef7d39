"""Runs a call's TwiML, verb by verb, against a :class:`CallSession`.

The interpreter is pure call logic: it fetches documents, turns verbs into audio sources and
asks the session (implemented by the calls layer) to play them, join conferences or hang up.
Any failure on a live call is logged with Twilio's error code and the caller hears a short
apology before the call ends cleanly, as on Twilio.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
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
    load_audio,
)
from appliance.audio.tones import tone_sequence
from appliance.twiml.fetch import Fetcher, FetchError, resolve_url
from appliance.twiml.parse import TwimlError, parse_twiml
from appliance.twiml.verbs import Conference, Dial, Document, Hangup, Pause, Play, Redirect, Say

log = logging.getLogger(__name__)

APOLOGY = "We are sorry, an application error has occurred. Goodbye."
MAX_DOCUMENTS_PER_CALL = 100  # a Redirect loop is cut off here (Twilio's own limit is similar)


class CallSession(Protocol):
    """What the interpreter needs from a live call."""

    sid: str

    @property
    def ended(self) -> bool: ...

    def params(self) -> dict[str, str]: ...

    def play(self, source: MediaSource) -> bool: ...

    def hangup(self) -> None: ...

    def join_conference(
        self, noun: Conference, dial: Dial, wait_audio: Callable[[], MediaSource | None] | None
    ) -> str:
        """Block while the caller is in the conference; returns Twilio's DialCallStatus
        ("completed", "answered", "failed") or "hangup" when the caller hung up."""
        ...


class CallFailed(Exception):
    """A live call cannot go on; carries Twilio's error code for the log."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"error {code}: {message}")
        self.code = code


class MediaCache:
    """Decoded audio by URL (small LRU): a wait-music loop is decoded once, not per caller."""

    def __init__(self, fetcher: Fetcher, rate: int, size: int = 32) -> None:
        self._fetcher = fetcher
        self._rate = rate
        self._size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> np.ndarray:
        with self._lock:
            if url in self._items:
                self._items.move_to_end(url)
                return self._items[url]
        samples = load_audio(self._fetcher.fetch_bytes(url), self._rate)
        with self._lock:
            self._items[url] = samples
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return samples


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
            except CallFailed:
                if not fallback_url:
                    raise
                log.warning("call %s: voice_url failed, trying fallback_url", self.session.sid)
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

    def _load(self, url: str, method: str, extra: Mapping[str, str] | None = None) -> Document:
        self._documents += 1
        if self._documents > MAX_DOCUMENTS_PER_CALL:
            raise CallFailed(11100, f"more than {MAX_DOCUMENTS_PER_CALL} documents in one call")
        params = self.session.params()
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
                case Say():
                    self._play(self._speech(verb))
                case Play():
                    self._play(self._audio(document.source, verb))
                case Pause():
                    self._play(SilenceSource(self.fmt.frames_for(verb.length), self.fmt))
                case Hangup():
                    self.session.hangup()
                    return None
                case Redirect():
                    return self._load(resolve_url(document.source, verb.url), verb.method)
                case Dial():
                    outcome = self._dial(document, verb)
                    if outcome is not None:
                        return outcome
                case _:
                    name = type(verb).__name__
                    raise CallFailed(12200, f"<{name}> is not supported on this appliance yet")
        return None

    # --- verbs ------------------------------------------------------------------------------

    def _play(self, source: MediaSource) -> None:
        self.session.play(source)

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
            raise CallFailed(13227, f"<Play> {url}: {exc}") from exc
        return BufferSource(samples, self.fmt, loop=verb.loop)

    def _dial(self, document: Document, dial: Dial) -> Document | None:
        conferences = [noun for noun in dial.nouns if isinstance(noun, Conference)]
        if len(conferences) != 1 or len(dial.nouns) != 1:
            raise CallFailed(12200, "<Dial> supports exactly one <Conference> on this appliance")
        noun = conferences[0]
        status = self.session.join_conference(noun, dial, self._wait_audio(document.source, noun))
        if status == "hangup" or self.session.ended:
            return None
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
        try:
            samples = self.media.get(url)
        except (FetchError, MediaError) as exc:
            # Twilio: a failing waitUrl leaves the participant waiting in silence.
            log.error("call %s: waitUrl %s failed: %s", self.session.sid, url, exc)
            return None
        return lambda: BufferSource(samples, self.fmt, loop=0)

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
