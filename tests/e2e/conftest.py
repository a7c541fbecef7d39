"""End-to-end fixtures: the real daemon on emulated modems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, launch


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator:
    """``start_daemon(rules_xml, lines=2)`` -> a ready :class:`Daemon` with its modems."""
    started: list[Daemon] = []

    def start(rules_xml: str, lines: int = 2, drift_ppm: tuple[float, ...] = ()) -> Daemon:
        daemon = launch(tmp_path, rules_xml, lines, drift_ppm=drift_ppm)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()
