"""The serial PCM transport against a pty pair standing in for the modem's audio port."""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import tty
from collections.abc import Iterator

import numpy as np
import pytest

from appliance.lines.serial_audio import SerialAudioTransport

FRAME_SAMPLES = 160
FRAME_BYTES = 2 * FRAME_SAMPLES


class FakeDevicePort:
    """The device side of a DeviceAudioPort: records what was heard, plays a numbered ramp."""

    def __init__(self) -> None:
        self.heard: queue.Queue[np.ndarray] = queue.Queue()
        self.played = 0

    def device_frame_in(self, samples: np.ndarray) -> None:
        self.heard.put(samples.copy())

    def device_frame_out(self) -> np.ndarray:
        self.played += 1
        return (np.arange(FRAME_SAMPLES) - 80 + 1000 * self.played).astype(np.int16)


class PtyAudio:
    """The modem's side of the PCM tty."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_exactly(self, count: int, timeout: float = 5.0) -> bytes:
        data = b""
        while len(data) < count:
            ready, _, _ = select.select([self.master], [], [], timeout)
            if not ready:
                raise TimeoutError(f"got {len(data)} of {count} bytes")
            data += os.read(self.master, count - len(data))
        return data

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def audio() -> Iterator[PtyAudio]:
    pty = PtyAudio()
    yield pty
    pty.close()


def pcm(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


def test_each_frame_read_is_heard_and_answered_with_one_frame(audio: PtyAudio):
    port = FakeDevicePort()
    transport = SerialAudioTransport(audio.path, port)
    transport.start()
    try:
        spoken = (np.arange(FRAME_SAMPLES) * 100 - 8000).astype(np.int16)
        data = pcm(spoken)
        audio.write(data[:101])  # a frame arriving in two odd-sized pieces
        audio.write(data[101:])
        heard = port.heard.get(timeout=5)
        assert heard.dtype == np.int16
        np.testing.assert_array_equal(heard, spoken)
        played = np.frombuffer(audio.read_exactly(FRAME_BYTES), "<i2")
        np.testing.assert_array_equal(played, np.arange(FRAME_SAMPLES) - 80 + 1000)
    finally:
        transport.stop()
    assert not transport.running


def test_writes_follow_reads_one_for_one(audio: PtyAudio):
    port = FakeDevicePort()
    transport = SerialAudioTransport(audio.path, port)
    transport.start()
    try:
        audio.write(bytes(3 * FRAME_BYTES + 10))
        for _ in range(3):
            port.heard.get(timeout=5)
        audio.read_exactly(3 * FRAME_BYTES)
        assert port.played == 3
        ready, _, _ = select.select([audio.master], [], [], 0.1)
        assert not ready  # the 10 trailing bytes are not a frame yet: nothing more is played
    finally:
        transport.stop()


def test_stale_input_is_flushed_at_start(audio: PtyAudio):
    audio.write(b"\x01" * 101)  # left over from before the call
    port = FakeDevicePort()
    transport = SerialAudioTransport(audio.path, port)
    transport.start()
    try:
        fresh = np.full(FRAME_SAMPLES, -1234, dtype=np.int16)
        audio.write(pcm(fresh))
        np.testing.assert_array_equal(port.heard.get(timeout=5), fresh)
    finally:
        transport.stop()


def test_an_io_error_ends_the_thread_and_reports_it(audio: PtyAudio):
    errors: queue.Queue[BaseException] = queue.Queue()
    transport = SerialAudioTransport(audio.path, FakeDevicePort(), on_error=errors.put)
    transport.start()
    os.close(audio.master)  # the modem's audio port vanishes
    assert isinstance(errors.get(timeout=5), OSError)
    transport.stop()
    assert not transport.running


def test_stop_from_the_error_callback_does_not_deadlock(audio: PtyAudio):
    stopped = threading.Event()
    holder: list[SerialAudioTransport] = []

    def on_error(exc: BaseException) -> None:
        holder[0].stop()
        stopped.set()

    transport = SerialAudioTransport(audio.path, FakeDevicePort(), on_error=on_error)
    holder.append(transport)
    transport.start()
    os.close(audio.master)
    assert stopped.wait(5)


def test_an_odd_frame_size_is_refused():
    with pytest.raises(ValueError, match="positive even number"):
        SerialAudioTransport("/dev/null", FakeDevicePort(), frame_bytes=321)
