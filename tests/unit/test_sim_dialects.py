"""``driver = "sim"`` lines of every modem family: the ``model`` key, the emulator/driver pairs,
and the control socket's commands on dialects other than SIMCom."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from appliance.config import SIM_MODELS, ConfigError, parse_config
from appliance.lines.registry import DRIVER_NAMES
from appliance.sim.control import SimControl
from appliance.sim.models import MODELS, make_emulator
from appliance.sim.quectel import QuectelModem
from appliance.sim.v253 import V253Modem

SIM = '[[line]]\nname = "s"\ndriver = "sim"\nnumber = "+15551230000"\nvoice_url = "rooms"\n'
QUECTEL = ('[[line]]\nname = "q"\ndriver = "quectel"\ncontrol = "/dev/ttyUSB2"\n'
           'audio = "serial:/dev/ttyUSB4"\nnumber = "+15551230001"\nvoice_url = "rooms"\n')


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.errors


# --- config ------------------------------------------------------------------------------------


def test_a_sim_line_emulates_simcom_unless_it_names_a_model():
    assert parse_config(SIM).lines[0].model == "simcom"
    for model in SIM_MODELS:
        assert parse_config(SIM + f'model = "{model}"\n').lines[0].model == model


def test_an_unknown_sim_model_is_refused_with_the_choices_and_a_hint():
    assert errors_of(SIM + 'model = "quectell"\n') == [
        'line[0].model: must be one of simcom | quectel | huawei | sim800 | v253-usr | '
        'v253-conexant, not "quectell" (did you mean "quectel"?)'
    ]
    assert errors_of(SIM + 'model = "v253"\n')[0].startswith(
        'line[0].model: must be one of simcom | quectel')


def test_model_belongs_to_sim_lines_only_and_must_be_a_string():
    assert errors_of(QUECTEL + 'model = "quectel"\n') == [
        'line[0].model: only allowed for driver "sim" (driver "quectel" is the model)'
    ]
    assert errors_of(SIM + "model = 7\n") == ["line[0].model: expected a string, got integer 7"]


def test_model_errors_are_collected_with_the_others():
    errors = errors_of(SIM + 'model = "nokia"\ndrift_ppm = 5000\n')
    assert [error.split(":")[0] for error in errors] == ["line[0].drift_ppm", "line[0].model"]


def test_config_and_emulators_know_the_same_models():
    assert SIM_MODELS == MODELS


# --- emulator and driver pairs -------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_every_model_makes_its_emulator_and_names_the_real_driver(model: str, tmp_path: Path):
    emulated = make_emulator(model, name="line0", number="+15551230000", speed=4,
                             drift_ppm=-200)
    try:
        assert emulated.driver in DRIVER_NAMES and emulated.driver != "sim"
        assert emulated.driver == model.split("-")[0]
        assert Path(emulated.control).exists()
        assert emulated.modem.drift_ppm == -200 and emulated.modem.number == "+15551230000"
        if model.startswith("v253"):
            assert emulated.audio is None
            assert emulated.modem.variant == model.removeprefix("v253-")
        elif model == "sim800":
            assert emulated.audio.startswith("alsa:appliance_sim:")
        else:
            assert Path(emulated.audio.removeprefix("serial:")).exists()
        # The keys are a valid config line for the real driver.
        config = parse_config('[[line]]\nname = "l"\n' + emulated.config_keys()
                              + 'number = "+15551230000"\nvoice_url = "rooms"\n')
        assert config.lines[0].driver == emulated.driver
        assert config.lines[0].audio == emulated.audio
    finally:
        emulated.modem.stop()


def test_an_unknown_model_is_a_value_error():
    with pytest.raises(ValueError, match="unknown sim model 'nokia'"):
        make_emulator("nokia", name="x")


# --- the control socket on other dialects ------------------------------------------------------


@pytest.fixture
def pots() -> Iterator[V253Modem]:
    with V253Modem(variant="usr", name="pots0", number="+15551230000", speed=8) as modem:
        yield modem


@pytest.fixture
def quectel() -> Iterator[QuectelModem]:
    with QuectelModem(name="q0", number="+15551230001", speed=8) as modem:
        yield modem


def ask(control: SimControl, **request) -> dict:
    return control.handle(json.dumps(request))


def test_status_ring_and_hangup_work_on_an_analog_line(pots: V253Modem):
    control = SimControl({"pots0": pots})
    status = ask(control, cmd="status")["lines"]["pots0"]
    assert status["state"] == "idle" and status["dialed"] == "" and status["audio"] is False
    assert status["number"] == "+15551230000" and "underruns" in status["stats"]

    assert ask(control, cmd="ring", line="pots0", caller_id="+15557654321") == {
        "ok": True, "state": "ringing"}
    assert pots.wait_rings(1, 10)
    assert ask(control, cmd="status")["lines"]["pots0"]["caller_id"] == "+15557654321"
    assert ask(control, cmd="hangup", line="pots0") == {"ok": True}
    assert pots.wait_state("idle", 5)
    assert ask(control, cmd="hangup", line="pots0") == {
        "ok": False, "error": "pots0 has no call to hang up"}


def test_an_analog_line_refuses_outbound_commands_clearly(pots: V253Modem):
    control = SimControl({"pots0": pots})
    for request in ({"cmd": "far_end", "behaviour": "answer"}, {"cmd": "answer"}):
        assert ask(control, line="pots0", **request) == {
            "ok": False, "error": "pots0 cannot take outbound calls (an analog line)"}


def test_press_play_and_record_reach_an_analog_line(pots: V253Modem, tmp_path: Path):
    control = SimControl({"pots0": pots})
    answer = ask(control, cmd="press", line="pots0", keys="1")
    assert answer["ok"] is False and "no call" in answer["error"]
    wav = tmp_path / "say.wav"
    soundfile.write(str(wav), np.full(800, 1000, dtype=np.int16), 8000, subtype="PCM_16")
    assert ask(control, cmd="play", line="pots0", wav=str(wav)) == {"ok": True,
                                                                   "start_sample": 0}
    heard = tmp_path / "heard.wav"
    answer = ask(control, cmd="record", line="pots0", path=str(heard))
    assert answer["ok"] is True and answer["samples"] == 0 and heard.exists()


def test_outbound_commands_work_on_a_gsm_dialect(quectel: QuectelModem):
    control = SimControl({"q0": quectel})
    assert ask(control, cmd="far_end", line="q0", behaviour="busy", after=0.5) == {"ok": True}
    assert ask(control, cmd="answer", line="q0") == {
        "ok": False, "error": "q0 has no outbound call waiting to be answered"}
    assert ask(control, cmd="ring", line="q0", caller_id="+15550001111")["state"] == "ringing"
    assert ask(control, cmd="status")["lines"]["q0"]["state"] == "ringing"
