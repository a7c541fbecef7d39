"""End-to-end fixtures: the real daemon on emulated modems."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from appliance.audio.media import SpeechSynth
from tests.e2e.callers import Voices
from tests.harness import Daemon, launch
from tests.receiver import Receiver, receiving


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator:
    """``start_daemon(rules_xml, lines=2, by_id=False, extra_config="")`` -> a ready
    :class:`Daemon`; ``rules_xml`` is every line's document, or one per line."""
    started: list[Daemon] = []

    def start(rules_xml: str | Sequence[str], lines: int = 2, drift_ppm: tuple[float, ...] = (),
              by_id: bool = False, extra_config: str = "") -> Daemon:
        daemon = launch(tmp_path, rules_xml, lines, drift_ppm=drift_ppm, by_id=by_id,
                        extra_config=extra_config)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Voices:
    """espeak-ng sentences as the modems carry them (8 kHz), synthesised once per module."""
    return Voices(SpeechSynth(tmp_path_factory.mktemp("tts")))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback web server that serves documents and records the requests it receives."""
    yield from receiving()
