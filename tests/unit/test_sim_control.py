"""The simulator's control socket: server, client and the ``appliance sim`` command."""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
import soundfile

from appliance.sim.cli import add_sim_parser, run_sim_command, socket_path
from appliance.sim.client import SimClient, SimControlError, SimUnavailableError
from appliance.sim.control import SimControl, SimControlServer
from appliance.sim.simcom import SimcomModem


@pytest.fixture
def modem() -> Iterator[SimcomModem]:
    modem = SimcomModem(name="gsm0", number="+15551230000", speed=8.0)
    modem.start()
    yield modem
    modem.stop()


@pytest.fixture
def server(modem: SimcomModem, tmp_path: Path) -> Iterator[SimControlServer]:
    with SimControlServer({"gsm0": modem}, tmp_path / "sim.sock") as server:
        yield server


@pytest.fixture
def client(server: SimControlServer) -> SimClient:
    return SimClient(server.socket_path, timeout=5)


def raw_exchange(path: Path, *lines: bytes) -> list[dict]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        reader = sock.makefile("rb")
        answers = []
        for line in lines:
            sock.sendall(line)
            answers.append(json.loads(reader.readline()))
        return answers


def answer_call(modem: SimcomModem) -> serial.Serial:
    """Do what a line driver does: answer, switch PCM on, keep the ports open."""
    control = serial.Serial(modem.control_path, 115200, timeout=5)
    control.write(b"ATE0\r")
    control.read_until(b"OK\r\n")
    control.write(b"ATA\r")
    assert b"VOICE CALL: BEGIN" in control.read_until(b"OK\r\n")
    control.write(b"AT+CPCMREG=1\r")
    assert control.read_until(b"OK\r\n").endswith(b"OK\r\n")
    assert modem.wait_audio(5)
    return control


def test_status_lists_every_line(client, modem):
    lines = client.status()
    assert list(lines) == ["gsm0"]
    assert lines["gsm0"]["state"] == "idle"
    assert lines["gsm0"]["number"] == "+15551230000"
    assert set(lines["gsm0"]["stats"]) >= {"frames", "underruns", "overruns"}


def test_a_call_placed_through_the_socket_rings_keys_plays_records_and_hangs_up(
    client, modem, tmp_path
):
    client.ring("gsm0", "+15550001111", name="Grandma")
    assert modem.state == "ringing" and modem.caller_id == "+15550001111"
    control = answer_call(modem)

    client.press("gsm0", "12#")
    assert b"+RXDTMF: #" in control.read_until(b"+RXDTMF: #\r\n")

    wav = tmp_path / "hello.wav"
    soundfile.write(wav, np.full(800, 0.25), 8000)
    start = client.play("gsm0", wav)
    assert isinstance(start, int) and start >= 0

    out = tmp_path / "heard.wav"
    samples = client.record("gsm0", out)
    recorded, rate = soundfile.read(out, dtype="int16")
    assert rate == 8000 and len(recorded) == samples

    client.hangup("gsm0")
    assert modem.wait_state("idle", 2)
    assert b"NO CARRIER" in control.read_until(b"NO CARRIER\r\n")
    control.close()


def test_bad_requests_are_answered_and_the_server_keeps_serving(server):
    answers = raw_exchange(
        server.socket_path,
        b"this is not json\n",
        b"[1, 2]\n",
        b'{"cmd": "explode"}\n',
        b'{"cmd": "ring", "line": "gsm9", "caller_id": "+1"}\n',
        b'{"cmd": "press", "line": "gsm0"}\n',
        b'{"cmd": "press", "line": "gsm0", "keys": "1"}\n',
        b'{"cmd": "play", "line": "gsm0", "wav": "/no/such.wav"}\n',
        b'{"cmd": "hangup", "line": "gsm0"}\n',
        b'{"cmd": "status"}\n',
    )
    *errors, status = answers
    assert all(answer["ok"] is False for answer in errors)
    assert "not JSON" in errors[0]["error"]
    assert "unknown cmd 'explode'" in errors[2]["error"]
    assert "unknown line 'gsm9'" in errors[3]["error"]
    assert "'keys'" in errors[4]["error"]
    assert "no call in progress" in errors[5]["error"]
    assert "no such file" in errors[6]["error"]
    assert "no call to hang up" in errors[7]["error"]
    assert status["ok"] is True and "gsm0" in status["lines"]


def test_ringing_a_busy_line_is_an_error(client):
    client.ring("gsm0", "+15550001111")
    with pytest.raises(SimControlError, match="busy"):
        client.ring("gsm0", "+15550002222")


def test_control_handles_requests_without_a_socket(modem):
    control = SimControl({"gsm0": modem})
    assert control.handle(b'{"cmd": "status"}')["lines"]["gsm0"]["state"] == "idle"
    assert control.handle("{")["ok"] is False
    assert control.handle('{"cmd": "press", "line": "gsm0", "keys": "1", "ms": "x"}')["ok"] is False


def test_client_reports_a_missing_daemon_clearly(tmp_path):
    with pytest.raises(SimUnavailableError, match="no simulator control socket"):
        SimClient(tmp_path / "absent.sock").status()


def test_stop_removes_the_socket(modem, tmp_path):
    server = SimControlServer({"gsm0": modem}, tmp_path / "sim.sock")
    server.start()
    assert server.socket_path.is_socket()
    server.stop()
    assert not server.socket_path.exists()
    server.stop()


# --- the command line -------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="appliance")
    add_sim_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_rings_and_shows_status(server, modem, capsys):
    sock = str(server.socket_path)
    assert run_sim_command(parse("sim", "--socket", sock, "ring", "gsm0", "+15550001111")) == 0
    assert "gsm0: ringing from +15550001111" in capsys.readouterr().out
    assert run_sim_command(parse("sim", "--socket", sock, "status")) == 0
    out = capsys.readouterr().out
    assert "gsm0" in out and "ringing" in out and "+15550001111" in out
    assert run_sim_command(parse("sim", "--socket", sock, "press", "gsm0", "1")) == 1
    assert "no call in progress" in capsys.readouterr().err


def test_cli_says_when_the_daemon_is_not_there(tmp_path, capsys):
    args = parse("sim", "--socket", str(tmp_path / "none.sock"), "status")
    assert run_sim_command(args) == 3
    assert "no simulator control socket" in capsys.readouterr().err


def test_cli_finds_the_socket_in_the_configs_data_dir(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[appliance]\nname = "x"\ndata_dir = "/srv/line"\n')
    assert socket_path(parse("sim", "--config", str(config), "status")) == Path(
        "/srv/line/sim.sock"
    )
    config.write_text('[appliance]\ndata_dir = "var"\n')
    assert socket_path(parse("sim", "--config", str(config), "status")) == tmp_path / "var/sim.sock"


def test_cli_rejects_a_broken_config(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text("[appliance\n")
    assert run_sim_command(parse("sim", "--config", str(config), "status")) == 2
    assert "config.toml" in capsys.readouterr().err


def dial(modem: SimcomModem, number: str) -> serial.Serial:
    """Do what a line driver does to place a call: ``ATD<number>;``, with +CLCC reports on."""
    control = serial.Serial(modem.control_path, 115200, timeout=5)
    control.write(b"ATE0\r")
    control.read_until(b"OK\r\n")
    control.write(b"AT+CLCC=1\r")
    control.read_until(b"OK\r\n")
    control.write(f"ATD{number};\r".encode())
    assert control.read_until(b"OK\r\n").endswith(b"OK\r\n")
    return control


def test_the_far_end_of_an_outbound_call_is_set_and_answered_through_the_socket(client, modem):
    client.far_end("gsm0", "no-answer")
    control = dial(modem, "+15557654321")
    assert modem.wait_state("alerting", 5)
    line = client.status()["gsm0"]
    assert (line["state"], line["dialed"]) == ("alerting", "+15557654321")
    client.answer("gsm0")
    assert modem.state == "active"
    assert b'+CLCC: 1,0,0,0,0,"+15557654321",145' in control.read_until(b"VOICE CALL: BEGIN")
    with pytest.raises(SimControlError, match="no outbound call waiting"):
        client.answer("gsm0")
    client.hangup("gsm0")  # the called party hangs up
    assert b"NO CARRIER" in control.read_until(b"NO CARRIER\r\n")
    control.close()


def test_a_busy_far_end_set_through_the_socket(client, modem):
    client.far_end("gsm0", "busy", after=0.4)
    control = dial(modem, "5550100")
    assert modem.wait_state("idle", 5)
    assert control.read_until(b"BUSY\r\n").endswith(b"BUSY\r\n")
    assert client.status()["gsm0"]["dialed"] == "5550100"
    control.close()
    with pytest.raises(SimControlError, match="behaviour must be one of"):
        client.far_end("gsm0", "maybe")
    answers = raw_exchange(
        Path(client.socket_path),
        b'{"cmd":"far_end","line":"gsm0","behaviour":"busy","after":"x"}\n',
    )
    assert answers == [{"ok": False, "error": "'after' must be a number of seconds"}]


def test_cli_sets_the_far_end_and_answers(server, modem, capsys):
    sock = str(server.socket_path)
    assert run_sim_command(parse("sim", "--socket", sock, "far-end", "gsm0", "no-answer")) == 0
    control = dial(modem, "+15557654321")
    assert modem.wait_state("alerting", 5)
    assert run_sim_command(parse("sim", "--socket", sock, "answer", "gsm0")) == 0
    assert modem.state == "active"
    assert run_sim_command(parse("sim", "--socket", sock, "status")) == 0
    out = capsys.readouterr().out
    assert "the next party called will no-answer" in out and "+15557654321" in out
    args = ["sim", "--socket", sock, "far-end", "gsm0", "answer", "--after", "0.2"]
    assert run_sim_command(parse(*args)) == 0
    with pytest.raises(SystemExit):
        parse("sim", "--socket", sock, "far-end", "gsm0", "sometimes")
    control.close()
