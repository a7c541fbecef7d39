"""The ALSA transport through the real libasound, on a PCM the test defines (two FIFOs)."""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from appliance.audio.frames import AudioFormat
from appliance.lines.alsa_audio import AlsaAudioError, AlsaAudioTransport
from appliance.lines.base import Connected, Disconnected, LineEvent, LineStatus, Ringing
from appliance.lines.simcom import SimcomDriver
from appliance.sim.soundcard import SoundCard, alsa_config_search_path, write_alsa_config
from tests.unit.test_simcom_driver import CLIP, FakeSim7600

FRAME_SAMPLES = 160
FRAME_BYTES = 2 * FRAME_SAMPLES


@pytest.fixture(scope="session")
def alsa_sim_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """ALSA_CONFIG_PATH with the emulators' FIFO PCM ("appliance_sim") defined."""
    config = write_alsa_config(tmp_path_factory.mktemp("alsa"))
    previous = os.environ.get("ALSA_CONFIG_PATH")
    os.environ["ALSA_CONFIG_PATH"] = alsa_config_search_path(config)
    yield os.environ["ALSA_CONFIG_PATH"]
    if previous is None:
        os.environ.pop("ALSA_CONFIG_PATH", None)
    else:
        os.environ["ALSA_CONFIG_PATH"] = previous


class FakeDevicePort:
    """The device side of a DeviceAudioPort: records what was heard, plays a numbered ramp."""

    device_rate = 8000
    device_frame_samples = FRAME_SAMPLES

    def __init__(self) -> None:
        self.heard: queue.Queue[np.ndarray] = queue.Queue()
        self.played = 0

    def device_frame_in(self, samples: np.ndarray) -> None:
        self.heard.put(samples.copy())

    def device_frame_out(self) -> np.ndarray:
        self.played += 1
        return ramp(self.played)

    def close(self) -> None:
        pass


def ramp(n: int) -> np.ndarray:
    return (np.arange(FRAME_SAMPLES) - 80 + 1000 * n).astype(np.int16)


@pytest.fixture
def card(alsa_sim_config: str) -> Iterator[SoundCard]:
    sound_card = SoundCard("test")
    yield sound_card
    sound_card.close()


@pytest.fixture
def transports() -> Iterator[list[AlsaAudioTransport]]:
    """Transports to stop at the end (after a card requested later has been closed)."""
    started: list[AlsaAudioTransport] = []
    yield started
    for transport in started:
        transport.stop()


def test_frames_read_from_the_device_pace_the_frames_written(transports, card):
    port = FakeDevicePort()
    transport = AlsaAudioTransport(card.device, port)  # type: ignore[arg-type]
    transports.append(transport)
    transport.start()
    for n in range(10):  # the card's clock: one period at a time
        card.write_capture(ramp(n).astype("<i2").tobytes())
        np.testing.assert_array_equal(port.heard.get(timeout=5), ramp(n))
    assert port.heard.empty()
    assert (transport.frames_in, transport.frames_out) == (10, 10)
    assert port.played == 10  # one frame written per frame read, no more
    # libasound's file plugin holds back one buffer (4 periods) before the FIFO sees it.
    played = np.frombuffer(card.read_playback(), "<i2")
    frames = played.reshape(-1, FRAME_SAMPLES)
    assert len(frames) >= 3
    assert not frames[:2].any()  # the start-up cushion of silence
    np.testing.assert_array_equal(frames[2], ramp(1))
    assert transport.stats() == {"frames_in": 10, "frames_out": 10, "overruns": 0, "underruns": 0}


def test_a_device_that_vanishes_is_reported(transports, card):
    port = FakeDevicePort()
    failed: list[BaseException] = []
    gone = threading.Event()

    def on_error(exc: BaseException) -> None:
        failed.append(exc)
        gone.set()

    transport = AlsaAudioTransport(card.device, port, on_error=on_error)  # type: ignore[arg-type]
    transports.append(transport)
    transport.start()
    card.write_capture(bytes(FRAME_BYTES))
    port.heard.get(timeout=5)
    card.close()  # both FIFOs lose their other end, as a USB card that is pulled out
    assert gone.wait(timeout=5)
    assert isinstance(failed[0], AlsaAudioError)
    assert "Input/output error" in str(failed[0])
    assert not transport.running


@pytest.mark.usefixtures("alsa_sim_config")
def test_a_device_that_does_not_exist_cannot_start():
    transport = AlsaAudioTransport("no_such_pcm_here", FakeDevicePort())  # type: ignore[arg-type]
    with pytest.raises(AlsaAudioError, match="ALSA device 'no_such_pcm_here'"):
        transport.start()
    assert not transport.running


class ScriptedPcm:
    """An alsaaudio.PCM stand-in: reads and writes follow a script of return codes."""

    def __init__(self, module: Any, kind: str, rate: int, channels: int, **_: Any) -> None:
        self.module, self.kind, self.rate, self.channels = module, kind, rate, channels
        module.opened.append(self)
        self.writes: list[bytes] = []

    def info(self) -> dict[str, int]:
        return {"rate": self.module.rate or self.rate, "channels": self.channels,
                "period_size": FRAME_SAMPLES}  # fmt: skip

    def read(self) -> tuple[int, bytes]:
        try:
            step = self.module.reads.get(timeout=0.05)
        except queue.Empty:
            return 0, b""  # nothing yet, as in non-blocking mode
        if isinstance(step, BaseException):
            raise step
        return (step, b"") if step < 0 else (step, ramp(step).astype("<i2").tobytes())

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        codes = self.module.write_codes
        return codes.pop(0) if codes else len(data) // 2

    def close(self) -> None:
        self.module.closed += 1


def scripted_alsa(rate: int | None = None) -> Any:
    module = SimpleNamespace(
        PCM_CAPTURE="capture", PCM_PLAYBACK="playback", PCM_FORMAT_S16_LE=2,
        ALSAAudioError=type("ALSAAudioError", (Exception,), {}),
        reads=queue.Queue(), write_codes=[], opened=[], closed=0, rate=rate,
    )  # fmt: skip
    module.PCM = lambda type, **kw: ScriptedPcm(module, type, **kw)
    return module


def test_xruns_are_counted_and_the_stream_carries_on(transports):
    alsa = scripted_alsa()
    port = FakeDevicePort()
    transport = AlsaAudioTransport("hw:9", port, alsa=alsa)  # type: ignore[arg-type]
    transports.append(transport)
    transport.start()
    capture, playback = alsa.opened
    assert (capture.kind, playback.kind) == ("capture", "playback")
    alsa.write_codes.append(-errno.EPIPE)  # the next write finds the playback drained
    for step in (1, -errno.EPIPE, 2):
        alsa.reads.put(step)
    np.testing.assert_array_equal(port.heard.get(timeout=5), ramp(1))
    np.testing.assert_array_equal(port.heard.get(timeout=5), ramp(2))
    assert (transport.overruns, transport.underruns) == (1, 1)
    # After the underrun: fresh silence, then the frame again.
    cushion, again = playback.writes[2], playback.writes[3]
    assert cushion == bytes(2 * FRAME_BYTES) and again == playback.writes[1]


def test_other_alsa_errors_stop_the_stream_and_are_reported(transports):
    alsa = scripted_alsa()
    failed = threading.Event()
    transport = AlsaAudioTransport(
        "hw:9",
        FakeDevicePort(),  # type: ignore[arg-type]
        alsa=alsa,
        on_error=lambda exc: failed.set(),
    )
    transports.append(transport)
    transport.start()
    alsa.reads.put(alsa.ALSAAudioError("No such device [hw:9]"))
    assert failed.wait(timeout=5)
    transport.stop()
    assert alsa.closed == 2


def test_a_device_at_another_rate_is_refused_with_a_hint():
    alsa = scripted_alsa(rate=48000)
    transport = AlsaAudioTransport("hw:1", FakeDevicePort(), alsa=alsa)  # type: ignore[arg-type]
    with pytest.raises(AlsaAudioError, match=r"runs at 48000 Hz .* use its plughw: name"):
        transport.start()
    assert alsa.closed == 2


def test_the_simcom_driver_takes_a_calls_voice_from_its_usb_audio_class_device(card):
    modem = FakeSim7600()
    events: queue.Queue[LineEvent] = queue.Queue()
    driver = SimcomDriver(
        "gsm0",
        events.put,
        control=modem.path,
        audio=f"alsa:{card.device}",
        fmt=AudioFormat(16000, 20),
        port_factory=lambda *args, **kwargs: FakeDevicePort(),
    )
    thread = threading.Thread(target=driver.run, name="driver-run")
    thread.start()
    clock_stop = threading.Event()

    def sound_card_clock() -> None:  # the card runs whether or not anyone reads it
        n = 0
        while not clock_stop.wait(0.005):
            card.write_capture(ramp(n).astype("<i2").tobytes())
            n += 1

    def next_event(kind: type) -> LineEvent:
        while not isinstance(event := events.get(timeout=5), kind):
            pass
        return event

    clock = threading.Thread(target=sound_card_clock, name="card-clock")
    clock.start()
    try:
        while next_event(LineStatus).state != "idle":  # type: ignore[attr-defined]
            pass
        modem.send(b"\r\nRING\r\n" + CLIP)
        next_event(Ringing)
        driver.answer()
        event = next_event(Connected)
        assert isinstance(event, Connected)
        port = event.port
        assert isinstance(port, FakeDevicePort)
        first = port.heard.get(timeout=5)  # a period from the card, through libasound
        assert len(first) == FRAME_SAMPLES and first.dtype == np.int16
        driver.hangup()
        assert next_event(Disconnected) == Disconnected("local")
        sent = list(modem.commands.queue)
        assert "ATA" in sent and "AT+CHUP" in sent
        assert not any(c.startswith("AT+CPCMREG") for c in sent)  # no serial PCM in UAC mode
    finally:
        clock_stop.set()
        clock.join()
        driver.stop()
        thread.join(timeout=10)
        modem.close()
    assert not thread.is_alive()
