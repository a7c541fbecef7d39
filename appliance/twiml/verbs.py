"""The verb tree every call-control dialect is read into (TwiML and Plivo XML).

Nodes are frozen dataclasses holding attribute values already checked and converted, with
the dialect's defaults filled in (Twilio's for TwiML, Plivo's for Plivo XML); fields only one
dialect has keep their defaults in the other's documents. URLs are kept exactly as written:
relative ones are resolved by whoever runs the document, against the document's own URL.
Every node carries the ``line`` of its start tag in the source; ``line`` takes no part in
equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Allowed values, from Twilio's TwiML reference (seed 002 for <Conference>).
METHODS = ("GET", "POST")
BEEP_VALUES = ("true", "false", "onEnter", "onExit")
JITTER_BUFFER_SIZES = ("small", "medium", "large", "off")
CONFERENCE_RECORD_VALUES = ("do-not-record", "record-from-start")
DIAL_RECORD_VALUES = (
    "do-not-record",
    "record-from-answer",
    "record-from-ringing",
    "record-from-answer-dual",
    "record-from-ringing-dual",
)
TRIM_VALUES = ("trim-silence", "do-not-trim")
REGIONS = ("us1", "us2", "ie1", "de1", "sg1", "br1", "au1", "jp1")
CONFERENCE_EVENTS = (
    "start",
    "end",
    "join",
    "leave",
    "mute",
    "hold",
    "modify",
    "speaker",
    "announcement",
)
# SignalWire (seed 003) adds "failed" to Twilio's three.
RECORDING_EVENTS = ("in-progress", "completed", "absent", "failed")
REJECT_REASONS = ("rejected", "busy")
GATHER_INPUTS = ("dtmf", "speech", "dtmf speech")
MAX_PARTICIPANTS = 250
PARTICIPANT_LABEL_MAX = 128

# Allowed values, from Plivo's XML reference (seed 004 for <Conference>).
PLIVO_MAX_MEMBERS = 20
PLIVO_CONFERENCE_TIME_LIMIT = 86400  # Plivo's default: a conference ends after 24 hours
PLIVO_BEEPS = ("beep:1", "beep:2")
PLIVO_RECORD_FORMATS = ("mp3", "wav")
PLIVO_TRANSCRIPTION_TYPES = ("auto", "hybrid", "manual")
PLIVO_HANGUP_REASONS = ("rejected", "busy")
PLIVO_CHANNEL_TYPES = ("mono", "stereo")


def _line() -> Any:
    """The source line of a node: metadata, not part of equality."""
    return field(default=None, compare=False, kw_only=True)


# --- nouns of <Dial> ------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    """A phone number to dial."""

    number: str
    send_digits: str = ""
    url: str | None = None
    method: str = "POST"
    send_on_preanswer: bool = False  # Plivo: send the digits during early media
    line: int | None = _line()


@dataclass(frozen=True)
class User:
    """A SIP endpoint to dial (Plivo's <User>); ``sip_headers`` are (name, value) pairs."""

    uri: str
    send_digits: str = ""
    send_on_preanswer: bool = False
    sip_headers: tuple[tuple[str, str], ...] = ()
    line: int | None = _line()


@dataclass(frozen=True)
class Conference:
    """A named conference room; attribute defaults are Twilio's.

    ``wait_url`` None means the default hold music, "" means silence while waiting.
    ``beep`` is one of ``BEEP_VALUES``.
    """

    name: str
    muted: bool = False
    beep: str = "true"
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    wait_url: str | None = None
    wait_method: str = "POST"
    max_participants: int = MAX_PARTICIPANTS
    record: str = "do-not-record"
    trim: str = "trim-silence"
    region: str | None = None
    coach: str | None = None
    status_callback_event: tuple[str, ...] = ()
    status_callback: str | None = None
    status_callback_method: str = "POST"
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    recording_status_callback_event: tuple[str, ...] = ("completed",)
    event_callback_url: str | None = None
    jitter_buffer_size: str = "large"
    participant_label: str | None = None
    line: int | None = _line()


DialNoun = Number | Conference | User


# --- verbs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """Speak ``text`` (SSML tags inside are flattened to their text); ``loop`` 0 = forever."""

    text: str
    voice: str = "man"
    language: str = "en-US"
    loop: int = 1
    line: int | None = _line()


@dataclass(frozen=True)
class Play:
    """Play an audio URL ``loop`` times (0 = forever), or send ``digits`` as DTMF tones."""

    url: str
    loop: int = 1
    digits: str | None = None
    line: int | None = _line()


@dataclass(frozen=True)
class Pause:
    """Silence for ``length`` seconds.

    Plivo's <Wait> may end early: with ``silence`` once no sound is heard for ``min_silence``
    milliseconds, and with ``beep`` when an answering machine's beep is heard.
    """

    length: int = 1
    silence: bool = False
    min_silence: int = 2000
    beep: bool = False
    line: int | None = _line()


@dataclass(frozen=True)
class Hangup:
    """End the call; Plivo's ``reason`` ("rejected" or "busy") refuses an unanswered call and
    its ``schedule`` ends the call that many seconds later while the next verbs run."""

    reason: str | None = None
    schedule: int | None = None
    line: int | None = _line()


@dataclass(frozen=True)
class Redirect:
    """Continue with the document at ``url``."""

    url: str
    method: str = "POST"
    line: int | None = _line()


@dataclass(frozen=True)
class Reject:
    """Refuse an unanswered call with ``reason`` "rejected" or "busy"."""

    reason: str = "rejected"
    line: int | None = _line()


GatherChild = Say | Play | Pause


@dataclass(frozen=True)
class Gather:
    """Collect digits (or speech) while the nested prompts play."""

    children: tuple[GatherChild, ...] = ()
    action: str | None = None
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = "#"
    num_digits: int | None = None
    input: str = "dtmf"
    language: str = "en-US"
    hints: str = ""
    speech_timeout: str | None = None
    action_on_empty_result: bool = False
    partial_result_callback: str | None = None
    partial_result_callback_method: str = "POST"
    line: int | None = _line()


@dataclass(frozen=True)
class Dial:
    """Connect the call to its nouns; for a conference ``caller_id`` and ``timeout`` are unused."""

    nouns: tuple[DialNoun, ...]
    action: str | None = None
    method: str = "POST"
    hangup_on_star: bool = False
    time_limit: int = 14400
    caller_id: str | None = None
    timeout: int = 30
    record: str = "do-not-record"
    trim: str = "trim-silence"
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    recording_status_callback_event: tuple[str, ...] = ("completed",)
    answer_on_bridge: bool = False
    ring_tone: str | None = None
    # Plivo only.
    caller_name: str | None = None
    confirm_sound: str | None = None
    confirm_key: str | None = None
    confirm_timeout: int = 120
    dial_music: str | None = None
    callback_url: str | None = None
    callback_method: str = "POST"
    redirect: bool = True
    digits_match: tuple[str, ...] = ()
    digits_match_b_leg: tuple[str, ...] = ()
    sip_headers: tuple[tuple[str, str], ...] = ()
    line: int | None = _line()


@dataclass(frozen=True)
class GetDigits:
    """Plivo's <GetDigits>: collect keys while the nested prompts play; defaults are Plivo's.

    ``finish_on_key`` "" means no key ends the input (Plivo's "none").
    """

    children: tuple[GatherChild, ...] = ()
    action: str | None = None
    method: str = "POST"
    timeout: int = 5
    digit_timeout: int = 2
    finish_on_key: str = "#"
    num_digits: int = 99
    retries: int = 1
    redirect: bool = True
    play_beep: bool = False
    valid_digits: str = "1234567890*#"
    invalid_digits_sound: str | None = None
    log: bool = True
    line: int | None = _line()


@dataclass(frozen=True)
class SendDigits:
    """Send DTMF tones on the call (Plivo's <DTMF>); ``w`` waits 0.5 s, ``W`` 1 s.

    With ``async_`` the next verb starts as soon as the first digit is sent.
    """

    digits: str
    async_: bool = True
    line: int | None = _line()


@dataclass(frozen=True)
class PreAnswer:
    """Prompts played in early media, before the call is answered (Plivo's <PreAnswer>)."""

    children: tuple[GatherChild, ...] = ()
    line: int | None = _line()


@dataclass(frozen=True)
class Record:
    """Record the caller (TwiML's and Plivo's <Record>); defaults are Plivo's.

    ``finish_on_key`` lists the keys that stop the recording ("" for none). A TwiML document
    fills in Twilio's defaults; its ``recordingStatusCallback`` is ``callback_url`` and its
    ``transcribeCallback`` is ``transcription_url``. ``timeout`` 0 means no silence timeout.
    """

    action: str | None = None
    method: str = "POST"
    file_format: str = "mp3"
    redirect: bool = True
    timeout: int = 15
    max_length: int = 60
    play_beep: bool = True
    finish_on_key: str = "#"
    record_session: bool = False
    start_on_dial_answer: bool = False
    record_channel_type: str = "stereo"
    transcription_type: str | None = None
    transcription_url: str | None = None
    transcription_method: str = "POST"
    callback_url: str | None = None
    callback_method: str = "POST"
    # TwiML only.
    trim: str = "do-not-trim"
    recording_status_callback_event: tuple[str, ...] = ("completed",)
    transcribe: bool = False
    line: int | None = _line()


@dataclass(frozen=True)
class PlivoConference:
    """Plivo's top-level <Conference> (seed 004); attribute defaults are Plivo's.

    ``enter_sound`` and ``exit_sound`` are "" (none), "beep:1", "beep:2" or a URL returning
    Play/Speak/Wait; ``wait_sound`` None means no sound while alone. ``digits_match`` holds
    the key patterns reported to ``callback_url``.
    """

    name: str
    muted: bool = False
    enter_sound: str = ""
    exit_sound: str = ""
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    stay_alone: bool = True
    wait_sound: str | None = None
    max_members: int = PLIVO_MAX_MEMBERS
    record: bool = False
    record_file_format: str = "mp3"
    record_when_alone: bool = False
    time_limit: int = PLIVO_CONFERENCE_TIME_LIMIT
    hangup_on_star: bool = False
    action: str | None = None
    method: str = "POST"
    redirect: bool = True
    callback_url: str | None = None
    callback_method: str = "POST"
    digits_match: tuple[str, ...] = ()
    floor_event: bool = False
    relay_dtmf: bool = True
    send_digits: str = ""
    transcription_type: str | None = None
    transcription_url: str | None = None
    transcription_method: str = "POST"
    line: int | None = _line()


Verb = (
    Say
    | Play
    | Pause
    | Hangup
    | Redirect
    | Reject
    | Gather
    | Dial
    | GetDigits
    | SendDigits
    | PreAnswer
    | Record
    | PlivoConference
)


@dataclass(frozen=True)
class Document:
    """A parsed call-control document: its verbs in order, its dialect ("twiml" or "plivo")
    and where it came from."""

    verbs: tuple[Verb, ...]
    dialect: str = "twiml"
    source: str = ""
