"""Login rate limit per client address: after a few failures, an exponential lock-out."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class _Record:
    failures: int
    last_failure: float
    locked_until: float


class LoginLimiter:
    """``max_failures`` wrong passwords lock an address for ``base_lockout`` seconds; each
    further failure doubles it, up to ``max_lockout``. A success forgets the address."""

    def __init__(self, max_failures: int = 5, base_lockout: float = 30.0,
                 max_lockout: float = 3600.0, forget_after: float = 86400.0,
                 max_addresses: int = 10000, clock: Clock = time.monotonic) -> None:
        self.max_failures = max_failures
        self.base_lockout = base_lockout
        self.max_lockout = max_lockout
        self.forget_after = forget_after
        self.max_addresses = max_addresses
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may try now."""
        with self._lock:
            record = self._records.get(address)
            return 0.0 if record is None else max(0.0, record.locked_until - self._clock())

    def failure(self, address: str) -> float:
        """Count a wrong password; returns the lock-out it starts (0 if none yet)."""
        now = self._clock()
        with self._lock:
            self._forget_stale(now)
            record = self._records.get(address) or _Record(0, now, now)
            record.failures += 1
            record.last_failure = now
            excess = record.failures - self.max_failures
            lockout = 0.0
            if excess >= 0:
                lockout = min(self.max_lockout, self.base_lockout * 2 ** min(excess, 32))
                record.locked_until = now + lockout
            self._records[address] = record
            return lockout

    def success(self, address: str) -> None:
        with self._lock:
            self._records.pop(address, None)

    def _forget_stale(self, now: float) -> None:
        stale = [address for address, record in self._records.items()
                 if now - record.last_failure > self.forget_after and record.locked_until <= now]
        for address in stale:
            del self._records[address]
        if len(self._records) >= self.max_addresses:  # a flood of addresses: keep the newest
            oldest = sorted(self._records, key=lambda a: self._records[a].last_failure)
            for address in oldest[: len(oldest) - self.max_addresses + 1]:
                del self._records[address]


def describe_wait(seconds: float) -> str:
    """``45 seconds``, ``2 minutes``, ``1 hour``: how long the owner must wait, rounded up."""
    seconds = math.ceil(seconds)
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    hours = math.ceil(minutes / 60)
    return f"{hours} hour{'s' if hours != 1 else ''}"
