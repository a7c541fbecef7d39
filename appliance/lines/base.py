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
class Alerting:
    """An outbound call placed with :meth:`LineDriver.dial` rings at the far end."""


@dataclass(frozen=True)
class Disconnected:
    """The call is over (remote hang-up, local hang-up or failure).

    An outbound call that never connected ends with "busy" (the far end is busy or refused
    it), "no-answer" (nobody picked up before the network gave up) or "failed" (the number
    could not be reached at all).
    """

    reason: str = "remote"  # remote | local | failed | device-lost | busy | no-answer


@dataclass(frozen=True)
class DtmfReceived:
    """A key reported by the modem itself (out of band)."""

    digit: str


@dataclass(frozen=True)
class LineStatus:
    """Health as read from the modem (signal, operator, SIM); empty fields are unknown."""

    state: str  # starting | idle | ringing | in-call | error | down
    detail: dict[str, Any] = field(default_factory=dict)


LineEvent = Ringing | Alerting | Connected | Disconnected | DtmfReceived | LineStatus
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

    def reject(self, reason: str = "rejected") -> None:
        """Refuse the ringing call without answering it; ``Disconnected`` follows.

        ``reason`` is TwiML's: "busy" (the caller hears a busy signal where the network
        offers one) or "rejected". A line that cannot refuse a call leaves it ringing.
        """
        raise LineError(f"line {self.name} cannot reject calls")

    @property
    def can_dial(self) -> bool:
        """Whether :meth:`dial` places calls on this line."""
        return False

    def dial(self, number: str) -> None:
        """Place an outbound call to ``number`` from an idle line.

        Returns once the modem accepted the request; ``Alerting`` follows when the far end
        rings, then ``Connected`` when it answers, or ``Disconnected`` ("busy", "no-answer",
        "failed"). :meth:`hangup` abandons the attempt.
        """
        raise LineError(f"line {self.name} cannot place calls")
