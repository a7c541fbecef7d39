import pytest

from appliance.store import NotFoundError, RecordingEntry, Store, ValidationError


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path)
    yield store
    store.close()


def _entry(sid: str, created: float, **fields) -> RecordingEntry:
    values = {
        "path": f"/var/lib/appliance/recordings/{sid}.wav",
        "duration": 61.5,
        "size": 1_968_044,
        "conference": "family",
        **fields,
    }
    return RecordingEntry(sid=sid, created=created, **values)


def test_recordings_are_listed_newest_first_and_survive_a_restart(tmp_path, store) -> None:
    store.recordings.add(_entry("RE1", 100.0))
    store.recordings.add(_entry("RE3", 300.0, conference=None, call_sid="CA9"))
    store.recordings.add(_entry("RE2", 200.0))
    assert [e.sid for e in Store(tmp_path).recordings.list()] == ["RE3", "RE2", "RE1"]
    assert Store(tmp_path).recordings.get("RE3") == _entry(
        "RE3", 300.0, conference=None, call_sid="CA9"
    )


def test_recordings_are_filtered_by_conference_or_call_and_limited(store) -> None:
    store.recordings.add(_entry("RE1", 100.0))
    store.recordings.add(_entry("RE2", 200.0, conference="friends"))
    store.recordings.add(_entry("RE3", 300.0, call_sid="CA1"))
    assert [e.sid for e in store.recordings.list(conference="family")] == ["RE3", "RE1"]
    assert [e.sid for e in store.recordings.list(call_sid="CA1")] == ["RE3"]
    assert [e.sid for e in store.recordings.list(conference="friends", call_sid="CA1")] == []
    assert [e.sid for e in store.recordings.list(limit=2)] == ["RE3", "RE2"]


def test_adding_the_same_sid_again_replaces_the_entry(store) -> None:
    store.recordings.add(_entry("RE1", 100.0, duration=0.0, size=44))
    store.recordings.add(_entry("RE1", 100.0))
    assert store.recordings.list() == [_entry("RE1", 100.0)]


def test_delete_returns_the_entry_so_its_file_can_go_too(store) -> None:
    store.recordings.add(_entry("RE1", 100.0))
    assert store.recordings.delete("RE1") == _entry("RE1", 100.0)
    assert store.recordings.list() == []
    with pytest.raises(NotFoundError, match="no recording RE1"):
        store.recordings.delete("RE1")
    with pytest.raises(NotFoundError):
        store.recordings.get("RE1")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sid": ""}, "sid"),
        ({"path": ""}, "path"),
        ({"duration": -1.0}, "duration"),
        ({"duration": float("nan")}, "duration"),
        ({"size": 1.5}, "size"),
        ({"created": "yesterday"}, "created"),
        ({"conference": None}, "call_sid"),
    ],
)
def test_bad_entries_are_refused(store, fields, field) -> None:
    values = {"sid": "RE1", "created": 1.0, **fields}
    with pytest.raises(ValidationError) as caught:
        store.recordings.add(_entry(**values))
    assert field in caught.value.errors
    assert store.recordings.list() == []
