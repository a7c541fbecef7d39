import pytest
from twilio.twiml.voice_response import Dial as TwilioDial
from twilio.twiml.voice_response import VoiceResponse

from appliance.twiml.parse import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    TwimlError,
    check_twiml,
    parse_twiml,
)
from appliance.twiml.verbs import (
    Conference,
    Dial,
    Document,
    Gather,
    Hangup,
    Number,
    Pause,
    Play,
    Redirect,
    Reject,
    Say,
)


def parse_error(text: str) -> TwimlError:
    with pytest.raises(TwimlError) as caught:
        parse_twiml(text)
    return caught.value


# --- documents from the official twilio builder ---------------------------------------------


def test_say_play_pause_hangup_from_the_twilio_builder():
    response = VoiceResponse()
    response.say("Hello there", voice="alice", language="en-GB", loop=2)
    response.play("https://example.com/hello.mp3", loop=0)
    response.play(digits="ww1234#")
    response.pause(length=3)
    response.hangup()
    document = parse_twiml(str(response), source="https://example.com/voice.xml")
    assert document == Document(
        verbs=(
            Say("Hello there", voice="alice", language="en-GB", loop=2),
            Play("https://example.com/hello.mp3", loop=0),
            Play("", digits="ww1234#"),
            Pause(3),
            Hangup(),
        ),
        dialect="twiml",
        source="https://example.com/voice.xml",
    )


def test_dial_conference_with_every_attribute_from_the_twilio_builder():
    response = VoiceResponse()
    dial = TwilioDial(
        action="/after",
        method="GET",
        hangup_on_star=True,
        time_limit=600,
        caller_id="+15550001111",
        timeout=20,
        record="record-from-answer",
        trim="do-not-trim",
        recording_status_callback="/rec",
        recording_status_callback_method="GET",
        recording_status_callback_event="in-progress completed",
        answer_on_bridge=True,
        ring_tone="uk",
    )
    dial.conference(
        "Room 1234",
        muted=True,
        beep="onExit",
        start_conference_on_enter=False,
        end_conference_on_exit=True,
        wait_url="https://example.com/wait",
        wait_method="GET",
        max_participants=10,
        record="record-from-start",
        region="ie1",
        coach="CA0123456789abcdef0123456789abcdef",
        trim="do-not-trim",
        status_callback_event="start end join leave mute hold modify speaker announcement",
        status_callback="https://example.com/events",
        status_callback_method="GET",
        recording_status_callback="https://example.com/recording",
        recording_status_callback_method="GET",
        recording_status_callback_event="in-progress completed absent",
        event_callback_url="https://example.com/ended",
        jitter_buffer_size="small",
        participant_label="grandma",
    )
    response.append(dial)
    (verb,) = parse_twiml(str(response)).verbs
    assert verb == Dial(
        nouns=(
            Conference(
                name="Room 1234",
                muted=True,
                beep="onExit",
                start_conference_on_enter=False,
                end_conference_on_exit=True,
                wait_url="https://example.com/wait",
                wait_method="GET",
                max_participants=10,
                record="record-from-start",
                trim="do-not-trim",
                region="ie1",
                coach="CA0123456789abcdef0123456789abcdef",
                status_callback_event=(
                    "start",
                    "end",
                    "join",
                    "leave",
                    "mute",
                    "hold",
                    "modify",
                    "speaker",
                    "announcement",
                ),
                status_callback="https://example.com/events",
                status_callback_method="GET",
                recording_status_callback="https://example.com/recording",
                recording_status_callback_method="GET",
                recording_status_callback_event=("in-progress", "completed", "absent"),
                event_callback_url="https://example.com/ended",
                jitter_buffer_size="small",
                participant_label="grandma",
            ),
        ),
        action="/after",
        method="GET",
        hangup_on_star=True,
        time_limit=600,
        caller_id="+15550001111",
        timeout=20,
        record="record-from-answer",
        trim="do-not-trim",
        recording_status_callback="/rec",
        recording_status_callback_method="GET",
        recording_status_callback_event=("in-progress", "completed"),
        answer_on_bridge=True,
        ring_tone="uk",
    )


def test_conference_defaults_are_twilios():
    response = VoiceResponse()
    response.dial().conference("Room 1234")
    (dial,) = parse_twiml(str(response)).verbs
    (conference,) = dial.nouns
    assert conference.beep == "true"
    assert conference.muted is False
    assert conference.start_conference_on_enter is True
    assert conference.end_conference_on_exit is False
    assert conference.wait_url is None  # the default hold music
    assert conference.wait_method == "POST"
    assert conference.max_participants == 250
    assert conference.jitter_buffer_size == "large"
    assert conference.record == "do-not-record"
    assert conference.trim == "trim-silence"
    assert conference.status_callback_event == ()
    assert conference.recording_status_callback_event == ("completed",)
    assert (dial.action, dial.method, dial.hangup_on_star, dial.time_limit) == (
        None,
        "POST",
        False,
        14400,
    )


def test_empty_wait_url_means_silence_not_default_music():
    response = VoiceResponse()
    response.dial().conference("quiet", wait_url="")
    assert parse_twiml(str(response)).verbs[0].nouns[0].wait_url == ""


def test_seed_moderated_conference_example_keeps_name_without_whitespace():
    document = parse_twiml(
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Conference startConferenceOnEnter="true" endConferenceOnExit="true">
moderated-conference-room
</Conference>
</Dial>
</Response>"""
    )
    (conference,) = document.verbs[0].nouns
    assert conference.name == "moderated-conference-room"
    assert conference.end_conference_on_exit is True


def test_seed_dial_attributes_example():
    document = parse_twiml(
        """<Response>
<Dial action="handleLeaveConference.php" method="POST" hangupOnStar="true" timeLimit="30">
<Conference>LoveTwilio</Conference>
</Dial>
</Response>"""
    )
    assert document.verbs == (
        Dial(
            nouns=(Conference("LoveTwilio"),),
            action="handleLeaveConference.php",
            hangup_on_star=True,
            time_limit=30,
        ),
    )


def test_booleans_and_methods_are_case_insensitive_values():
    (dial,) = parse_twiml(
        '<Response><Dial hangupOnStar="TRUE" method="get">'
        '<Conference muted="False">r</Conference></Dial></Response>'
    ).verbs
    assert dial.hangup_on_star is True
    assert dial.method == "GET"
    assert dial.nouns[0].muted is False


def test_dial_text_is_a_number_and_number_nouns_parse():
    document = parse_twiml(
        "<Response><Dial>+15551234567</Dial>"
        '<Dial><Number sendDigits="1234#">+15557654321</Number></Dial></Response>'
    )
    assert document.verbs == (
        Dial(nouns=(Number("+15551234567"),)),
        Dial(nouns=(Number("+15557654321", send_digits="1234#"),)),
    )


def test_gather_parses_attributes_and_nested_prompts():
    response = VoiceResponse()
    gather = response.gather(
        action="/pin", method="GET", num_digits=4, timeout=7, finish_on_key="*", input="dtmf"
    )
    gather.say("Please enter your PIN")
    gather.pause(length=1)
    gather.play("beep.wav")
    (verb,) = parse_twiml(str(response)).verbs
    assert verb == Gather(
        children=(Say("Please enter your PIN"), Pause(1), Play("beep.wav")),
        action="/pin",
        method="GET",
        timeout=7,
        finish_on_key="*",
        num_digits=4,
        input="dtmf",
    )


def test_redirect_and_reject():
    response = VoiceResponse()
    response.redirect("next.xml", method="GET")
    response.reject(reason="busy")
    assert parse_twiml(str(response)).verbs == (
        Redirect("next.xml", method="GET"),
        Reject("busy"),
    )


def test_ssml_inside_say_is_flattened_to_words():
    response = VoiceResponse()
    say = response.say("Hello")
    say.break_(time="1s")
    say.emphasis("dear")
    say.sub("W3C", alias="World Wide Web Consortium")
    assert parse_twiml(str(response)).verbs[0].text == ("Hello dear World Wide Web Consortium")


def test_every_node_keeps_its_source_line():
    document = parse_twiml(
        """<?xml version="1.0"?>
<Response>
  <Say>Welcome</Say>
  <Gather numDigits="4">
    <Say>PIN?</Say>
  </Gather>
  <Dial>
    <Conference>family</Conference>
  </Dial>
</Response>
"""
    )
    say, gather, dial = document.verbs
    assert (say.line, gather.line, gather.children[0].line) == (3, 4, 5)
    assert (dial.line, dial.nouns[0].line) == (7, 8)


# --- errors ---------------------------------------------------------------------------------


def test_not_xml_is_12100_with_line():
    error = parse_error("<Response>\n<Say>hi</Sya>\n</Response>")
    assert (error.code, error.line) == (12100, 2)
    assert "not well-formed" in error.message


def test_plain_text_is_12100():
    assert parse_error("Hello, world").code == 12100


def test_root_must_be_response():
    error = parse_error("<?xml version='1.0'?>\n<Resp><Say>x</Say></Resp>")
    assert (error.code, error.line) == (12100, 2)
    assert "<Response>" in error.message


def test_unknown_verb_is_12200_with_line_and_hint():
    error = parse_error("<Response>\n  <Say>hi</Say>\n  <Sya>hi</Sya>\n</Response>")
    assert (error.code, error.line) == (12200, 3)
    assert error.message == "unknown verb <Sya> (did you mean <Say>?)"
    assert str(error) == "error 12200: unknown verb <Sya> (did you mean <Say>?) (line 3)"


@pytest.mark.parametrize(
    ("element", "attribute", "value"),
    [
        ("Play", "loop", "x"),
        ("Conference", "beep", "maybe"),
        ("Conference", "maxParticipants", "300"),
        ("Conference", "maxParticipants", "0"),
        ("Conference", "jitterBufferSize", "huge"),
        ("Conference", "statusCallbackEvent", "start finish"),
        ("Conference", "waitMethod", "PUT"),
        ("Conference", "muted", "yes"),
        ("Conference", "record", "always"),
    ],
)
def test_bad_attribute_value_is_12200_naming_element_attribute_and_line(element, attribute, value):
    inner = f'<{element} {attribute}="{value}">room</{element}>'
    text = f"<Response>\n<Dial>\n{inner}\n</Dial>\n</Response>"
    if element == "Play":
        text = f"<Response>\n\n{inner}\n</Response>"
    error = parse_error(text)
    assert (error.code, error.line) == (12200, 3)
    assert error.message.startswith(f'<{element}> attribute {attribute}="{value}": ')


def test_attribute_names_are_case_sensitive_and_unknown_ones_are_a_warning_as_on_twilio():
    text = '<Response><Dial><Conference Beep="false">r</Conference></Dial></Response>'
    [warning] = check_twiml(text)
    assert (warning.code, warning.warning) == (12200, True)
    assert warning.message == '<Conference> has no attribute "Beep" (did you mean "beep"?); ignored'
    conference = parse_twiml(text).verbs[0].nouns[0]
    assert conference.beep == "true"  # the misspelt attribute had no effect


def test_unknown_noun_in_dial_is_12200():
    error = parse_error("<Response>\n<Dial>\n<Conferense>r</Conferense>\n</Dial>\n</Response>")
    assert (error.code, error.line) == (12200, 3)
    assert error.message == "unknown noun <Conferense> in <Dial> (did you mean <Conference>?)"


def test_twilio_verbs_this_appliance_does_not_run_are_named():
    error = parse_error("<Response><Enqueue>support</Enqueue></Response>")
    assert error.code == 12200
    assert "not supported" in error.message


def test_check_collects_every_problem_in_line_order():
    errors = check_twiml(
        """<Response>
  <Sya>hi</Sya>
  <Play loop="x">a.wav</Play>
  <Dial>
    <Conference beep="maybe" maxParticipants="300">r</Conference>
  </Dial>
</Response>"""
    )
    assert [(error.code, error.line) for error in errors] == [
        (12200, 2),
        (12200, 3),
        (12200, 5),
        (12200, 5),
    ]


def test_valid_document_has_no_problems():
    assert check_twiml("<Response><Say>hi</Say></Response>") == []


# --- safety ---------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Response><Say>&lol3;</Say></Response>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE Response [
 <!ENTITY secret SYSTEM "file:///etc/passwd">
]>
<Response><Say>&secret;</Say></Response>"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_entity_declarations_are_refused(text):
    error = parse_error(text)
    assert (error.code, error.line) == (12100, 3)
    assert error.message == "entity declarations are not allowed"


def test_oversized_document_is_refused_before_parsing():
    text = "<Response><Say>" + "a" * MAX_DOCUMENT_BYTES + "</Say></Response>"
    error = parse_error(text)
    assert error.code == 11750
    assert "64 KiB" in error.message


def test_deep_nesting_is_refused():
    depth = MAX_DEPTH + 5
    text = "<Response>" + "<Gather>" * depth + "</Gather>" * depth + "</Response>"
    error = parse_error(text)
    assert error.code == 12100
    assert f"nested more than {MAX_DEPTH} deep" in error.message


def test_plivo_documents_are_read_by_the_plivo_reader():
    text = """<Response>
  <Speak>Welcome</Speak>
  <Conference enterSound="beep:1">family</Conference>
</Response>"""
    document = parse_twiml(text)
    assert document.dialect == "plivo"
    assert [type(verb).__name__ for verb in document.verbs] == ["Say", "PlivoConference"]
