"""The ``appliance`` command line as a user runs it: a separate process, its exit status and
what it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from twilio.twiml.voice_response import Dial, VoiceResponse

BAD_CONFIG = """\
[appliance]
name = "Home conference line"
data_dir = "var"

[audio]
rate = 44100
frame_ms = "20"

[web]
listen = "localhost"

[sim]
sped = 2

[[line]]
name = "gsm0"
driver = "simcomm"
control = "/dev/ttyUSB2"
audio = "/dev/ttyUSB4"
number = "+15551230000"
voice_url = "rooms"

[[line]]
name = "gsm0"
driver = "sim"
number = "call me"
voice_url = "ftp://example.com/rules.xml"
"""

EXPECTED_ERRORS = [
    "audio.rate: must be 8000 or 16000, not 44100",
    'audio.frame_ms: expected an integer, got string "20"',
    'web.listen: expected "host:port", got "localhost"',
    'sim.sped: unknown key (did you mean "speed"?)',
    "line[0].driver: must be one of simcom | quectel | huawei | sim800 | v253 | sim, "
    'not "simcomm" (did you mean "simcom"?)',
    'line[1].number: must be a phone number such as "+15551230000", not "call me"',
    'line[1].voice_url: must be a path or a file:, http: or https: URL, not "ftp://example.com/rules.xml"',
    'line[1].name: "gsm0" is already used by line[0]',
]


def appliance(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- run --config ---------------------------------------------------------------------------


def test_run_with_a_bad_config_lists_every_mistake_by_key_and_starts_nothing(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(BAD_CONFIG)
    result = appliance("run", "--config", config, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{config}: invalid configuration:"
    assert [line.strip() for line in lines[1:]] == EXPECTED_ERRORS
    assert list(tmp_path.iterdir()) == [config], "nothing is created: no data_dir, no api.json"


def test_run_with_a_toml_syntax_error_names_its_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[appliance]\nname = "line"\n\n[audio\nrate = 8000\n')
    result = appliance("run", "--config", config, cwd=tmp_path)
    assert result.returncode == 2
    assert "line 4, column 7: TOML syntax error" in result.stderr


def test_run_without_a_config_file_says_it_cannot_read_it(tmp_path):
    result = appliance("run", cwd=tmp_path)  # the default ./config.toml is missing
    assert result.returncode == 2
    assert "config.toml: cannot read: No such file or directory" in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- check ----------------------------------------------------------------------------------


def test_check_of_a_valid_document_prints_ok_and_exits_0(tmp_path):
    response = VoiceResponse()
    response.say("Welcome to the family line.")
    dial = Dial(action="after.xml")
    dial.conference("family", beep="onEnter")
    response.append(dial)
    rules = tmp_path / "welcome.xml"
    rules.write_text(str(response))
    result = appliance("check", rules, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "OK: 2 verbs\n", "")


def test_check_of_a_broken_document_prints_each_problem_with_its_line_and_exits_1(tmp_path):
    rules = tmp_path / "broken.xml"
    rules.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Response>\n"
        '  <Say loop="twice">Welcome</Say>\n'
        "  <Gather><Dial>+15550001111</Dial></Gather>\n"
        "  <Enqueue>support</Enqueue>\n"
        "</Response>\n"
    )
    result = appliance("check", "broken.xml", cwd=tmp_path)
    assert result.returncode == 1
    problems = result.stdout.splitlines()
    assert [line.split(": error ")[0] for line in problems] == [
        "broken.xml:3",
        "broken.xml:4",
        "broken.xml:5",
    ]
    assert all(": error 12200: " in line for line in problems)
    assert 'loop="twice"' in problems[0]
    assert "<Gather> cannot contain <Dial>" in problems[1]
    assert "<Enqueue> is not supported" in problems[2]


def test_check_of_malformed_xml_reports_the_parse_error_line(tmp_path):
    rules = tmp_path / "malformed.xml"
    rules.write_text("<Response>\n  <Say>Welcome\n</Response>\n")
    result = appliance("check", rules, cwd=tmp_path)
    assert result.returncode == 1
    (problem,) = result.stdout.splitlines()
    assert problem.startswith(f"{rules}:3: error 12100: document is not well-formed XML")


def test_check_of_a_missing_file_exits_1_with_the_fetch_error(tmp_path):
    result = appliance("check", "nowhere.xml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("nowhere.xml: error 11200: ")
    assert "file not found" in result.stdout
