"""Periodic jobs (line health, housekeeping) on one thread, with the `schedule` library.

Each :class:`JobRunner` owns its own ``schedule.Scheduler``, so jobs of one daemon never leak
into another (tests run several). A job that raises is logged and runs again next time.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import schedule

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, poll_seconds: float = 1.0) -> None:
        self._scheduler = schedule.Scheduler()
        self._poll = poll_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobs", daemon=True)

    def every(self, seconds: float, job: Callable[[], object], name: str) -> None:
        """Run ``job`` every ``seconds`` (first run after one interval)."""
        self._scheduler.every(seconds).seconds.do(functools.partial(self._guarded, job, name))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def run_all_now(self) -> None:
        """Run every job at once (tests, and a status refresh on demand)."""
        self._scheduler.run_all()

    def _run(self) -> None:
        while not self._stopping.wait(self._poll):
            self._scheduler.run_pending()

    @staticmethod
    def _guarded(job: Callable[[], object], name: str) -> None:
        try:
            job()
        except Exception as exc:
            log.warning("job %s failed: %s", name, exc)
