"""The room form: its values from a Room or from a submitted form, and back into a Room.

Form values stay text (what the owner typed), so a form with an error comes back exactly as
sent; :func:`to_room` converts and reports what cannot be converted, the store checks the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from appliance.store.rooms import MAX_PARTICIPANTS, WAIT_MUSIC_DEFAULT, OpeningHours, Room

HOURS_ROWS = 3  # opening-hours periods the form offers
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BEEPS = (
    ("true", "Beep when someone joins or leaves"),
    ("onEnter", "Beep when someone joins"),
    ("onExit", "Beep when someone leaves"),
    ("false", "No beep"),
)
UPLOAD = "upload"  # the wait-music choice "upload a new file"


@dataclass
class HoursRow:
    days: list[int] = field(default_factory=list)
    start: str = ""
    end: str = ""

    @property
    def blank(self) -> bool:
        return not self.days and not self.start and not self.end


@dataclass
class RoomForm:
    """The form's values as text, and one error message per field."""

    name: str = ""
    pin: str = ""
    moderator_pin: str = ""
    muted_on_entry: bool = False
    beep: str = "true"
    wait_music: str = WAIT_MUSIC_DEFAULT
    max_participants: str = str(MAX_PARTICIPANTS)
    record: bool = False
    end_on_moderator_exit: bool = False
    hours: list[HoursRow] = field(default_factory=list)
    allowed_callers: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[HoursRow]:
        """The hours rows to show: the filled ones, padded with blanks."""
        filled = [row for row in self.hours if not row.blank]
        return filled + [HoursRow() for _ in range(max(1, HOURS_ROWS - len(filled)))]

    def error(self, name: str) -> str:
        return self.errors.get(name, "")


def from_room(room: Room) -> RoomForm:
    return RoomForm(
        name=room.name, pin=room.pin, moderator_pin=room.moderator_pin or "",
        muted_on_entry=room.muted_on_entry, beep=room.beep, wait_music=room.wait_music,
        max_participants=str(room.max_participants), record=room.record,
        end_on_moderator_exit=room.end_on_moderator_exit,
        hours=[HoursRow(list(h.days), h.start, h.end) for h in room.opening_hours],
        allowed_callers="\n".join(room.allowed_callers),
    )


def from_post(forms: Mapping[str, str], getall: Callable[[str], list[str]]) -> RoomForm:
    """The submitted values (``getall(name)`` lists a repeated field's values)."""

    def text(name: str) -> str:
        return (forms.get(name) or "").strip()

    hours = []
    for index in range(HOURS_ROWS):
        days = sorted({int(d) for d in getall(f"hours{index}_days") if d in "0123456"
                       and len(d) == 1})
        hours.append(HoursRow(days, text(f"hours{index}_start"), text(f"hours{index}_end")))
    return RoomForm(
        name=" ".join(text("name").split()), pin=text("pin"), moderator_pin=text("moderator_pin"),
        muted_on_entry=bool(forms.get("muted_on_entry")), beep=text("beep"),
        wait_music=text("wait_music") or WAIT_MUSIC_DEFAULT,
        max_participants=text("max_participants"), record=bool(forms.get("record")),
        end_on_moderator_exit=bool(forms.get("end_on_moderator_exit")), hours=hours,
        allowed_callers=(forms.get("allowed_callers") or "").strip(),
    )


def to_room(form: RoomForm) -> tuple[Room | None, dict[str, str]]:
    """The Room the form describes, or None and the errors of the fields that do not convert."""
    errors: dict[str, str] = {}
    try:
        count = int(form.max_participants)
    except ValueError:
        errors["max_participants"] = f"must be a whole number from 2 to {MAX_PARTICIPANTS}"
        count = 0
    hours = tuple(OpeningHours(tuple(row.days), row.start, row.end)
                  for row in form.hours if not row.blank)
    callers = tuple(line.strip() for line in form.allowed_callers.splitlines() if line.strip())
    if errors:
        return None, errors
    return Room(
        name=form.name, pin=form.pin, moderator_pin=form.moderator_pin or None,
        muted_on_entry=form.muted_on_entry, beep=form.beep, wait_music=form.wait_music,
        max_participants=count, record=form.record,
        end_on_moderator_exit=form.end_on_moderator_exit, opening_hours=hours,
        allowed_callers=callers,
    ), {}


def field_errors(form: RoomForm, errors: Mapping[str, str]) -> dict[str, str]:
    """The store's errors keyed by form field: ``opening_hours[1]`` → the second filled row,
    ``allowed_callers[2]`` → the caller-ID box, naming the line."""
    filled = [index for index, row in enumerate(form.hours) if not row.blank]
    callers = [line.strip() for line in form.allowed_callers.splitlines() if line.strip()]
    shown: dict[str, str] = {}
    for key, message in errors.items():
        name, _, rest = key.partition("[")
        if name == "opening_hours" and rest:
            index = int(rest.rstrip("]"))
            row = filled[index] if index < len(filled) else 0
            shown.setdefault(f"hours{row}", message)
        elif name == "allowed_callers" and rest:
            index = int(rest.rstrip("]"))
            caller = callers[index] if index < len(callers) else ""
            shown.setdefault("allowed_callers", f"“{caller}” {message}")
        else:
            shown.setdefault(name, message)
    return shown
