"""What a participant hears while a conference waits: its ``waitUrl``, rendered to audio.

The waitUrl may answer with an audio file (WAV, MP3...), which loops, or with a TwiML document
of ``<Play>``, ``<Say>``, ``<Pause>`` and ``<Redirect>`` only (Twilio's ``<Conference>``
reference): any other verb is Twilio's error 13238 and the participant waits in silence.
Plivo's sounds (waitSound, enterSound, exitSound) are read leniently: elements other than
``<Play>``, ``<Speak>`` and ``<Wait>`` are skipped, as Plivo ignores them.
A document is rendered to samples on the interpreter's thread before the participant joins.
When its audio has played, Twilio requests the waitUrl again; so does :class:`WaitSource`,
through one background thread, never on the tick: until the new rendering is ready the
participant hears silence, and if the request fails the last rendering plays again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from appliance.audio.frames import AudioFormat
from appliance.audio.media import BufferSource, MediaError, MediaSource, SpeechSynth
from appliance.audio.tones import dtmf
from appliance.twiml.fetch import Fetcher, FetchError, resolve_url
from appliance.twiml.parse import TwimlError, parse_twiml
from appliance.twiml.verbs import Pause, Play, Redirect, Say

log = logging.getLogger(__name__)

INVALID_WAIT_VERB = 13238  # Twilio: a waitUrl document may hold Play, Say, Pause, Redirect only
MEDIA_ERROR = 13420
MAX_WAIT_DOCUMENTS = 10  # Redirects followed in one pass
MAX_PASS_SECONDS = 600  # audio rendered in one pass; the rest of a longer pass is cut
MIN_PASS_SECONDS = 1.0  # a pass (an empty document...) lasts at least this long
DIGIT_MS = 100


class WaitUrlError(Exception):
    """The waitUrl cannot give wait audio; ``code`` is Twilio's error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"error {code}: {message}")
        self.code = code


class MediaLoader(Protocol):
    """Decoded audio by URL, cached (the interpreter's ``MediaCache``)."""

    def get(self, url: str) -> np.ndarray: ...

    def decode(self, url: str, data: bytes) -> np.ndarray: ...


@dataclass(frozen=True)
class WaitAudio:
    """One pass of wait audio: ``once`` plays first, then ``forever`` loops; without
    ``forever`` the waitUrl is requested again after ``once``."""

    once: np.ndarray
    forever: np.ndarray | None = None


def _is_audio(content_type: str, body: bytes) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith("audio/"):
        return True
    if "xml" in kind or kind.startswith("text/"):
        return False
    return not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


class WaitRenderer:
    """Renders one call's waitUrl (requests carry the call's parameters, signed)."""

    def __init__(
        self,
        fetcher: Fetcher,
        synth: SpeechSynth,
        media: MediaLoader,
        fmt: AudioFormat,
        params: Callable[[], Mapping[str, str]],
        lenient: bool = False,
    ) -> None:
        self._lenient = lenient  # Plivo: skip any element but Play, Speak and Wait
        self._fetcher = fetcher
        self._synth = synth
        self._media = media
        self._fmt = fmt
        self._params = params

    def render(self, url: str, method: str) -> WaitAudio:
        """One pass of ``url``; raises :class:`WaitUrlError` with Twilio's code."""
        try:
            return self._render(url, method)
        except FetchError as exc:
            raise WaitUrlError(exc.code, f"waitUrl {url}: {exc}") from exc
        except TwimlError as exc:
            raise WaitUrlError(exc.code, f"waitUrl {url}: {exc.message}") from exc
        except MediaError as exc:
            raise WaitUrlError(MEDIA_ERROR, f"waitUrl {url}: {exc}") from exc

    def source_factory(self, first: WaitAudio, url: str,
                       method: str) -> Callable[[], MediaSource]:
        """Fresh sources for each waiting participant, starting from ``first``."""
        if first.forever is not None:
            return lambda: WaitSource(first, self._fmt)
        _background()  # started here, so the tick never starts a thread
        return lambda: WaitSource(first, self._fmt, lambda: self.render(url, method))

    def _render(self, url: str, method: str) -> WaitAudio:
        parts: list[np.ndarray] = []
        visited = {url}
        for _ in range(MAX_WAIT_DOCUMENTS):
            final_url, body, content_type = self._fetcher.fetch_document(
                url, method, dict(self._params()))
            if _is_audio(content_type, body):
                return WaitAudio(self._join(parts), self._media.decode(final_url, body))
            document = parse_twiml(body, source=final_url)
            verbs = document.verbs
            if self._lenient:
                verbs = tuple(v for v in verbs if isinstance(v, Play | Say | Pause))
            for verb in verbs:
                if not isinstance(verb, Play | Say | Pause | Redirect):
                    where = f" (line {verb.line})" if verb.line else ""
                    raise WaitUrlError(
                        INVALID_WAIT_VERB,
                        f"waitUrl {url}: <{type(verb).__name__}> is not allowed in wait "
                        f"music; only <Play>, <Say>, <Pause> and <Redirect>{where}")
            redirect: Redirect | None = None
            for verb in verbs:
                if isinstance(verb, Redirect):
                    redirect = verb
                    break
                samples, loop = self._verb_audio(final_url, verb)
                if loop == 0:  # forever: the pass never ends
                    return WaitAudio(self._join(parts), samples)
                parts += [samples] * loop
            if redirect is None:
                break
            url, method = resolve_url(final_url, redirect.url), redirect.method
            if url in visited:
                break  # back to a document of this pass: the next pass starts there anyway
            visited.add(url)
        return WaitAudio(self._pad(self._join(parts)))

    def _verb_audio(self, base: str, verb: Play | Say | Pause) -> tuple[np.ndarray, int]:
        rate = self._fmt.rate
        match verb:
            case Say():
                return self._synth.synthesize(verb.text, verb.voice, verb.language, rate), verb.loop
            case Pause():
                return np.zeros(rate * verb.length, dtype=np.int16), 1
            case Play(digits=digits) if digits is not None:
                gap = np.zeros(rate * DIGIT_MS // 1000, dtype=np.int16)
                tones = [part for key in digits if key not in "wW"
                         for part in (dtmf(key, DIGIT_MS, rate), gap)]
                return (np.concatenate(tones) if tones else gap), 1
            case _:
                return self._media.get(resolve_url(base, verb.url)), verb.loop

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(parts)[: MAX_PASS_SECONDS * self._fmt.rate]

    def _pad(self, samples: np.ndarray) -> np.ndarray:
        short = int(MIN_PASS_SECONDS * self._fmt.rate) - len(samples)
        return np.concatenate([samples, np.zeros(short, dtype=np.int16)]) if short > 0 else samples


class WaitSource(MediaSource):
    """Wait audio for one participant: plays until the participant stops waiting.

    With ``refresh`` (a TwiML waitUrl), each pass ends by asking the background renderer for
    the next one; the tick only looks whether it has arrived.
    """

    def __init__(self, first: WaitAudio, fmt: AudioFormat,
                 refresh: Callable[[], WaitAudio] | None = None) -> None:
        self._fmt = fmt
        self._refresh = refresh
        self._current = first
        self._next: WaitAudio | None = None
        self._requested = False
        self._play(first)

    @property
    def done(self) -> bool:
        return False

    def read_frame(self) -> np.ndarray | None:
        if self._once is not None:
            frame = self._once.read_frame()
            if self._once.done:
                self._once = None
                if self._forever is None:
                    self._request()
            if frame is not None:
                return frame
        if self._forever is not None:
            return self._forever.read_frame()
        arrived = self._next
        if arrived is not None:
            self._next, self._requested = None, False
            self._current = arrived
            self._play(arrived)
            return self.read_frame()
        return self._fmt.silence()

    def _play(self, audio: WaitAudio) -> None:
        self._once = BufferSource(audio.once, self._fmt) if len(audio.once) else None
        self._forever = (BufferSource(audio.forever, self._fmt, loop=0)
                         if audio.forever is not None and len(audio.forever) else None)
        if self._once is None and self._forever is None:
            self._forever = BufferSource(self._fmt.silence(), self._fmt, loop=0)

    def _request(self) -> None:
        if self._refresh is None:
            self._next = self._current  # nothing to ask: play the same pass again
            return
        if not self._requested:
            self._requested = True
            _background().submit(self._render_next)

    def _render_next(self) -> None:
        """On the background thread: the next pass, or the last one again on failure."""
        assert self._refresh is not None
        try:
            self._next = self._refresh()
        except WaitUrlError as exc:
            log.error("%s; playing the previous wait audio again", exc)
            self._next = self._current
        except Exception:
            log.exception("waitUrl: unexpected failure; playing the previous wait audio again")
            self._next = self._current


class _Background:
    """One daemon thread running wait renders queued by the tick (``None`` stops it)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="wait-audio", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._queue.put_nowait(job)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            job()


_worker: _Background | None = None
_worker_lock = threading.Lock()


def _background() -> _Background:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Background()
        return _worker
