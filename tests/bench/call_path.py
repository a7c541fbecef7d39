"""Mouth-to-ear delay and speech quality from caller A to caller B, through the real daemon.

Both callers sit on emulated SIMCom modems running in real time (timing is what is measured).
Figures are printed beside references measured in the same run:
- delay: an impulse-like burst played by A, located in what B hears, in ms on the modems'
  clocks; the reference is one frame (20 ms), the unavoidable framing delay of the modem.
- quality: narrowband PESQ of an espeak-ng sentence as B hears it, beside the same sentence only
  resampled 8 -> 16 -> 8 kHz (what the appliance's rate conversion alone costs).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from pesq import pesq
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.media import load_audio
from appliance.audio.resample import resample
from appliance.audio.tones import tone
from tests.audio_checks import normalised_xcorr
from tests.harness import launch

RATE = 8000
SENTENCE = "Grandma dialled in from her landline, and everybody heard her perfectly well."


def _wait_clock(modem, samples: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while modem.sample_clock < samples:
        if time.monotonic() > deadline:
            raise TimeoutError("modem audio clock stalled")
        time.sleep(0.02)


def _rules(jitter: str) -> str:
    response = VoiceResponse()
    dial = Dial()
    dial.conference("bench", beep="false", wait_url="", jitter_buffer_size=jitter)
    response.append(dial)
    return str(response)


def measure(workdir: Path, jitter: str = "small") -> dict[str, float]:
    daemon = launch(workdir, _rules(jitter), lines=2, speed=1.0)
    try:
        a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
        a.ring("+15550001111")
        b.ring("+15550002222")
        assert a.wait_audio(20) and b.wait_audio(20)
        _wait_clock(b, RATE * 2)

        burst = tone(1000, 10, RATE, amplitude=0.5)
        delays = []
        for _ in range(5):
            start = a.play(burst)
            _wait_clock(a, start + RATE // 2)
            heard = b.heard()
            sent_at = a.time_of_sample(start)
            window_start = max(0, int(b.sample_clock - RATE))
            peak, lag = normalised_xcorr(heard[window_start:], burst)
            if peak > 0.5:
                delays.append((b.time_of_sample(window_start + lag) - sent_at) * 1000)

        wav = workdir / "sentence.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True)
        speech = load_audio(wav, RATE)
        start = a.play(speech)
        _wait_clock(a, start + len(speech) + RATE)
        heard = b.heard()
        _, lag = normalised_xcorr(heard, speech)
        degraded = heard[lag: lag + len(speech)]
        quality = pesq(RATE, speech, degraded, "nb")
        reference = resample(resample(speech, RATE, 16000), 16000, RATE)[: len(speech)]
        reference_quality = pesq(RATE, speech, reference, "nb")
        return {
            "delay_ms": float(np.median(delays)) if delays else float("nan"),
            "delay_samples": len(delays),
            "pesq": float(quality),
            "pesq_reference": float(reference_quality),
        }
    finally:
        daemon.close()


def run() -> None:
    print("\n== Call path A -> B through the daemon (emulated modems, real time) ==")
    for jitter in ("small", "large"):
        with tempfile.TemporaryDirectory() as tmp:
            figures = measure(Path(tmp), jitter)
        print(f"jitterBufferSize={jitter}:")
        print(f"  mouth-to-ear delay added: {figures['delay_ms']:6.1f} ms "
              f"(median of {figures['delay_samples']}; reference: one modem frame = 20.0 ms; "
              "target <= 50 ms at small)")
        print(f"  PESQ (narrowband)        : {figures['pesq']:.2f} "
              f"(reference 8->16->8 kHz resampling only: {figures['pesq_reference']:.2f}; "
              "target >= 4.4)")


if __name__ == "__main__":
    run()
