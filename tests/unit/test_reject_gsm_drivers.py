"""Refusing a ringing call: every GSM driver on its own emulator, both on real ptys."""

from __future__ import annotations

import pytest

from appliance.lines.base import Connected, Disconnected, LineError, Ringing
from tests.unit import test_dial_gsm_drivers as dialling
from tests.unit.test_alsa_audio import alsa_sim_config  # noqa: F401 - a fixture
from tests.unit.test_dial_gsm_drivers import DIALECTS
from tests.unit.test_simcom_driver_on_emulator import CALLER, Line

# Every dialect's emulator with its driver running on it, as for dialling.
dialect = dialling.dialect
make_line = dialling.make_line
line = dialling.line


@pytest.mark.parametrize("reason", ["rejected", "busy"])
def test_rejecting_a_ringing_call_releases_it_unanswered(line: Line, dialect: str, reason: str):
    line.modem.ring(CALLER)
    line.next(Ringing)
    line.driver.reject(reason)
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_state("idle", timeout=5)
    commands = line.modem.commands
    assert DIALECTS[dialect][3] in commands and "ATA" not in commands
    line.modem.ring(CALLER)  # the line takes the next call as usual
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []
    line.driver.answer()
    assert isinstance(line.next(Connected), Connected)


def test_only_a_ringing_call_can_be_rejected(line: Line):
    with pytest.raises(LineError, match="no call is ringing"):
        line.driver.reject()
    line.modem.ring(CALLER)
    line.next(Ringing)
    with pytest.raises(ValueError, match="reason must be one of"):
        line.driver.reject("later")
    line.driver.answer()
    line.next(Connected)
    with pytest.raises(LineError, match="no call is ringing"):
        line.driver.reject()
    assert line.modem.state == "active"
