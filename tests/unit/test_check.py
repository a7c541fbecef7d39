import io

from twilio.twiml.voice_response import VoiceResponse

from appliance.twiml.check import run_check

BROKEN = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>Welcome</Say>
  <Sya>typo</Sya>
  <Dial>
    <Conference beep="maybe">family</Conference>
  </Dial>
</Response>
"""


def check(target: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_check(target, out=out)
    return code, out.getvalue().splitlines()


def test_valid_file_prints_ok_and_the_verb_count(tmp_path):
    response = VoiceResponse()
    response.say("Welcome")
    response.dial().conference("family")
    path = tmp_path / "welcome.xml"
    path.write_text(str(response))
    assert check(str(path)) == (0, ["OK: 2 verbs"])


def test_each_problem_is_printed_with_source_line_and_code(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text(BROKEN)
    code, lines = check(str(path))
    assert code == 1
    assert lines == [
        f"{path}:4: error 12200: unknown verb <Sya> (did you mean <Say>?)",
        f'{path}:6: error 12200: <Conference> attribute beep="maybe": '
        'must be one of "true", "false", "onEnter" or "onExit"',
    ]


def test_file_url_and_parse_failure(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text("<Response>\n<Say>oops</Response>\n")
    code, lines = check(path.as_uri())
    assert code == 1
    (line,) = lines
    assert line.startswith(f"{path.as_uri()}:2: error 12100: document is not well-formed XML")


def test_missing_file_is_reported_not_raised(tmp_path):
    code, lines = check(str(tmp_path / "nope.xml"))
    assert code == 1
    assert lines[0].startswith(f"{tmp_path / 'nope.xml'}: error 11200:")


def test_shipped_demo_rule_is_valid():
    from pathlib import Path

    rule = Path(__file__).resolve().parents[2] / "appliance/data/rules/welcome.xml"
    assert check(str(rule)) == (0, ["OK: 2 verbs"])
