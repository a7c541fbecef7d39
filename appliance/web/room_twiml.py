"""The TwiML documents of the built-in rooms: a room's conference and the PIN entry's steps.

Pure functions (no I/O, no web): each returns a complete ``<Response>`` as text, built with
ElementTree so every name and attribute is escaped. The tests check each document against the
one the twilio package's own ``VoiceResponse`` generates for the same options.
URLs are absolute paths (``/voice/...``): the interpreter resolves them against the document's
own URL, as Twilio does, so they reach this same web server.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from appliance.store.rooms import WAIT_MUSIC_DEFAULT, WAIT_MUSIC_NONE, OpeningHours, Room

ENTRY_PATH = "/voice/entry"
PIN_PATH = "/voice/entry/pin"
MEDIA_PATH = "/voice/media/"
MAX_PIN_DIGITS = 10  # the store's longest PIN; a PIN that long needs no "#"
PIN_TIMEOUT = 10  # seconds of silence before the Gather gives up (then counts as a try)
TRIES = 3
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

ENTER_PIN = "Please enter your PIN, followed by the hash key."
WRONG_PIN = "That PIN is not right."
NO_PIN = "No PIN was entered."
GOODBYE = "Goodbye."
LOCKED_OUT = "There were too many wrong PINs from this phone. Please try again later. Goodbye."
NOT_ALLOWED = "This phone number may not enter this room. Goodbye."


def _document(root: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def _say(parent: ET.Element, text: str) -> None:
    ET.SubElement(parent, "Say").text = text


def wait_url(room: Room) -> str | None:
    """The room's waitUrl: None (the bundled hold music), "" (silence) or its uploaded file."""
    if room.wait_music == WAIT_MUSIC_DEFAULT:
        return None
    if room.wait_music == WAIT_MUSIC_NONE:
        return ""
    return MEDIA_PATH + room.wait_music


def conference_attributes(room: Room, moderator: bool) -> dict[str, str]:
    """The ``<Conference>`` attributes for a participant (or the moderator) of ``room``."""
    attrs: dict[str, str] = {}
    if room.muted_on_entry and not moderator:
        attrs["muted"] = "true"
    attrs["beep"] = room.beep
    if moderator:
        attrs["startConferenceOnEnter"] = "true"
        attrs["endConferenceOnExit"] = "true" if room.end_on_moderator_exit else "false"
    elif room.moderator_pin:
        attrs["startConferenceOnEnter"] = "false"  # ordinary callers wait for the moderator
    music = wait_url(room)
    if music is not None:
        attrs["waitUrl"] = music
        if music:
            attrs["waitMethod"] = "GET"  # a static file
    attrs["maxParticipants"] = str(room.max_participants)
    if room.record:
        attrs["record"] = "record-from-start"
    return attrs


def _add_conference(parent: ET.Element, room: Room, moderator: bool) -> None:
    dial = ET.SubElement(parent, "Dial")
    ET.SubElement(dial, "Conference", conference_attributes(room, moderator)).text = room.name


def room_document(room: Room, moderator: bool = False) -> str:
    """What ``/voice/room/<id>`` serves: the caller joins the room's conference."""
    response = ET.Element("Response")
    _add_conference(response, room, moderator)
    return _document(response)


def pin_prompt(welcome: str | None, attempt: int, before: str = "") -> str:
    """Ask for the PIN (try ``attempt`` of :data:`TRIES`); empty input posts to the action too.

    Every prompt is inside the ``<Gather>``: a caller who knows the PIN may key it at once
    (keys pressed before a Gather starts are dropped, as on Twilio).
    """
    response = ET.Element("Response")
    gather = ET.SubElement(response, "Gather", {
        "action": f"{PIN_PATH}?attempt={attempt}",
        "method": "POST",
        "numDigits": str(MAX_PIN_DIGITS),
        "finishOnKey": "#",
        "timeout": str(PIN_TIMEOUT),
        "actionOnEmptyResult": "true",
    })
    for sentence in (before, welcome, ENTER_PIN):
        if sentence:
            _say(gather, sentence)
    return _document(response)


def welcome_text(appliance_name: str) -> str:
    return f"Welcome to {appliance_name}."


def goodbye(*sentences: str) -> str:
    """Say each sentence, then hang up."""
    response = ET.Element("Response")
    for sentence in sentences:
        _say(response, sentence)
    ET.SubElement(response, "Hangup")
    return _document(response)


def admitted(room: Room, moderator: bool) -> str:
    """A correct PIN: a word of confirmation, then the room."""
    response = ET.Element("Response")
    _say(response, f"Joining {room.name}." if not moderator else
         f"Joining {room.name} as the moderator.")
    _add_conference(response, room, moderator)
    return _document(response)


def next_opening(room: Room, moment: datetime) -> datetime | None:
    """When ``room`` opens next after ``moment`` (None: never, it has no opening hours)."""
    best: datetime | None = None
    for hours in room.opening_hours:
        start = _next_start(hours, moment)
        if start is not None and (best is None or start < best):
            best = start
    return best


def _next_start(hours: OpeningHours, moment: datetime) -> datetime | None:
    hour, minute = (int(part) for part in hours.start.split(":"))
    for ahead in range(8):
        day = moment + timedelta(days=ahead)
        if day.weekday() not in hours.days:
            continue
        start = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if start > moment:
            return start
    return None


def closed_message(room: Room, moment: datetime) -> str:
    """"This room is closed now. It opens …" in words a caller understands."""
    opening = next_opening(room, moment)
    if opening is None:
        return "This room is closed now. Goodbye."
    at = opening.strftime("%H:%M")
    if opening.date() == moment.date():
        when = f"today at {at}"
    elif opening.date() == (moment + timedelta(days=1)).date():
        when = f"tomorrow at {at}"
    else:
        when = f"on {DAY_NAMES[opening.weekday()]} at {at}"
    return f"This room is closed now. It opens {when}. Goodbye."
