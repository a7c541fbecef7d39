"""Rooms: what the owner configures on the page, validated, kept in ``rooms.json``.

The built-in entry asks only for a PIN, so a PIN names one room: every PIN and moderator PIN is
unique across all rooms. Names are unique ignoring case ("Family" and "family" would be the same
room to a person reading the page).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tinydb.table import Document

from appliance.store.errors import NotFoundError, Problems, ValidationError
from appliance.store.storage import Database

BEEP_VALUES = ("true", "false", "onEnter", "onExit")  # Twilio <Conference beep>
WAIT_MUSIC_DEFAULT = "default"  # the bundled hold music
WAIT_MUSIC_NONE = "none"
MAX_PARTICIPANTS = 250  # Twilio's upper limit for maxParticipants
MAX_NAME = 64
_PIN = re.compile(r"[0-9]{4,10}")
_CALLER = re.compile(r"\+?[0-9]{3,20}")
_CALLER_PUNCTUATION = re.compile(r"[\s().-]")
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalise_caller(number: str) -> str:
    """A caller ID as typed by a person ("+1 (555) 765-4321") as a modem reports it."""
    return _CALLER_PUNCTUATION.sub("", number)


@dataclass(frozen=True)
class OpeningHours:
    """Open on ``days`` (0 = Monday … 6 = Sunday) from ``start`` to ``end`` ("HH:MM").

    An ``end`` earlier than ``start`` runs past midnight into the next day; "24:00" ends a day.
    """

    days: tuple[int, ...]
    start: str
    end: str

    def contains(self, moment: datetime) -> bool:
        now = moment.strftime("%H:%M")
        today, yesterday = moment.weekday(), (moment.weekday() - 1) % 7
        if self.start < self.end:
            return today in self.days and self.start <= now < self.end
        return (today in self.days and now >= self.start) or (
            yesterday in self.days and now < self.end
        )

    def problem(self) -> str | None:
        if not self.days or not all(isinstance(d, int) and 0 <= d <= 6 for d in self.days):
            return "days must be numbers 0 (Monday) to 6 (Sunday), at least one"
        if not all(isinstance(t, str) and _TIME.fullmatch(t) for t in (self.start, self.end)):
            return "times must be HH:MM"
        if self.start == "24:00" or self.start == self.end:
            return f"{self.start}-{self.end} is not a period of time"
        return None


@dataclass(frozen=True)
class Room:
    """One conference room; ``id`` is None until the store has created it."""

    name: str
    pin: str
    moderator_pin: str | None = None
    muted_on_entry: bool = False
    beep: str = "true"
    wait_music: str = WAIT_MUSIC_DEFAULT  # "default", "none", or an uploaded file's name
    max_participants: int = MAX_PARTICIPANTS
    record: bool = False
    end_on_moderator_exit: bool = False
    opening_hours: tuple[OpeningHours, ...] = ()  # none: always open
    allowed_callers: tuple[str, ...] = ()  # none: anyone who knows the PIN
    id: int | None = None

    def is_open(self, moment: datetime) -> bool:
        """Whether a call at ``moment`` (the appliance's local time) may enter."""
        return not self.opening_hours or any(h.contains(moment) for h in self.opening_hours)

    def admits(self, caller: str) -> bool:
        """Whether this caller ID may enter (exact match after removing punctuation)."""
        return not self.allowed_callers or normalise_caller(caller) in self.allowed_callers

    def to_document(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        del doc["id"]
        return doc

    @classmethod
    def from_document(cls, doc: Document) -> Room:
        fields = {k: v for k, v in doc.items() if k in _FIELD_NAMES}
        return normalised(cls(**fields, id=doc.doc_id))


_FIELD_NAMES = {f.name for f in dataclasses.fields(Room)} - {"id"}


def normalised(room: Room) -> Room:
    """Lists as tuples, opening hours as :class:`OpeningHours`, names and numbers trimmed."""
    return dataclasses.replace(
        room,
        name=room.name.strip() if isinstance(room.name, str) else room.name,
        moderator_pin=room.moderator_pin or None,
        opening_hours=_each(room.opening_hours, _opening_hours),
        allowed_callers=_each(
            room.allowed_callers, lambda c: normalise_caller(c) if isinstance(c, str) else c
        ),
    )


def _each(items: Any, convert: Callable[[Any], Any]) -> Any:
    """A list or tuple as a tuple of converted items; anything else as it is (checks report it)."""
    return tuple(convert(i) for i in items) if isinstance(items, list | tuple) else items


def _opening_hours(hours: Any) -> Any:
    """``hours`` as OpeningHours with sorted days; left as it was when it is not one."""
    try:
        if not isinstance(hours, OpeningHours):
            hours = OpeningHours(tuple(hours["days"]), hours["start"], hours["end"])
        return dataclasses.replace(hours, days=tuple(sorted(set(hours.days))))
    except (KeyError, TypeError):
        return hours  # reported by the checks


def _check_fields(room: Room, problems: Problems) -> None:
    if not isinstance(room.name, str) or not 1 <= len(room.name) <= MAX_NAME:
        problems.add("name", f"must be 1 to {MAX_NAME} characters")
    elif _CONTROL.search(room.name) or "/" in room.name:
        problems.add("name", "must not contain / or control characters")
    if not isinstance(room.pin, str) or not _PIN.fullmatch(room.pin):
        problems.add("pin", "must be 4 to 10 digits")
    if room.moderator_pin is not None:
        if not isinstance(room.moderator_pin, str) or not _PIN.fullmatch(room.moderator_pin):
            problems.add("moderator_pin", "must be 4 to 10 digits")
        elif room.moderator_pin == room.pin:
            problems.add("moderator_pin", "must differ from the PIN")
    for name in ("muted_on_entry", "record", "end_on_moderator_exit"):
        if not isinstance(getattr(room, name), bool):
            problems.add(name, "must be true or false")
    if room.beep not in BEEP_VALUES:
        problems.add("beep", "must be one of " + ", ".join(BEEP_VALUES))
    music = room.wait_music
    if not isinstance(music, str) or not (
        music in (WAIT_MUSIC_DEFAULT, WAIT_MUSIC_NONE) or _FILE_NAME.fullmatch(music)
    ):
        problems.add("wait_music", "must be default, none, or an uploaded file's name")
    count = room.max_participants
    if isinstance(count, bool) or not isinstance(count, int) or not 2 <= count <= MAX_PARTICIPANTS:
        problems.add("max_participants", f"must be a whole number from 2 to {MAX_PARTICIPANTS}")
    if room.end_on_moderator_exit and room.moderator_pin is None:
        problems.add("end_on_moderator_exit", "needs a moderator PIN")
    for name in ("opening_hours", "allowed_callers"):
        if not isinstance(getattr(room, name), tuple):
            problems.add(name, "must be a list")
    for index, hours in enumerate(_items(room.opening_hours)):
        if not isinstance(hours, OpeningHours):
            problems.add(f"opening_hours[{index}]", "must have days, start and end")
        elif (message := hours.problem()) is not None:
            problems.add(f"opening_hours[{index}]", message)
    for index, caller in enumerate(_items(room.allowed_callers)):
        if not isinstance(caller, str) or not _CALLER.fullmatch(caller):
            problems.add(f"allowed_callers[{index}]", "must be a phone number: + and 3-20 digits")


def _items(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else ()


def _check_unique(room: Room, others: Iterable[Room], problems: Problems) -> None:
    pins = {p for p in (room.pin, room.moderator_pin) if p}
    for other in others:
        if isinstance(room.name, str) and other.name.casefold() == room.name.casefold():
            problems.add("name", f"room {other.name!r} already has this name")
        taken = pins & {other.pin, other.moderator_pin}
        for pin in taken:
            field = "pin" if pin == room.pin else "moderator_pin"
            problems.add(field, f"already used by room {other.name!r}")


class RoomStore:
    """Create, update, delete and look up rooms; every check runs under the database lock."""

    TABLE = "rooms"

    def __init__(self, database: Database) -> None:
        self._database = database

    def _all(self, db: Any) -> list[Room]:
        return [Room.from_document(doc) for doc in db.table(self.TABLE).all()]

    def _validated(self, room: Room, others: list[Room]) -> Room:
        room = normalised(room)
        problems = Problems()
        _check_fields(room, problems)
        _check_unique(room, others, problems)
        problems.raise_if_any()
        return room

    def create(self, room: Room) -> Room:
        """Store a new room; returns it with its ``id``. Raises ValidationError."""
        with self._database.locked() as db:
            room = self._validated(dataclasses.replace(room, id=None), self._all(db))
            room_id = db.table(self.TABLE).insert(room.to_document())
        return dataclasses.replace(room, id=room_id)

    def update(self, room_id: int, **changes: Any) -> Room:
        """Change some fields of a room; returns the room as stored."""
        unknown = set(changes) - _FIELD_NAMES
        if unknown:
            raise ValidationError({name: "not a field of a room" for name in sorted(unknown)})
        with self._database.locked() as db:
            rooms = self._all(db)
            current = next((r for r in rooms if r.id == room_id), None)
            if current is None:
                raise NotFoundError(f"no room with id {room_id}")
            others = [r for r in rooms if r.id != room_id]
            room = self._validated(dataclasses.replace(current, **changes), others)
            db.table(self.TABLE).upsert(Document(room.to_document(), doc_id=room_id))
        return room

    def delete(self, room_id: int) -> None:
        with self._database.locked() as db:
            if not db.table(self.TABLE).remove(doc_ids=[room_id]):
                raise NotFoundError(f"no room with id {room_id}")

    def get(self, room_id: int) -> Room:
        with self._database.locked() as db:
            doc = db.table(self.TABLE).get(doc_id=room_id)
        if doc is None:
            raise NotFoundError(f"no room with id {room_id}")
        return Room.from_document(doc)

    def find_by_name(self, name: str) -> Room | None:
        """The room of that name, ignoring case and surrounding spaces."""
        wanted = name.strip().casefold()
        return next((r for r in self.list() if r.name.casefold() == wanted), None)

    def find_by_pin(self, pin: str) -> tuple[Room, bool] | None:
        """The room a caller's PIN opens, and whether it was the moderator PIN."""
        for room in self.list():
            if pin == room.pin:
                return room, False
            if pin == room.moderator_pin:
                return room, True
        return None

    def list(self) -> list[Room]:
        """Every room, by name."""
        with self._database.locked() as db:
            rooms = self._all(db)
        return sorted(rooms, key=lambda r: r.name.casefold())
