"""Refusing a ringing call on an analog line: the V.253 driver never goes off-hook."""

from __future__ import annotations

import pytest

from appliance.lines.base import Connected, Disconnected, LineError, LineStatus, Ringing
from tests.unit import test_v253_driver as v253
from tests.unit.test_v253_driver import CALLER, VARIANTS

make_line = v253.make_line  # the emulated modem (speed 4) with the driver running on it


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_rejected_call_rings_on_unanswered_and_is_not_announced_again(make_line, variant):
    line = make_line(variant)
    line.modem.ring(CALLER, "Grandma")
    line.next(Ringing)
    rings = line.modem.rings
    line.driver.reject()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_rings(rings + 2, timeout=10)  # the caller still hears ringback
    assert line.modem.state == "ringing"
    commands = line.modem.commands
    assert not any(c.startswith(("AT+VLS", "ATA", "ATH")) for c in commands)
    assert not [e for e in line.pending() if not isinstance(e, LineStatus)]
    with pytest.raises(LineError, match="no call is ringing"):
        line.driver.answer()
    line.modem.cancel_ring()  # the caller gives up; the cadence stops
    assert line.next(LineStatus).state == "idle"  # the driver saw the rings stop
    line.modem.ring(CALLER)  # a later call is announced and answered as usual
    assert line.next(Ringing, timeout=15).caller_id == CALLER
    line.driver.answer()
    assert isinstance(line.next(Connected), Connected)


def test_only_a_ringing_call_can_be_rejected_and_an_analog_line_does_not_dial(make_line):
    line = make_line()
    assert not line.driver.can_dial
    with pytest.raises(LineError, match="cannot place calls"):
        line.driver.dial("5550100")
    with pytest.raises(LineError, match="no call is ringing"):
        line.driver.reject("busy")
    line.modem.ring(CALLER)
    line.next(Ringing)
    with pytest.raises(ValueError, match="reason must be one of"):
        line.driver.reject("later")
    line.driver.answer()
    line.next(Connected)
    with pytest.raises(LineError, match="no call is ringing"):
        line.driver.reject()
