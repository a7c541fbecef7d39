from datetime import datetime

import pytest

from appliance.store import NotFoundError, OpeningHours, Room, Store, ValidationError


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path)
    yield store
    store.close()


def test_a_created_room_gets_an_id_and_is_found_by_id_name_and_pin(store) -> None:
    room = store.rooms.create(Room(name="family", pin="1234", moderator_pin="98765"))
    assert room.id is not None
    assert store.rooms.get(room.id) == room
    assert store.rooms.find_by_name(" FAMILY ") == room
    assert store.rooms.find_by_pin("1234") == (room, False)
    assert store.rooms.find_by_pin("98765") == (room, True)
    assert store.rooms.find_by_pin("0000") is None
    assert store.rooms.find_by_name("friends") is None


def test_every_field_survives_a_restart(tmp_path) -> None:
    room = Room(
        name="book club",
        pin="4321",
        moderator_pin="43210",
        muted_on_entry=True,
        beep="onEnter",
        wait_music="jazz.mp3",
        max_participants=12,
        record=True,
        end_on_moderator_exit=True,
        opening_hours=(OpeningHours((0, 2), "19:00", "21:30"),),
        allowed_callers=("+15557654321", "0123456789"),
    )
    created = Store(tmp_path).rooms.create(room)
    assert Store(tmp_path).rooms.get(created.id) == created
    assert created == Room(**{**room.__dict__, "id": created.id})


def test_update_changes_only_the_given_fields_and_keeps_the_id(store) -> None:
    room = store.rooms.create(Room(name="family", pin="1234"))
    updated = store.rooms.update(room.id, pin="5678", muted_on_entry=True)
    assert (updated.id, updated.name, updated.pin, updated.muted_on_entry) == (
        room.id,
        "family",
        "5678",
        True,
    )
    assert store.rooms.get(room.id) == updated
    assert store.rooms.find_by_pin("1234") is None


def test_list_is_sorted_by_name_and_delete_removes_the_room(store) -> None:
    b = store.rooms.create(Room(name="Bridge", pin="2222"))
    a = store.rooms.create(Room(name="attic", pin="1111"))
    c = store.rooms.create(Room(name="cellar", pin="3333"))
    assert [r.name for r in store.rooms.list()] == ["attic", "Bridge", "cellar"]
    store.rooms.delete(b.id)
    assert store.rooms.list() == [a, c]
    with pytest.raises(NotFoundError, match=f"no room with id {b.id}"):
        store.rooms.get(b.id)


def test_unknown_fields_and_the_id_cannot_be_updated(store) -> None:
    room = store.rooms.create(Room(name="family", pin="1234"))
    with pytest.raises(ValidationError) as caught:
        store.rooms.update(room.id, id=7, colour="red")
    assert caught.value.errors == {"colour": "not a field of a room", "id": "not a field of a room"}
    assert store.rooms.list() == [room]


def test_unknown_ids_are_reported(store) -> None:
    with pytest.raises(NotFoundError):
        store.rooms.update(42, pin="1234")
    with pytest.raises(NotFoundError):
        store.rooms.delete(42)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"pin": "123"}, "pin", "must be 4 to 10 digits"),
        ({"pin": "12345678901"}, "pin", "must be 4 to 10 digits"),
        ({"pin": "12a4"}, "pin", "must be 4 to 10 digits"),
        ({"pin": 1234}, "pin", "must be 4 to 10 digits"),
        ({"moderator_pin": "12"}, "moderator_pin", "must be 4 to 10 digits"),
        ({"moderator_pin": "1234"}, "moderator_pin", "must differ from the PIN"),
        ({"name": ""}, "name", "must be 1 to 64 characters"),
        ({"name": "   "}, "name", "must be 1 to 64 characters"),
        ({"name": "x" * 65}, "name", "must be 1 to 64 characters"),
        ({"name": "a/b"}, "name", "must not contain /"),
        ({"name": "a\nb"}, "name", "control characters"),
        ({"beep": "yes"}, "beep", "must be one of true, false, onEnter, onExit"),
        ({"muted_on_entry": "yes"}, "muted_on_entry", "must be true or false"),
        ({"record": 1}, "record", "must be true or false"),
        ({"max_participants": 1}, "max_participants", "from 2 to 250"),
        ({"max_participants": 251}, "max_participants", "from 2 to 250"),
        ({"max_participants": True}, "max_participants", "from 2 to 250"),
        ({"wait_music": "../../etc/passwd"}, "wait_music", "uploaded file's name"),
        ({"wait_music": ".hidden"}, "wait_music", "uploaded file's name"),
        ({"end_on_moderator_exit": True}, "end_on_moderator_exit", "needs a moderator PIN"),
        ({"allowed_callers": ("12",)}, "allowed_callers[0]", "must be a phone number"),
        ({"allowed_callers": ("+1555", "call me")}, "allowed_callers[1]", "phone number"),
        ({"allowed_callers": None}, "allowed_callers", "must be a list"),
        (
            {"opening_hours": ({"days": [7], "start": "08:00", "end": "10:00"},)},
            "opening_hours[0]",
            "0 (Monday) to 6 (Sunday)",
        ),
        (
            {"opening_hours": ({"days": [], "start": "08:00", "end": "10:00"},)},
            "opening_hours[0]",
            "at least one",
        ),
        (
            {"opening_hours": ({"days": [1], "start": "8:00", "end": "10:00"},)},
            "opening_hours[0]",
            "HH:MM",
        ),
        (
            {"opening_hours": ({"days": [1], "start": "10:00", "end": "10:00"},)},
            "opening_hours[0]",
            "not a period",
        ),
        ({"opening_hours": ({"days": [1]},)}, "opening_hours[0]", "days, start and end"),
    ],
)
def test_invalid_fields_are_refused_with_the_field_and_the_reason(
    store, fields, field, message
) -> None:
    room = Room(**{"name": "family", "pin": "1234", **fields})
    with pytest.raises(ValidationError) as caught:
        store.rooms.create(room)
    assert message in caught.value.errors[field]
    assert store.rooms.list() == []


def test_every_problem_is_reported_at_once(store) -> None:
    with pytest.raises(ValidationError) as caught:
        store.rooms.create(Room(name="", pin="1", beep="loud", max_participants=0))
    assert set(caught.value.errors) == {"name", "pin", "beep", "max_participants"}
    assert str(caught.value).startswith("name: must be 1 to 64 characters; pin: must be")


def test_names_are_unique_ignoring_case_and_spaces(store) -> None:
    store.rooms.create(Room(name="Family", pin="1234"))
    with pytest.raises(ValidationError) as caught:
        store.rooms.create(Room(name=" family ", pin="5678"))
    assert caught.value.errors == {"name": "room 'Family' already has this name"}


def test_a_pin_opens_one_room_only(store) -> None:
    store.rooms.create(Room(name="family", pin="1234", moderator_pin="5678"))
    for pins, field in [
        ({"pin": "1234"}, "pin"),
        ({"pin": "5678"}, "pin"),
        ({"pin": "1111", "moderator_pin": "1234"}, "moderator_pin"),
    ]:
        with pytest.raises(ValidationError) as caught:
            store.rooms.create(Room(name="friends", **pins))
        assert caught.value.errors == {field: "already used by room 'family'"}


def test_an_update_is_checked_against_the_other_rooms_but_not_itself(store) -> None:
    family = store.rooms.create(Room(name="family", pin="1234"))
    friends = store.rooms.create(Room(name="friends", pin="5678"))
    assert store.rooms.update(family.id, name="Family", pin="1234").name == "Family"
    with pytest.raises(ValidationError) as caught:
        store.rooms.update(friends.id, name="FAMILY", pin="1234")
    assert set(caught.value.errors) == {"name", "pin"}
    assert store.rooms.get(friends.id) == friends


def test_input_is_normalised_before_it_is_stored(store) -> None:
    room = store.rooms.create(
        Room(
            name="  family ",
            pin="1234",
            moderator_pin="",
            allowed_callers=["+1 (555) 765-4321"],
            opening_hours=[{"days": [4, 0, 4], "start": "08:00", "end": "12:00"}],
        )
    )
    assert room.name == "family"
    assert room.moderator_pin is None
    assert room.allowed_callers == ("+15557654321",)
    assert room.opening_hours == (OpeningHours((0, 4), "08:00", "12:00"),)


def test_allowed_callers_limit_who_may_enter(store) -> None:
    open_room = Room(name="a", pin="1234")
    closed = Room(name="b", pin="1234", allowed_callers=("+15557654321",))
    assert open_room.admits("+19990000000")
    assert closed.admits("+1 555 765 4321")
    assert not closed.admits("+15557654322")


def test_opening_hours_by_day_time_and_past_midnight() -> None:
    # 2024-01-01 was a Monday (weekday 0).
    evenings = Room(name="a", pin="1234", opening_hours=(OpeningHours((0, 2), "19:00", "21:30"),))
    assert evenings.is_open(datetime(2024, 1, 1, 19, 0))
    assert evenings.is_open(datetime(2024, 1, 3, 21, 29))
    assert not evenings.is_open(datetime(2024, 1, 1, 21, 30))
    assert not evenings.is_open(datetime(2024, 1, 2, 20, 0)), "Tuesday is not listed"
    night = Room(name="b", pin="1234", opening_hours=(OpeningHours((4,), "22:00", "02:00"),))
    assert night.is_open(datetime(2024, 1, 5, 23, 0)), "Friday night"
    assert night.is_open(datetime(2024, 1, 6, 1, 59)), "into Saturday morning"
    assert not night.is_open(datetime(2024, 1, 6, 2, 0))
    assert not night.is_open(datetime(2024, 1, 5, 1, 0)), "Friday early morning belongs to Thu"
    all_day = Room(name="c", pin="1234", opening_hours=(OpeningHours((6,), "00:00", "24:00"),))
    assert all_day.is_open(datetime(2024, 1, 7, 23, 59))
    assert not all_day.is_open(datetime(2024, 1, 8, 0, 0))
    assert Room(name="d", pin="1234").is_open(datetime(2024, 1, 8, 3, 0)), "no hours: open"
