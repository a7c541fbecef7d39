import io

import pytest
from plivo import plivoxml

from appliance.twiml.check import run_check
from appliance.twiml.parse import TwimlError, check_twiml, parse_twiml
from appliance.twiml.verbs import (
    Dial,
    Document,
    GetDigits,
    Hangup,
    Number,
    Pause,
    Play,
    PlivoConference,
    PreAnswer,
    Record,
    Redirect,
    Say,
    SendDigits,
    User,
)


def parse_error(text: str) -> TwimlError:
    with pytest.raises(TwimlError) as caught:
        parse_twiml(text)
    return caught.value


def response(*elements: plivoxml.PlivoXMLElement) -> str:
    document = plivoxml.ResponseElement()
    for element in elements:
        document.add(element)
    return document.to_string()


# --- documents from the official plivo builder ----------------------------------------------


def test_speak_play_wait_hangup_redirect_from_the_plivo_builder():
    text = response(
        plivoxml.SpeakElement("Hello there", voice="MAN", language="en-GB", loop=2),
        plivoxml.SpeakElement("Hi"),
        plivoxml.PlayElement("https://example.com/hello.mp3", loop=0),
        plivoxml.WaitElement(length=3, silence=True, min_silence=500, beep=True),
        plivoxml.WaitElement(),
        plivoxml.RedirectElement("next.xml", method="GET"),
        plivoxml.HangupElement(reason="busy", schedule=60),
        plivoxml.HangupElement(),
    )
    document = parse_twiml(text, source="https://example.com/answer.xml")
    assert document == Document(
        verbs=(
            Say("Hello there", voice="man", language="en-GB", loop=2),
            Say("Hi", voice="woman"),
            Play("https://example.com/hello.mp3", loop=0),
            Pause(3, silence=True, min_silence=500, beep=True),
            Pause(1),
            Redirect("next.xml", method="GET"),
            Hangup(reason="busy", schedule=60),
            Hangup(),
        ),
        dialect="plivo",
        source="https://example.com/answer.xml",
    )


def test_ssml_inside_speak_is_flattened_and_polly_voices_are_kept():
    speak = plivoxml.SpeakElement("Hello", voice="Polly.Joanna")
    speak.add_break(time="1s")
    speak.add_emphasis("dear", level="strong")
    speak.add_sub("W3C", alias="World Wide Web Consortium")
    (say,) = parse_twiml(response(speak)).verbs
    assert say == Say("Hello dear World Wide Web Consortium", voice="Polly.Joanna")
    (joined,) = parse_twiml("<Response><Speak>one<cont>two</cont></Speak></Response>").verbs
    assert joined.text == "one two"


def test_get_digits_with_every_attribute_and_nested_prompts():
    get_digits = plivoxml.GetDigitsElement(
        action="https://example.com/pin",
        method="GET",
        timeout=10,
        digit_timeout=3,
        finish_on_key="*",
        num_digits=4,
        retries=2,
        redirect=False,
        play_beep=True,
        valid_digits="0123456789",
        invalid_digits_sound="https://example.com/invalid.mp3",
        log=False,
    )
    get_digits.add(plivoxml.SpeakElement("Please enter your PIN"))
    get_digits.add(plivoxml.WaitElement(length=1))
    get_digits.add(plivoxml.PlayElement("beep.wav"))
    (verb,) = parse_twiml(response(get_digits)).verbs
    assert verb == GetDigits(
        children=(Say("Please enter your PIN", voice="woman"), Pause(1), Play("beep.wav")),
        action="https://example.com/pin",
        method="GET",
        timeout=10,
        digit_timeout=3,
        finish_on_key="*",
        num_digits=4,
        retries=2,
        redirect=False,
        play_beep=True,
        valid_digits="0123456789",
        invalid_digits_sound="https://example.com/invalid.mp3",
        log=False,
    )


def test_get_digits_defaults_are_plivos_and_none_means_no_finish_key():
    (default,) = parse_twiml(response(plivoxml.GetDigitsElement())).verbs
    assert default == GetDigits()
    assert (default.timeout, default.digit_timeout, default.num_digits, default.retries) == (
        5,
        2,
        99,
        1,
    )
    assert (default.finish_on_key, default.valid_digits, default.redirect, default.log) == (
        "#",
        "1234567890*#",
        True,
        True,
    )
    (no_key,) = parse_twiml(response(plivoxml.GetDigitsElement(finish_on_key="none"))).verbs
    assert no_key.finish_on_key == ""


def test_dtmf_is_send_digits_and_async_defaults_to_true():
    text = response(plivoxml.DTMFElement("12w3W#"), plivoxml.DTMFElement("99", async_=False))
    assert parse_twiml(text).verbs == (SendDigits("12w3W#"), SendDigits("99", async_=False))


def test_pre_answer_holds_prompts():
    pre_answer = plivoxml.PreAnswerElement()
    pre_answer.add(plivoxml.SpeakElement("Please hold"))
    pre_answer.add(plivoxml.PlayElement("https://example.com/ring.mp3"))
    pre_answer.add(plivoxml.WaitElement(length=2))
    assert parse_twiml(response(pre_answer, plivoxml.SpeakElement("Hi"))).verbs == (
        PreAnswer(
            children=(
                Say("Please hold", voice="woman"),
                Play("https://example.com/ring.mp3"),
                Pause(2),
            )
        ),
        Say("Hi", voice="woman"),
    )


def test_record_with_every_attribute_and_plivos_defaults():
    record = plivoxml.RecordElement(
        action="https://example.com/recorded",
        method="GET",
        file_format="wav",
        redirect=False,
        timeout=7,
        max_length=120,
        play_beep=False,
        finish_on_key="*#",
        record_session=True,
        start_on_dial_answer=True,
        transcription_type="hybrid",
        transcription_url="https://example.com/text",
        transcription_method="GET",
        transcription_report_type="summary",
        callback_url="https://example.com/ready",
        callback_method="GET",
        record_channel_type="mono",
    )
    text = response(plivoxml.SpeakElement("After the beep"), record, plivoxml.RecordElement())
    _, verb, default = parse_twiml(text).verbs
    assert verb == Record(
        action="https://example.com/recorded",
        method="GET",
        file_format="wav",
        redirect=False,
        timeout=7,
        max_length=120,
        play_beep=False,
        finish_on_key="*#",
        record_session=True,
        start_on_dial_answer=True,
        record_channel_type="mono",
        transcription_type="hybrid",
        transcription_url="https://example.com/text",
        transcription_method="GET",
        callback_url="https://example.com/ready",
        callback_method="GET",
    )
    assert default == Record()
    assert (default.file_format, default.timeout, default.max_length, default.play_beep) == (
        "mp3",
        15,
        60,
        True,
    )


def test_dial_with_numbers_users_and_every_plivo_attribute():
    dial = plivoxml.DialElement(
        action="https://example.com/dialled",
        method="GET",
        hangup_on_star=True,
        time_limit=600,
        timeout=20,
        caller_id="+15550001111",
        caller_name="Family line",
        confirm_sound="https://example.com/confirm.xml",
        confirm_timeout=10,
        confirm_key="5",
        dial_music="real",
        callback_url="https://example.com/dial-events",
        callback_method="GET",
        redirect=False,
        digits_match="#0,99",
        digits_match_b_leg="*1",
        sip_headers="room=family,pin=1234",
    )
    dial.add(plivoxml.NumberElement("+15557654321", send_digits="ww1234", send_on_preanswer=True))
    dial.add(plivoxml.UserElement("sip:alice@phone.plivo.com", sip_headers="team=blue"))
    # A document of shared verbs only reads as TwiML: the <Speak> makes this one Plivo XML.
    _, verb = parse_twiml(response(plivoxml.SpeakElement("Connecting"), dial)).verbs
    assert verb == Dial(
        nouns=(
            Number("+15557654321", send_digits="ww1234", send_on_preanswer=True),
            User("sip:alice@phone.plivo.com", sip_headers=(("team", "blue"),)),
        ),
        action="https://example.com/dialled",
        method="GET",
        hangup_on_star=True,
        time_limit=600,
        timeout=20,
        caller_id="+15550001111",
        caller_name="Family line",
        confirm_sound="https://example.com/confirm.xml",
        confirm_key="5",
        confirm_timeout=10,
        dial_music="real",
        callback_url="https://example.com/dial-events",
        callback_method="GET",
        redirect=False,
        digits_match=("#0", "99"),
        digits_match_b_leg=("*1",),
        sip_headers=(("room", "family"), ("pin", "1234")),
    )


def test_conference_with_every_attribute_from_the_plivo_builder():
    conference = plivoxml.ConferenceElement(
        "Room 1234",
        muted=True,
        enter_sound="beep:1",
        exit_sound="beep:2",
        start_conference_on_enter=False,
        end_conference_on_exit=True,
        stay_alone=False,
        wait_sound="https://example.com/wait.xml",
        max_members=5,
        record=True,
        record_file_format="wav",
        time_limit=600,
        hangup_on_star=True,
        action="https://example.com/left",
        method="GET",
        callback_url="https://example.com/conference-events",
        callback_method="GET",
        digits_match="#0,99,000",
        floor_event=True,
        redirect=False,
        relay_dtmf=False,
        send_digits="w12",
        record_when_alone=True,
        transcription_type="auto",
        transcription_url="https://example.com/transcript",
        transcription_method="GET",
    )
    document = parse_twiml(response(conference))
    assert document.dialect == "plivo"
    assert document.verbs == (
        PlivoConference(
            name="Room 1234",
            muted=True,
            enter_sound="beep:1",
            exit_sound="beep:2",
            start_conference_on_enter=False,
            end_conference_on_exit=True,
            stay_alone=False,
            wait_sound="https://example.com/wait.xml",
            max_members=5,
            record=True,
            record_file_format="wav",
            record_when_alone=True,
            time_limit=600,
            hangup_on_star=True,
            action="https://example.com/left",
            method="GET",
            redirect=False,
            callback_url="https://example.com/conference-events",
            callback_method="GET",
            digits_match=("#0", "99", "000"),
            floor_event=True,
            relay_dtmf=False,
            send_digits="w12",
            transcription_type="auto",
            transcription_url="https://example.com/transcript",
            transcription_method="GET",
        ),
    )


def test_conference_defaults_are_plivos():
    (conference,) = parse_twiml(response(plivoxml.ConferenceElement("family"))).verbs
    assert conference == PlivoConference("family")
    assert (conference.muted, conference.enter_sound, conference.exit_sound) == (False, "", "")
    assert (conference.start_conference_on_enter, conference.end_conference_on_exit) == (
        True,
        False,
    )
    assert (conference.stay_alone, conference.wait_sound, conference.max_members) == (
        True,
        None,
        20,
    )
    assert (conference.record, conference.record_file_format, conference.time_limit) == (
        False,
        "mp3",
        86400,
    )
    assert (conference.method, conference.callback_method, conference.redirect) == (
        "POST",
        "POST",
        True,
    )
    assert (conference.relay_dtmf, conference.floor_event, conference.digits_match) == (
        True,
        False,
        (),
    )


def test_enter_sound_may_be_a_url_returning_plivo_xml():
    text = '<Response><Conference enterSound="enter.xml" exitSound="">r</Conference></Response>'
    (conference,) = parse_twiml(text).verbs
    assert (conference.enter_sound, conference.exit_sound) == ("enter.xml", "")


# --- the conferencing tasks of Plivo's <Conference> reference -------------------------------

PLIVO_DOC_EXAMPLES = [
    (
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Conference>My Room</Conference>
</Response>""",
        PlivoConference("My Room"),
    ),
    (
        """<Response>
    <Conference startConferenceOnEnter="false" waitSound="https://www.foo.com/waitmusic/">
        My Room
    </Conference>
</Response>""",
        PlivoConference(
            "My Room",
            start_conference_on_enter=False,
            wait_sound="https://www.foo.com/waitmusic/",
        ),
    ),
    (
        """<Response>
    <Conference startConferenceOnEnter="true" endConferenceOnExit="true">My Room</Conference>
</Response>""",
        PlivoConference("My Room", end_conference_on_exit=True),
    ),
    (
        """<Response>
    <Conference muted="true" enterSound="beep:2" exitSound="beep:1">My Room</Conference>
</Response>""",
        PlivoConference("My Room", muted=True, enter_sound="beep:2", exit_sound="beep:1"),
    ),
    (
        """<Response>
    <Conference callbackUrl="http://foo.com/confevents/" callbackMethod="POST"
        digitsMatch="#0,99,000">My Room</Conference>
</Response>""",
        PlivoConference(
            "My Room",
            callback_url="http://foo.com/confevents/",
            digits_match=("#0", "99", "000"),
        ),
    ),
    (
        """<Response>
    <Conference record="true" recordFileFormat="wav" action="https://www.foo.com/rec/"
        method="GET" redirect="false">My Room</Conference>
</Response>""",
        PlivoConference(
            "My Room",
            record=True,
            record_file_format="wav",
            action="https://www.foo.com/rec/",
            method="GET",
            redirect=False,
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), PLIVO_DOC_EXAMPLES)
def test_plivo_reference_conference_examples_parse(text, expected):
    document = parse_twiml(text)
    assert document.dialect == "plivo"
    assert document.verbs == (expected,)


def test_every_node_keeps_its_source_line():
    document = parse_twiml(
        """<?xml version="1.0"?>
<Response>
  <Speak>Welcome</Speak>
  <PreAnswer>
    <Wait length="1"/>
  </PreAnswer>
  <GetDigits numDigits="4">
    <Speak>PIN?</Speak>
    <Play>beep.wav</Play>
  </GetDigits>
  <DTMF>12</DTMF>
  <Dial>
    <Number>+15551234567</Number>
    <User>sip:bob@example.com</User>
  </Dial>
  <Record/>
  <Conference>family</Conference>
  <Hangup/>
</Response>
"""
    )
    speak, pre_answer, get_digits, dtmf, dial, record, conference, hangup = document.verbs
    assert (speak.line, pre_answer.line, pre_answer.children[0].line) == (3, 4, 5)
    assert (get_digits.line, get_digits.children[0].line, get_digits.children[1].line) == (7, 8, 9)
    assert (dtmf.line, dial.line, dial.nouns[0].line, dial.nouns[1].line) == (11, 12, 13, 14)
    assert (record.line, conference.line, hangup.line) == (16, 17, 18)


# --- dialect detection ----------------------------------------------------------------------


def test_shared_verbs_alone_read_as_twiml():
    document = parse_twiml("<Response><Play>a.wav</Play><Hangup/></Response>")
    assert document.dialect == "twiml"


@pytest.mark.parametrize(
    "element",
    [
        "<Speak>hi</Speak>",
        "<Wait/>",
        "<GetDigits/>",
        "<DTMF>1</DTMF>",
        "<PreAnswer/>",
        "<Conference>r</Conference>",
    ],
)
def test_one_plivo_only_verb_makes_the_document_plivo(element):
    document = parse_twiml(f"<Response><Play>a.wav</Play>{element}<Hangup/></Response>")
    assert document.dialect == "plivo"


def test_mixing_plivo_and_twiml_is_12200_naming_both_elements():
    error = parse_error(
        """<Response>
  <Speak>Welcome</Speak>
  <Play>a.wav</Play>
  <Gather numDigits="4"/>
</Response>"""
    )
    assert (error.code, error.line) == (12200, 4)
    assert error.message == (
        "document mixes Plivo XML and TwiML: <Speak> (line 2) is Plivo XML, "
        "<Gather> (line 4) is TwiML"
    )


def test_mixing_is_reported_whichever_dialect_comes_first():
    errors = check_twiml("<Response>\n<Say>hi</Say>\n<Wait/>\n</Response>")
    assert [(error.code, error.line) for error in errors] == [(12200, 3)]
    assert "<Wait> (line 3) is Plivo XML, <Say> (line 2) is TwiML" in errors[0].message


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value", "expected"),
    [
        ("maxMembers", "30", "must be a whole number from 1 to 20"),
        ("maxMembers", "0", "must be a whole number from 1 to 20"),
        ("enterSound", "beep:3", 'must be "", "beep:1", "beep:2" or a URL'),
        ("exitSound", "ftp://example.com/x.mp3", 'must be "", "beep:1", "beep:2" or a URL'),
        ("recordFileFormat", "ogg", 'must be one of "mp3" or "wav"'),
        ("muted", "yes", 'must be "true" or "false"'),
        ("method", "PUT", 'must be one of "GET" or "POST"'),
        ("timeLimit", "-5", "must be a whole number, 0 or more"),
        ("transcriptionType", "human", "must be one of"),
        ("digitsMatch", "12,ab", "must be patterns of 0-9, * and #"),
        ("waitSound", "mailto:me@example.com", "must be an http(s) URL"),
    ],
)
def test_bad_conference_attribute_is_12200_with_line(attribute, value, expected):
    error = parse_error(
        f'<Response>\n\n<Conference {attribute}="{value}">r</Conference>\n</Response>'
    )
    assert (error.code, error.line) == (12200, 3)
    assert error.message.startswith(f'<Conference> attribute {attribute}="{value}": {expected}')


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ('<Speak voice="ROBOT">hi</Speak>', 'must be "WOMAN", "MAN" or a Polly voice'),
        ('<Wait length="0"/>', "must be a whole number, 1 or more"),
        ('<Hangup reason="gone"/>', 'must be one of "rejected" or "busy"'),
        ('<GetDigits numDigits="0"/>', "must be a whole number, 1 or more"),
        ('<GetDigits finishOnKey="12"/>', "must be one key of 0-9, * or #"),
        ('<GetDigits validDigits="abc"/>', "must be keys of 0-9, * and #"),
        ('<DTMF async="maybe">1</DTMF>', 'must be "true" or "false"'),
        ('<Record fileFormat="ogg"/>', 'must be one of "mp3" or "wav"'),
        ('<Record maxLength="1"/>', "must be a whole number, 2 or more"),
        ('<Dial sipHeaders="a b"><Number>1</Number></Dial>', "must be name=value pairs"),
    ],
)
def test_bad_attribute_values_of_other_plivo_verbs(element, expected):
    error = parse_error(f"<Response>\n<Speak>hi</Speak>\n{element}\n</Response>")
    assert (error.code, error.line) == (12200, 3)
    assert expected in error.message


def test_unknown_attribute_gets_a_did_you_mean_hint():
    [warning] = check_twiml('<Response><Conference maxMember="5">r</Conference></Response>')
    assert (warning.code, warning.warning) == (12200, True)
    assert warning.message == (
        '<Conference> has no attribute "maxMember" (did you mean "maxMembers"?); ignored'
    )


def test_unknown_verb_gets_a_plivo_hint():
    error = parse_error("<Response>\n<Speak>hi</Speak>\n<Wiat/>\n</Response>")
    assert (error.code, error.line) == (12200, 3)
    assert error.message == "unknown verb <Wiat> (did you mean <Wait>?)"


def test_plivo_verbs_this_appliance_does_not_run_are_named():
    error = parse_error("<Response><Speak>hi</Speak><GetInput/></Response>")
    assert error.message == "<GetInput> is not supported by this appliance"


def test_twiml_prompt_inside_get_digits_points_to_the_plivo_name():
    error = parse_error("<Response>\n<GetDigits>\n<Say>PIN?</Say>\n</GetDigits>\n</Response>")
    assert (error.code, error.line) == (12200, 3)
    assert error.message == "<GetDigits> cannot contain <Say> (Plivo XML uses <Speak>)"


def test_conference_inside_dial_is_refused_in_plivo_xml():
    error = parse_error(
        "<Response>\n<Speak>hi</Speak>\n<Dial>\n<Conference>r</Conference>\n</Dial>\n</Response>"
    )
    assert (error.code, error.line) == (12200, 4)
    assert "put it in <Response>" in error.message


def test_empty_elements_are_refused():
    errors = check_twiml(
        """<Response>
  <Speak></Speak>
  <Conference muted="true"></Conference>
  <DTMF>12x</DTMF>
  <Dial><User>alice</User></Dial>
</Response>"""
    )
    assert [(error.line, error.message) for error in errors] == [
        (2, "<Speak> has no text to speak"),
        (3, "<Conference> needs a room name"),
        (4, '<DTMF> "12x" must be made of 0 1 2 3 4 5 6 7 8 9 * # w W'),
        (5, '<User> "alice" is not a SIP URI such as sip:alice@example.com'),
    ]


def test_check_collects_every_plivo_problem_in_line_order():
    errors = check_twiml(
        """<Response>
  <Speak voice="ROBOT">hi</Speak>
  <Wiat/>
  <Conference maxMembers="30" enterSound="beep:3" recordFileFormat="ogg">r</Conference>
</Response>"""
    )
    assert [(error.code, error.line) for error in errors] == [
        (12200, 2),
        (12200, 3),
        (12200, 4),
        (12200, 4),
        (12200, 4),
    ]


# --- appliance check ------------------------------------------------------------------------


def check(target: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_check(target, out=out)
    return code, out.getvalue().splitlines()


def test_check_prints_ok_for_a_plivo_file(tmp_path):
    path = tmp_path / "answer.xml"
    path.write_text(
        response(
            plivoxml.SpeakElement("Welcome to the family line"),
            plivoxml.ConferenceElement("family", enter_sound="beep:1", max_members=10),
        )
    )
    assert check(str(path)) == (0, ["OK: 2 verbs"])


def test_check_prints_line_numbered_plivo_errors(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Speak>Welcome</Speak>
  <Conference maxMembers="30" enterSound="beep:3">family</Conference>
</Response>
"""
    )
    code, lines = check(str(path))
    assert code == 1
    assert lines == [
        f'{path}:4: error 12200: <Conference> attribute enterSound="beep:3": '
        'must be "", "beep:1", "beep:2" or a URL',
        f'{path}:4: error 12200: <Conference> attribute maxMembers="30": '
        "must be a whole number from 1 to 20",
    ]


def test_check_prints_the_mixed_dialect_error(tmp_path):
    path = tmp_path / "mixed.xml"
    path.write_text("<Response>\n  <Say>hi</Say>\n  <Speak>hi</Speak>\n</Response>\n")
    code, lines = check(str(path))
    assert code == 1
    assert lines == [
        f"{path}:3: error 12200: document mixes Plivo XML and TwiML: "
        "<Speak> (line 3) is Plivo XML, <Say> (line 2) is TwiML"
    ]


@pytest.mark.parametrize("xml", [
    '<Response><Hangup reason="rejected"/></Response>',
    '<Response><Record fileFormat="wav" maxLength="30"/></Response>',
])
def test_shared_verbs_with_plivo_only_attributes_read_as_plivo(xml):
    assert parse_twiml(xml).dialect == "plivo"
    assert check_twiml(xml) == [], "Plivo's attributes are not unknown to Plivo's reader"


def test_plivos_reject_example_keeps_its_reason():
    document = parse_twiml('<Response><Hangup reason="busy"/></Response>')
    assert document.verbs[0].reason == "busy"


def test_a_bare_hangup_still_reads_as_twiml():
    assert parse_twiml("<Response><Hangup/></Response>").dialect == "twiml"
