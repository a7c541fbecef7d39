"""The verb tree every call-control dialect is read into (TwiML today, Plivo XML later).

Nodes are frozen dataclasses holding attribute values already checked and converted, with
Twilio's defaults filled in. URLs are kept exactly as written: relative ones are resolved by
whoever runs the document, against the document's own URL. Every node carries the ``line`` of
its start tag in the source; ``line`` takes no part in equality.
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


DialNoun = Number | Conference


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
    """Silence for ``length`` seconds."""

    length: int = 1
    line: int | None = _line()


@dataclass(frozen=True)
class Hangup:
    """End the call."""

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
    line: int | None = _line()


Verb = Say | Play | Pause | Hangup | Redirect | Reject | Gather | Dial


@dataclass(frozen=True)
class Document:
    """A parsed call-control document: its verbs in order, its dialect and where it came from."""

    verbs: tuple[Verb, ...]
    dialect: str = "twiml"
    source: str = ""
