"""Wrong PINs per caller ID, in memory: too many within a window lock that caller ID out.

Wrong PINs are counted, not failed calls, so hanging up before the third try does not reset
anything: the default (9 wrong PINs in 15 minutes, three calls' worth) locks the caller ID
out for 15 minutes. The counter is lost on restart, which only shortens a lock-out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_CALLERS = 10_000  # tracked caller IDs; beyond it the quietest are forgotten


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 9  # wrong PINs within ``window`` that lock the caller ID out
    window: float = 900.0  # seconds
    lockout: float = 900.0  # seconds


class PinLockout:
    """Counts wrong PINs per caller ID on ``clock`` (monotonic seconds); thread-safe."""

    def __init__(self, policy: LockoutPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or LockoutPolicy()
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, caller: str) -> float:
        """Seconds until ``caller`` may try again; 0 when it may now."""
        with self._lock:
            until = self._locked_until.get(caller, 0.0)
            wait = until - self._clock()
            if wait <= 0:
                self._locked_until.pop(caller, None)
                return 0.0
            return wait

    def failure(self, caller: str) -> bool:
        """Record a wrong PIN; True when it locked the caller ID out."""
        with self._lock:
            now = self._clock()
            failures = self._failures.setdefault(caller, deque())
            failures.append(now)
            while failures and failures[0] <= now - self.policy.window:
                failures.popleft()
            if len(failures) >= self.policy.max_failures:
                self._locked_until[caller] = now + self.policy.lockout
                failures.clear()
                return True
            self._forget_oldest()
            return False

    def success(self, caller: str) -> None:
        """A right PIN clears the caller's count."""
        with self._lock:
            self._failures.pop(caller, None)

    def _forget_oldest(self) -> None:
        if len(self._failures) <= MAX_CALLERS:
            return
        quietest = min(self._failures, key=lambda c: self._failures[c][-1]
                       if self._failures[c] else float("-inf"))
        del self._failures[quietest]
