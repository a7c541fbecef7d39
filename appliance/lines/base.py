"""What every line driver offers the layers above: events in, answer/hang-up out, an audio port."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.audio.port import DeviceAudioPort


class LineError(Exception):
    """A line cannot do what was asked (modem error, timeout, device gone)."""


# --- events a driver reports (on its own threads) -------------------------------------------


@dataclass(frozen=True)
class Ringing:
    """An incoming call rings; ``caller_id`` is "" when withheld or not (yet) known."""

    caller_id: str = ""
    caller_name: str = ""


@dataclass(frozen=True)
class Connected:
    """The call is answered and voice flows; ``port`` carries its audio from now on."""

    port: DeviceAudioPort


@dataclass(frozen=True)
class Disconnected:
    """The call is over (remote hang-up, local hang-up or failure)."""

    reason: str = "remote"  # remote | local | failed | device-lost


@dataclass(frozen=True)
class DtmfReceived:
    """A key reported by the modem itself (out of band)."""

    digit: str


@dataclass(frozen=True)
class LineStatus:
    """Health as read from the modem (signal, operator, SIM); empty fields are unknown."""

    state: str  # starting | idle | ringing | in-call | error | down
    detail: dict[str, Any] = field(default_factory=dict)


LineEvent = Ringing | Connected | Disconnected | DtmfReceived | LineStatus
EventHandler = Callable[[LineEvent], None]


class LineDriver(abc.ABC):
    """One modem (one line, one call at a time).

    ``run()`` opens the device, initialises it and blocks, reporting events through the
    handler, until ``stop()`` is called (returns normally) or the device fails (raises
    ``LineError``); the supervisor restarts a driver that raised, with backoff.
    """

    def __init__(self, name: str, on_event: EventHandler) -> None:
        self.name = name
        self._on_event = on_event

    def emit(self, event: LineEvent) -> None:
        self._on_event(event)

    @abc.abstractmethod
    def run(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def answer(self) -> None:
        """Answer the ringing call; ``Connected`` follows once voice flows."""

    @abc.abstractmethod
    def hangup(self) -> None:
        """End the current call (a no-op when idle); ``Disconnected`` follows."""
