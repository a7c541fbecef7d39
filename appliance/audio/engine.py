"""The tick: once per frame, on its own thread, timed by an audio device's clock.

The master is the earliest attached port that is still open. Each frame's worth of audio it
receives wakes the engine (its ``device_frame_in`` calls the tick listener, on the device's
thread), and the engine's thread runs one tick; so the mixer keeps the master's pace exactly and
only the other ports need drift compensation. Without a master, or while the master has
delivered nothing for three periods (a stalled or vanished device), a monotonic-clock timer
ticks instead, on absolute deadlines (start + n * period), so its rate never drifts with the
time the ticks themselves take. When the master's frames resume, its clock takes over again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from appliance.audio.frames import AudioFormat
from appliance.audio.port import DeviceAudioPort

log = logging.getLogger(__name__)

# A master silent for this many of its periods is stalled: the timer takes over.
_STALL_PERIODS = 3
# Device ticks owed beyond this many device periods' worth are dropped and counted as late:
# a tick that got stuck must not be followed by a burst.
_MAX_BACKLOG_PERIODS = 3
# Timer ticks run for a stalled master that its catching-up frames may repay (two seconds).
_MAX_BORROWED_TICKS = 100
# A timer this many periods behind its schedule starts a new one instead of catching up.
_RESYNC_PERIODS = 5


class AudioEngine:
    """Runs ``on_tick`` once per ``fmt`` frame; ``speed`` > 1 runs the timer faster (tests)."""

    def __init__(self, fmt: AudioFormat, on_tick: Callable[[], None], speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.fmt = fmt
        self._on_tick = on_tick
        self._speed = speed
        self._period = fmt.period / speed
        self._stall_after = _STALL_PERIODS * self._period
        self._max_owed = _MAX_BACKLOG_PERIODS
        self._wake = threading.Condition()
        self._ports: list[DeviceAudioPort] = []
        self._master: DeviceAudioPort | None = None
        self._owed = 0  # device ticks signalled and not yet run
        self._borrowed = 0  # timer ticks run for a stalled master, repaid by its catch-up frames
        self._device_period = self._period
        self._last_device = -float("inf")  # when the master last signalled
        self._running = False
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self._last_tick: float | None = None
        self._ticks = 0
        self._device_ticks = 0
        self._timer_ticks = 0
        self._late_ticks = 0
        self._repaid_ticks = 0
        self._max_tick = 0.0

    # --- ports ------------------------------------------------------------------------------

    def attach(self, port: DeviceAudioPort) -> None:
        with self._wake:
            if port not in self._ports:
                self._ports.append(port)
            self._elect()

    def detach(self, port: DeviceAudioPort) -> None:
        with self._wake:
            if port in self._ports:
                self._ports.remove(port)
            self._elect()

    @property
    def master(self) -> DeviceAudioPort | None:
        with self._wake:
            self._elect()
            return self._master

    # --- running ----------------------------------------------------------------------------

    def start(self) -> None:
        with self._wake:
            if self._running:
                return
            self._running = True
            self._owed = 0
            self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="audio-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and wait for the tick in progress to finish."""
        with self._wake:
            self._running = False
            self._wake.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @property
    def ticks(self) -> int:
        return self._ticks

    def last_tick_age(self) -> float:
        """Seconds since the last tick began (since start before the first; inf if unstarted)."""
        since = self._last_tick if self._last_tick is not None else self._started_at
        return float("inf") if since is None else time.monotonic() - since

    def stats(self) -> dict[str, Any]:
        """Tick counts by source; late: timer ticks a period behind, device ticks dropped."""
        return {
            "ports": len(self._ports),
            "ticks": self._ticks,
            "device_ticks": self._device_ticks,
            "timer_ticks": self._timer_ticks,
            "late_ticks": self._late_ticks,
            "repaid_ticks": self._repaid_ticks,
            "max_tick_ms": round(self._max_tick * 1000, 3),
        }

    def __repr__(self) -> str:
        master = self._master.name if self._master is not None else None
        return f"AudioEngine(master={master!r}, {self.stats()})"

    # --- inside ----------------------------------------------------------------------------

    def _elect(self) -> None:
        """Make the earliest open port the master (call with the lock held)."""
        candidate = next((port for port in self._ports if not port.closed), None)
        if candidate is self._master:
            return
        if self._master is not None:
            self._master.set_tick_listener(None)
        self._wake.notify_all()  # the engine may be waiting on the old master
        self._master = candidate
        self._owed = 0
        self._borrowed = 0
        self._last_device = -float("inf")  # the timer runs until the new master delivers
        if candidate is None:
            return
        device_period = candidate.device_frame_samples / candidate.device_rate / self._speed
        self._device_period = device_period
        self._stall_after = _STALL_PERIODS * max(self._period, device_period)
        frames_per_period = max(1, round(device_period / self._period))
        self._max_owed = _MAX_BACKLOG_PERIODS * frames_per_period
        candidate.set_tick_listener(functools.partial(self._device_frame, candidate))

    def _device_frame(self, port: DeviceAudioPort) -> None:
        """Tick listener, called on the master's device thread: one tick is due."""
        with self._wake:
            if port is not self._master or not self._running:
                return
            now = time.monotonic()
            catching_up = now - self._last_device < self._device_period / 2
            self._last_device = now
            if self._borrowed and catching_up:
                # The timer already ticked for this frame while the device stalled; a device
                # that catches up must not get those ticks twice (every other port would
                # receive a surplus of frames and slip it away for seconds).
                self._borrowed -= 1
                self._repaid_ticks += 1
                return
            if self._owed < self._max_owed:
                self._owed += 1
            else:
                self._late_ticks += 1
            self._wake.notify()

    def _run(self) -> None:
        schedule = _Schedule(self._period)
        while self._await_tick(schedule):
            self._tick()

    def _await_tick(self, schedule: _Schedule) -> bool:
        """Wait until a tick is due, from the master or the timer, and count it; False: stop."""
        with self._wake:
            while self._running:
                if self._master is not None and self._master.closed:
                    self._elect()
                now = time.monotonic()
                if self._owed:
                    self._owed -= 1
                    self._count_tick(device=True, late=False)
                    schedule.restart()
                    return True
                stalled_at = self._last_device + self._stall_after
                if self._master is not None and now < stalled_at:
                    self._wake.wait(stalled_at - now)
                    continue
                wait = schedule.due_in(now)
                if wait <= 0:
                    if self._master is not None and self._last_device > -float("inf"):
                        # standing in for a master that delivered before and stalled
                        self._borrowed = min(self._borrowed + 1, _MAX_BORROWED_TICKS)
                    self._count_tick(device=False, late=-wait > self._period)
                    schedule.advance()
                    return True
                self._wake.wait(wait)
            return False

    def _count_tick(self, device: bool, late: bool) -> None:
        """Count a tick before it runs, so ``on_tick`` sees itself in ``stats()``."""
        self._ticks += 1
        if device:
            self._device_ticks += 1
        else:
            self._timer_ticks += 1
        if late:
            self._late_ticks += 1

    def _tick(self) -> None:
        started = time.monotonic()
        self._last_tick = started
        try:
            self._on_tick()
        except Exception:
            log.exception("audio tick %d failed", self._ticks)
        self._max_tick = max(self._max_tick, time.monotonic() - started)


class _Schedule:
    """The timer's absolute deadlines, start + n * period, from its first use."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._start: float | None = None
        self._count = 0

    def restart(self) -> None:
        """Forget the schedule: the next use starts a new one (the device was master)."""
        self._start = None

    def due_in(self, now: float) -> float:
        """Seconds until the next deadline; zero or less when a tick is due."""
        if self._start is None or now - self._deadline() > _RESYNC_PERIODS * self._period:
            self._start, self._count = now, 0
        return self._deadline() - now

    def advance(self) -> None:
        self._count += 1

    def _deadline(self) -> float:
        assert self._start is not None
        return self._start + self._count * self._period
