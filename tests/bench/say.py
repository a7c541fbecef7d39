"""Time from a prompt verb to its first audio frame, through the real interpreter.

Run with ``python -m tests.bench.say``. A loopback web app serves a one-verb TwiML document;
the real ``Interpreter`` fetches it (the real ``Fetcher``), parses it, synthesizes or fetches
the prompt (the real ``SpeechSynth`` / ``MediaCache``) and hands the source to a session that
reads its first frame at once. The figure is the time from the moment the document has been
served to that first frame: what a caller waits after the app answers, less the wait for the
next 20 ms tick (at most one frame) that the daemon adds on top.

- ``<Say>``: cold (text never synthesized: espeak-ng runs), cached in memory (the same text
  again) and cached on disk (a restarted daemon: the ``.npy`` file is read). Reference in the
  same run: a bare ``espeak-ng --stdout`` subprocess for the same text, to its last byte.
- ``<Play>`` of a WAV hold-music URL (the Debian package's 8 kHz file, ~4 MB, or a generated
  30 s tune): cold (fetch, decode, resample), fresh (``max-age``: no request), revalidated
  (``ETag`` answered with 304, decoded samples reused). Reference: a bare ``requests.get`` of
  the same URL and ``soundfile.read`` of its bytes, in the same run.
"""

from __future__ import annotations

import io
import logging
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import requests
import soundfile

from appliance.audio.frames import AudioFormat
from appliance.audio.media import MediaSource, SpeechSynth, hold_music
from appliance.twiml.fetch import Fetcher
from appliance.twiml.interpreter import Interpreter
from appliance.twiml.media_cache import MediaCache

FMT = AudioFormat(rate=16000, frame_ms=20)
ROUNDS = 9
SENTENCE = (
    "Welcome to the family conference line. Please enter your PIN, followed by the pound key."
)
MOH = Path("/usr/share/asterisk/moh/macroform-the_simplicity.wav")


# --- the loopback web app -------------------------------------------------------------------


class App:
    """Serves ``pages`` by path (body, extra headers); records when each answer was written."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.served_at: dict[str, float] = {}
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                path = self.path.split("?")[0]
                body, headers = app.pages[path]
                etag = headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    body = b""
                else:
                    self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                app.served_at[path] = time.perf_counter()

            do_GET = _answer

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._answer()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def serve(self, path: str, body: bytes, **headers: str) -> str:
        self.pages[path] = (body, {k.replace("_", "-"): v for k, v in headers.items()})
        return self.base + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- a call that reads the first frame at once ----------------------------------------------


@dataclass
class FirstFrameSession:
    """A live call as the interpreter sees it; notes when the first prompt's first frame is
    read, then hangs up (the rest of the document does not matter here)."""

    sid: str = "CA" + "b" * 32
    first_frame_at: float | None = None
    _ended: bool = False

    @property
    def ended(self) -> bool:
        return self._ended

    def params(self) -> dict[str, str]:
        return {"CallSid": self.sid, "From": "+15550001111", "To": "+15551230000"}

    def play(self, source: MediaSource) -> bool:
        frame = source.read_frame()
        self.first_frame_at = time.perf_counter()
        assert frame is not None and len(frame) == FMT.samples
        self._ended = True
        return False

    def play_until_key(self, source: MediaSource) -> str | None:
        self.play(source)
        return None

    def hangup(self) -> None:
        self._ended = True


def time_to_first_frame(
    app: App, fetcher: Fetcher, synth: SpeechSynth, media: MediaCache, twiml: str
) -> float:
    """Milliseconds from the document served to the prompt's first frame."""
    url = app.serve("/voice.xml", twiml.encode(), Content_Type="text/xml")
    session = FirstFrameSession()
    with _failures_raised():
        Interpreter(session, fetcher, synth, FMT, media).run(url)
    assert session.first_frame_at is not None, "the prompt never played"
    return (session.first_frame_at - app.served_at["/voice.xml"]) * 1000


@contextmanager
def _failures_raised() -> Iterator[None]:
    """Turn a failed call (logged, then an apology would be timed) into an exception."""
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logger = logging.getLogger("appliance.twiml.interpreter")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if errors:
        raise RuntimeError(f"the call failed: {errors[0].getMessage()}")


def median_ms(measure: Callable[[int], float], rounds: int = ROUNDS) -> float:
    return statistics.median(measure(n) for n in range(rounds))


def paired_medians_ms(
    measure: Callable[[int], float], reference: Callable[[int], float], rounds: int = ROUNDS
) -> tuple[float, float]:
    """Medians of ``measure`` and ``reference``, run in alternation so both see the same load."""
    runs: tuple[list[float], list[float]] = ([], [])
    for n in range(rounds):
        runs[0].append(measure(n))
        runs[1].append(reference(n))
    return statistics.median(runs[0]), statistics.median(runs[1])


def say(text: str) -> str:
    return f"<Response><Say>{escape(text)}</Say></Response>"


# --- <Say> ----------------------------------------------------------------------------------


def espeak_stdout_ms(text: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True)
    elapsed = (time.perf_counter() - start) * 1000
    assert len(result.stdout) > 1000
    return elapsed


def measure_say(app: App, fetcher: Fetcher, folder: Path) -> dict[str, float]:
    synth = SpeechSynth(folder / "tts")
    media = MediaCache(fetcher, FMT.rate)
    synth.synthesize("warm up", rate=FMT.rate)  # espeak-ng's voice list, read once per daemon

    def cold(n: int) -> float:
        return time_to_first_frame(app, fetcher, synth, media, say(f"{SENTENCE} Round {n}."))

    def cached(n: int) -> float:
        return time_to_first_frame(app, fetcher, synth, media, say(f"{SENTENCE} Round 0."))

    def on_disk(n: int) -> float:
        restarted = SpeechSynth(folder / "tts")
        return time_to_first_frame(app, fetcher, restarted, media, say(f"{SENTENCE} Round {n}."))

    cold_ms, reference_ms = paired_medians_ms(
        cold, lambda n: espeak_stdout_ms(f"{SENTENCE} Round {n}.")
    )
    return {
        "cold": cold_ms,
        "cached": median_ms(cached),
        "on_disk": median_ms(on_disk),
        "reference": reference_ms,
    }


# --- <Play> ---------------------------------------------------------------------------------


def hold_music_wav() -> tuple[bytes, str]:
    if MOH.is_file():
        return MOH.read_bytes(), MOH.name
    buffer = io.BytesIO()
    tune = np.tile(hold_music(44100), 8)[: 30 * 44100]
    soundfile.write(buffer, tune, 44100, format="WAV")
    return buffer.getvalue(), "a generated 30 s tune at 44.1 kHz"


def bare_get_and_decode_ms(url: str) -> float:
    start = time.perf_counter()
    body = requests.get(url, timeout=10).content
    soundfile.read(io.BytesIO(body), dtype="float32")
    return (time.perf_counter() - start) * 1000


def measure_play(app: App, fetcher: Fetcher, folder: Path, wav: bytes) -> dict[str, float]:
    synth = SpeechSynth(folder / "tts")
    fresh = app.serve("/fresh.wav", wav, Content_Type="audio/wav", Cache_Control="max-age=3600")
    tagged = app.serve("/tagged.wav", wav, Content_Type="audio/wav", ETag='"moh-1"')
    play = "<Response><Play>{}</Play></Response>".format

    def cold(n: int) -> float:
        return time_to_first_frame(app, fetcher, synth, MediaCache(fetcher, FMT.rate), play(fresh))

    warm = MediaCache(fetcher, FMT.rate)
    time_to_first_frame(app, fetcher, synth, warm, play(fresh))
    time_to_first_frame(app, fetcher, synth, warm, play(tagged))
    cold_ms, reference_ms = paired_medians_ms(cold, lambda n: bare_get_and_decode_ms(fresh))
    return {
        "cold": cold_ms,
        "fresh": median_ms(lambda n: time_to_first_frame(app, fetcher, synth, warm, play(fresh))),
        "revalidated": median_ms(
            lambda n: time_to_first_frame(app, fetcher, synth, warm, play(tagged))
        ),
        "reference": reference_ms,
    }


# --- the table ------------------------------------------------------------------------------


def _row(label: str, ms: float, reference: float) -> str:
    return f"  {label:<44} {ms:8.1f} ms  {ms / reference:6.2f}x"


def run() -> None:
    """Print the tables."""
    print("\n== Prompt verb to its first audio frame (real interpreter, loopback web app) ==")
    print(
        f"median of {ROUNDS}; from the document served to the first frame read "
        "(the daemon adds up to one 20 ms tick)"
    )
    app = App()
    fetcher = Fetcher("AC" + "0" * 32, "0" * 32)
    wav, wav_name = hold_music_wav()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-say-") as tmp:
            figures = measure_say(app, fetcher, Path(tmp))
            reference = figures["reference"]
            print(
                f'<Say> "{SENTENCE[:40]}..." ({len(SENTENCE)} characters), ratio to the reference:'
            )
            print(_row("reference: bare espeak-ng --stdout", reference, reference))
            print(_row("cold: espeak-ng runs", figures["cold"], reference))
            print(_row("cached in memory", figures["cached"], reference))
            print(_row("cached on disk (after a restart)", figures["on_disk"], reference))

            figures = measure_play(app, fetcher, Path(tmp), wav)
            reference = figures["reference"]
            print(
                f"<Play> of a WAV URL: {wav_name}, {len(wav) / 1e6:.1f} MB, ratio to the reference:"
            )
            print(_row("reference: bare GET + soundfile.read", reference, reference))
            print(_row("cold: fetch, decode, resample", figures["cold"], reference))
            print(_row("cached, fresh (max-age): no request", figures["fresh"], reference))
            print(_row("cached, revalidated (ETag, 304)", figures["revalidated"], reference))
    finally:
        app.close()


if __name__ == "__main__":
    run()
