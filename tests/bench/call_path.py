"""Mouth-to-ear delay and speech quality from caller A to caller B, through the real daemon.

Both callers sit on emulated SIMCom modems running in real time (timing is what is measured).
Figures are printed beside references measured in the same run:
- delay: an impulse-like burst played by A, located in what B hears, in ms on the modems'
  clocks. The reference is a bare wire between the same two emulated modems (a thread that
  copies each 20 ms frame from A's voice tty to B's as soon as it arrives): what framing and
  ptys cost with no appliance at all. The appliance's share is the difference. The two modems'
  frame phases are random per call and move both figures by up to a frame, so each is the
  mean over several calls.
- quality: narrowband PESQ of an espeak-ng sentence as B hears it, beside the same sentence only
  resampled 8 -> 16 -> 8 kHz (what the appliance's rate conversion alone costs).
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pesq import pesq
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.media import load_audio
from appliance.audio.resample import resample
from appliance.audio.tones import tone
from appliance.lines.at import open_serial
from appliance.sim.simcom import SimcomModem
from tests.audio_checks import normalised_xcorr
from tests.e2e.callers import wait_clock
from tests.harness import launch

RATE = 8000
ROUNDS = 3
SENTENCE = "Grandma dialled in from her landline, and everybody heard her perfectly well."


def _rules(jitter: str) -> str:
    response = VoiceResponse()
    dial = Dial()
    dial.conference("bench", beep="false", wait_url="", jitter_buffer_size=jitter)
    response.append(dial)
    return str(response)


def _burst_delays(a, b, count: int = 5) -> list[float]:
    """Delay (ms) of a 10 ms burst from A's mouth to B's ear, ``count`` times."""
    burst = tone(1000, 10, RATE, amplitude=0.5)
    delays = []
    for _ in range(count):
        start = a.play(burst)
        wait_clock(a, start + RATE // 2)
        sent_at = a.time_of_sample(start)
        # B's sample at the moment A's burst started, then search the next 300 ms only.
        expected = int((sent_at - b.time_of_sample(0)) * RATE)
        heard = b.heard()[expected : expected + int(0.3 * RATE)]
        peak, lag = normalised_xcorr(heard, burst)
        if peak > 0.5:
            delays.append((b.time_of_sample(expected + lag) - sent_at) * 1000)
    return delays


def measure_wire() -> float:
    """Median delay of a bare wire between two emulated modems (no appliance)."""
    a, b = SimcomModem(name="wire-a"), SimcomModem(name="wire-b")
    stop = threading.Event()
    ports = []
    try:
        for modem in (a, b):
            modem.start()
            control = open_serial(modem.control_path)
            ports.append(control)
            modem.ring("+15550000000")
            for command in (b"ATE0\r", b"ATA\r", b"AT+CPCMREG=1\r"):
                control.write(command)
                time.sleep(0.2)
        assert a.wait_audio(5) and b.wait_audio(5)
        audio_a, audio_b = open_serial(a.audio_path), open_serial(b.audio_path)
        ports += [audio_a, audio_b]

        def copy(source, sink) -> None:
            while not stop.is_set():
                frame = source.read(320)
                if frame:
                    sink.write(frame)

        for source, sink in ((audio_a, audio_b), (audio_b, audio_a)):
            threading.Thread(target=copy, args=(source, sink), daemon=True).start()
        wait_clock(b, RATE)
        return float(np.median(_burst_delays(a, b)))
    finally:
        stop.set()
        time.sleep(0.2)
        for port in ports:
            port.close()
        a.stop()
        b.stop()


def measure(workdir: Path, jitter: str = "small") -> dict[str, float]:
    daemon = launch(workdir, _rules(jitter), lines=2, speed=1.0)
    try:
        a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
        a.ring("+15550001111")
        b.ring("+15550002222")
        assert a.wait_audio(20) and b.wait_audio(20)
        wait_clock(b, RATE * 2)

        delays = _burst_delays(a, b)

        wav = workdir / "sentence.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True)
        speech = load_audio(wav, RATE)
        start = a.play(speech)
        wait_clock(a, start + len(speech) + RATE)
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
    wire = float(np.mean([measure_wire() for _ in range(ROUNDS)]))
    print(f"reference: a bare wire between the two emulated modems: {wire:6.1f} ms "
          f"(mean of {ROUNDS} calls)")
    for jitter in ("small", "large"):
        rounds = []
        for _ in range(ROUNDS):
            with tempfile.TemporaryDirectory() as tmp:
                rounds.append(measure(Path(tmp), jitter))
        figures = {key: float(np.mean([r[key] for r in rounds])) for key in rounds[0]}
        print(f"jitterBufferSize={jitter} (mean of {ROUNDS} calls):")
        added = figures["delay_ms"] - wire
        print(f"  mouth-to-ear delay       : {figures['delay_ms']:6.1f} ms")
        print(f"  added by the appliance   : {added:6.1f} ms (delay - wire; "
              "target <= 50 ms at small, Twilio documents 150-200 ms at its smallest)")
        print(f"  PESQ (narrowband)        : {figures['pesq']:.2f} "
              f"(reference 8->16->8 kHz resampling only: {figures['pesq_reference']:.2f}; "
              "target >= 4.4)")


if __name__ == "__main__":
    run()
