from pathlib import Path

import pytest

from appliance.audio.frames import AudioFormat
from appliance.config import (
    ApiSection,
    ConfigError,
    LineConfig,
    WebSection,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[2]

SIMCOM_LINE = """
[[line]]
name = "gsm0"
driver = "simcom"
control = "/dev/ttyUSB2"
audio = "serial:/dev/ttyUSB4"
number = "+15551230000"
voice_url = "rooms"
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.errors


def test_shipped_config_loads_with_two_simulated_lines():
    config = load_config(REPO / "config.toml")
    assert [line.name for line in config.lines] == ["gsm0", "gsm1"]
    assert {line.driver for line in config.lines} == {"sim"}
    assert [line.number for line in config.lines] == ["+15551230000", "+15551230001"]
    assert config.web == WebSection("127.0.0.1", 8080)
    assert config.appliance.data_dir == REPO / "var"
    assert config.path == REPO / "config.toml"
    assert config.api == ApiSection(None, None)


def test_shipped_demo_rule_exists_next_to_the_config():
    config = load_config(REPO / "config.toml")
    for line in config.lines:
        assert (REPO / line.voice_url).is_file()


def test_minimal_config_gets_defaults():
    config = parse_config(SIMCOM_LINE)
    assert config.audio.rate == 16000
    assert config.audio.format == AudioFormat(16000, 20)
    assert config.web == WebSection("0.0.0.0", 80)
    assert config.sim.speed == 1.0
    assert config.lines == (
        LineConfig(
            name="gsm0",
            driver="simcom",
            control="/dev/ttyUSB2",
            audio="serial:/dev/ttyUSB4",
            number="+15551230000",
            voice_url="rooms",
        ),
    )


def test_relative_data_dir_resolves_against_the_config_folder(tmp_path):
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    path.write_text('[appliance]\nname = "x"\ndata_dir = "state"\n')
    assert load_config(path).appliance.data_dir == tmp_path / "etc" / "state"


def test_absolute_data_dir_is_kept(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[appliance]\nname = "x"\ndata_dir = "/var/lib/appliance"\n')
    assert load_config(path).appliance.data_dir == Path("/var/lib/appliance")


def test_audio_rate_must_be_8000_or_16000():
    assert errors_of("[audio]\nrate = 44100\n") == ["audio.rate: must be 8000 or 16000, not 44100"]


def test_frame_ms_must_be_10_20_30_or_40():
    assert errors_of("[audio]\nframe_ms = 25\n") == [
        "audio.frame_ms: must be 10, 20, 30 or 40, not 25"
    ]


def test_wrong_type_names_expected_and_actual():
    assert errors_of('[audio]\nframe_ms = "20"\n') == [
        'audio.frame_ms: expected an integer, got string "20"'
    ]
    assert errors_of("[audio]\nrate = true\n") == [
        "audio.rate: expected an integer, got boolean true"
    ]


def test_unknown_key_suggests_the_closest():
    assert errors_of('[web]\nlisen = "0.0.0.0:80"\n') == [
        'web.lisen: unknown key (did you mean "listen"?)'
    ]


def test_unknown_section_suggests_the_closest():
    assert errors_of('[[lines]]\nname = "x"\n') == ['lines: unknown section (did you mean "line"?)']


@pytest.mark.parametrize(
    ("listen", "error"),
    [
        ("0.0.0.0", 'web.listen: expected "host:port", got "0.0.0.0"'),
        (":80", 'web.listen: expected "host:port", got ":80"'),
        ("0.0.0.0:http", 'web.listen: expected "host:port", got "0.0.0.0:http"'),
        ("0.0.0.0:70000", "web.listen: port must be 1 to 65535, not 70000"),
        ("0.0.0.0:0", "web.listen: port must be 1 to 65535, not 0"),
    ],
)
def test_listen_must_be_host_and_port(listen, error):
    assert errors_of(f'[web]\nlisten = "{listen}"\n') == [error]


def test_listen_accepts_ipv6_in_brackets():
    assert parse_config('[web]\nlisten = "[::]:8080"\n').web == WebSection("::", 8080)


def test_account_sid_must_look_like_a_twilio_sid():
    assert errors_of('[api]\naccount_sid = "AC123"\n') == [
        'api.account_sid: must be "AC" and 32 hex digits, not "AC123"'
    ]
    sid = "AC" + "0123456789abcdef" * 2
    assert parse_config(f'[api]\naccount_sid = "{sid}"\nauth_token = "t"\n').api == ApiSection(
        sid, "t"
    )


@pytest.mark.parametrize("speed", ["0", "-1", "21"])
def test_sim_speed_is_positive_and_at_most_20(speed):
    (error,) = errors_of(f"[sim]\nspeed = {speed}\n")
    assert error.startswith("sim.speed: must be more than 0 and at most 20")


def test_sim_speed_accepts_integers():
    assert parse_config("[sim]\nspeed = 5\n").sim.speed == 5.0


def test_line_audio_must_start_with_serial_or_alsa():
    text = SIMCOM_LINE + SIMCOM_LINE.replace("gsm0", "gsm1").replace(
        "serial:/dev/ttyUSB4", "/dev/ttyUSB4"
    )
    assert errors_of(text) == ['line[1].audio: must start with "serial:" or "alsa:"']


def test_line_control_is_required_for_modem_drivers():
    assert errors_of(SIMCOM_LINE.replace('control = "/dev/ttyUSB2"\n', "")) == [
        'line[0].control: required for driver "simcom"'
    ]


def test_unknown_driver_lists_the_drivers_and_suggests():
    (error,) = errors_of(SIMCOM_LINE.replace('"simcom"', '"simcomm"'))
    assert error == (
        "line[0].driver: must be one of simcom | quectel | huawei | sim800 | v253 | sim, "
        'not "simcomm" (did you mean "simcom"?)'
    )


def test_duplicate_line_names_are_refused():
    assert errors_of(SIMCOM_LINE + SIMCOM_LINE) == [
        'line[1].name: "gsm0" is already used by line[0]'
    ]


def test_v253_line_has_no_audio_key():
    line = SIMCOM_LINE.replace('"simcom"', '"v253"')
    assert errors_of(line) == [
        'line[0].audio: not used with driver "v253" (the control port carries the voice)'
    ]
    config = parse_config(line.replace('audio = "serial:/dev/ttyUSB4"\n', ""))
    assert config.lines[0].audio is None


def test_sim_line_needs_neither_control_nor_audio_and_may_drift():
    config = parse_config(
        '[[line]]\nname = "s"\ndriver = "sim"\nnumber = "+15551230000"\n'
        'voice_url = "rooms"\ndrift_ppm = -250\n'
    )
    assert config.lines[0].control is None
    assert config.lines[0].drift_ppm == -250.0


def test_drift_is_only_for_sim_lines_and_bounded():
    assert errors_of(SIMCOM_LINE + "drift_ppm = 10.0\n") == [
        'line[0].drift_ppm: only allowed for driver "sim"'
    ]
    sim = '[[line]]\nname = "s"\ndriver = "sim"\nnumber = "+1555"\nvoice_url = "r"\n'
    assert errors_of(sim + "drift_ppm = 1500\n") == [
        "line[0].drift_ppm: must be between -1000 and 1000"
    ]


def test_voice_method_is_get_or_post():
    assert errors_of(SIMCOM_LINE + 'voice_method = "PUT"\n') == [
        'line[0].voice_method: must be "GET" or "POST", not "PUT"'
    ]
    assert parse_config(SIMCOM_LINE + 'voice_method = "get"\n').lines[0].voice_method == "GET"


def test_missing_required_line_keys_are_each_reported():
    assert errors_of('[[line]]\nname = "x"\ndriver = "sim"\n') == [
        "line[0].number: required",
        "line[0].voice_url: required",
    ]


def test_all_errors_are_collected_at_once():
    text = '[audio]\nrate = 44100\nframe_ms = 25\n[web]\nlisen = "x"\n' + SIMCOM_LINE.replace(
        'audio = "serial:/dev/ttyUSB4"', 'audio = "/dev/ttyUSB4"'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.errors == [
        "audio.rate: must be 8000 or 16000, not 44100",
        "audio.frame_ms: must be 10, 20, 30 or 40, not 25",
        'web.lisen: unknown key (did you mean "listen"?)',
        'line[0].audio: must start with "serial:" or "alsa:"',
    ]
    assert str(caught.value) == "\n".join(caught.value.errors)


def test_toml_syntax_error_gives_the_line():
    (error,) = errors_of("[audio]\nrate = 16000\nframe_ms 20\n")
    assert error.startswith("line 3, column 10: TOML syntax error:")


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml")
    assert "cannot read" in caught.value.errors[0]
