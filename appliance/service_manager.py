"""Talking to systemd: readiness, status and the watchdog (``Type=notify``, ``WatchdogSec=``).

The watchdog is fed only while the audio tick is healthy: a daemon whose tick has stalled
still answers HTTP but no caller hears anything, so systemd should restart it. Outside
systemd (no ``NOTIFY_SOCKET``) every call here is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# The tick runs every 20 ms; one that has not run for this long is stalled.
TICK_STALL_SECONDS = 2.0


def sd_notify(message: str) -> bool:
    """Send one notification to systemd; True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            log.debug("sd_notify failed", exc_info=True)
            return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings systemd asks for (half its timeout), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog not fed", usec)
        return None


class ServiceNotifier:
    """Feeds systemd's watchdog while ``tick_age()`` stays small, with a STATUS= line.

    ``tick_age`` returns the seconds since the audio tick last ran; ``status`` returns the
    one-line summary systemd shows (lines, calls).
    """

    def __init__(self, tick_age: Callable[[], float], status: Callable[[], str],
                 stall_after: float = TICK_STALL_SECONDS) -> None:
        self._tick_age = tick_age
        self._status = status
        self._stall_after = stall_after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stalled = False

    def ready(self) -> None:
        sd_notify(f"READY=1\nSTATUS={self._status()}")

    def stopping(self) -> None:
        sd_notify("STOPPING=1")

    def start(self) -> None:
        interval = watchdog_interval()
        if interval is None and not os.environ.get("NOTIFY_SOCKET"):
            return
        period = min(interval or 5.0, 5.0)
        self._thread = threading.Thread(target=self._run, args=(period,),
                                        name="service-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def beat(self, watchdog: bool) -> None:
        """One round: STATUS= always, WATCHDOG=1 only while the tick is healthy."""
        age = self._tick_age()
        healthy = age < self._stall_after
        if not healthy and not self._stalled:
            log.error("audio tick stalled for %.1f s: no longer feeding the watchdog", age)
        elif healthy and self._stalled:
            log.info("audio tick running again")
        self._stalled = not healthy
        message = f"STATUS={self._status()}"
        if watchdog and healthy:
            message = "WATCHDOG=1\n" + message
        sd_notify(message)

    def _run(self, period: float) -> None:
        watchdog = watchdog_interval() is not None
        while not self._stop.wait(period):
            try:
                self.beat(watchdog)
            except Exception:
                log.exception("service notification failed")
