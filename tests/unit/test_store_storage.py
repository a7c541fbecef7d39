import json
import logging
import os
import stat

import pytest

from appliance.store import Room, Store, StoreCorruptError
from appliance.store.storage import (
    AtomicJSONStorage,
    Database,
    atomic_write_bytes,
    stale_temp_files,
)


def test_a_written_database_is_read_back_by_a_new_storage(tmp_path) -> None:
    path = tmp_path / "rooms.json"
    AtomicJSONStorage(path).write({"rooms": {"1": {"name": "family"}}})
    assert AtomicJSONStorage(path).read() == {"rooms": {"1": {"name": "family"}}}
    assert json.loads(path.read_text()) == {"rooms": {"1": {"name": "family"}}}


def test_a_missing_or_empty_file_is_an_empty_database(tmp_path) -> None:
    assert AtomicJSONStorage(tmp_path / "none.json").read() is None
    assert not (tmp_path / "none.json").exists(), "opening does not create the file"
    (tmp_path / "empty.json").touch()
    assert AtomicJSONStorage(tmp_path / "empty.json").read() is None


def test_files_are_private_to_the_appliance_user(tmp_path) -> None:
    path = tmp_path / "settings.json"
    AtomicJSONStorage(path).write({"settings": {}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_write_replaces_the_file_and_leaves_no_temp_file(tmp_path) -> None:
    path = tmp_path / "rooms.json"
    storage = AtomicJSONStorage(path)
    storage.write({"rooms": {"1": {"v": 1}}})
    inode = path.stat().st_ino
    storage.write({"rooms": {"1": {"v": 2}}})
    assert path.stat().st_ino != inode, "a new file renamed over the old, not rewritten in place"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rooms.json"]


def test_each_write_fsyncs_the_file_before_the_rename_and_the_folder_after(
    tmp_path, monkeypatch
) -> None:
    path = tmp_path / "rooms.json"
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        steps.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(path, b"{}")
    assert steps == ["fsync file", "replace", "fsync dir"]


def test_a_failed_write_keeps_the_old_file_and_undoes_the_edits_in_memory(
    tmp_path, monkeypatch
) -> None:
    path = tmp_path / "rooms.json"
    storage = AtomicJSONStorage(path)
    storage.write({"rooms": {"1": {"v": 1}}})
    data = storage.read()
    data["rooms"]["1"]["v"] = 2  # as TinyDB edits what read() returned, then writes it

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        storage.write(data)
    monkeypatch.undo()
    assert storage.read() == {"rooms": {"1": {"v": 1}}}
    assert json.loads(path.read_text()) == {"rooms": {"1": {"v": 1}}}
    assert stale_temp_files(path) == [], "the failed write removed its temp file"


def test_a_write_that_changes_nothing_does_not_touch_the_disk(tmp_path) -> None:
    path = tmp_path / "rooms.json"
    storage = AtomicJSONStorage(path)
    storage.write({"rooms": {"1": {"v": 1}}})
    inode = path.stat().st_ino
    storage.write({"rooms": {"1": {"v": 1}}})
    assert path.stat().st_ino == inode


def test_a_failed_room_save_leaves_the_room_as_it_was(tmp_path, monkeypatch) -> None:
    store = Store(tmp_path)
    room = store.rooms.create(Room(name="family", pin="1234"))
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(OSError, match="EIO"):
        store.rooms.update(room.id, pin="5678")
    monkeypatch.undo()
    assert store.rooms.get(room.id).pin == "1234"
    assert Store(tmp_path).rooms.get(room.id).pin == "1234"


def test_temp_files_left_by_a_crash_are_ignored_and_removed_on_open(tmp_path, caplog) -> None:
    path = tmp_path / "rooms.json"
    AtomicJSONStorage(path).write({"rooms": {"1": {"name": "family"}}})
    # What a writer killed before its rename leaves: a half-written file, and a complete one
    # whose write never returned (so was never acknowledged).
    (tmp_path / ".rooms.json.k3j9x1_a.tmp").write_text('{"rooms": {"1": {"na')
    (tmp_path / ".rooms.json.q8w2e7rt.tmp").write_text('{"rooms": {}}')
    (tmp_path / ".settings.json.abcdefgh.tmp").write_text("{}")  # another file's: not ours
    with caplog.at_level(logging.INFO):
        storage = AtomicJSONStorage(path)
    assert storage.read() == {"rooms": {"1": {"name": "family"}}}
    assert stale_temp_files(path) == []
    assert (tmp_path / ".settings.json.abcdefgh.tmp").exists()
    assert "interrupted write" in caplog.text


def test_a_store_opens_with_temp_leftovers_in_every_folder(tmp_path) -> None:
    store = Store(tmp_path)
    room = store.rooms.create(Room(name="family", pin="1234"))
    store.close()
    for folder in (tmp_path, tmp_path / "calls"):
        (folder / ".rooms.json.zzzzzzzz.tmp").write_text("{")
        (folder / ".calls-2020-01-01.json.zzzzzzzz.tmp").write_text("{")
    store = Store(tmp_path)
    assert store.rooms.get(room.id).name == "family"
    assert store.calls.query() == []
    assert not (tmp_path / ".rooms.json.zzzzzzzz.tmp").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"rooms": {"1": {"name": "fam', "invalid JSON"),
        (b"\xff\xfe not text", "invalid JSON"),
        (b"[1, 2]", "not a JSON object of tables"),
        (b'{"rooms": [1]}', "table 'rooms' is not an object of documents"),
    ],
)
def test_a_corrupt_file_raises_an_error_naming_it_and_is_left_untouched(
    tmp_path, content, reason
) -> None:
    path = tmp_path / "rooms.json"
    path.write_bytes(content)
    with pytest.raises(StoreCorruptError, match=reason) as caught:
        Database(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rooms.json"]


def test_a_corrupt_settings_file_stops_the_store_rather_than_forgetting_the_password(
    tmp_path,
) -> None:
    (tmp_path / "settings.json").write_text('{"settings": {"1": {"admin_password_hash": "x')
    with pytest.raises(StoreCorruptError, match=r"settings\.json"):
        Store(tmp_path)


def test_a_corrupt_file_set_aside_is_kept_and_logged_and_the_database_starts_empty(
    tmp_path, caplog
) -> None:
    path = tmp_path / "calls-2024-05-01.json"
    path.write_bytes(b'{"calls": {"1": ')
    with caplog.at_level(logging.ERROR):
        database = Database(path, on_corrupt="set_aside")
    with database.locked() as db:
        assert db.table("calls").all() == []
        db.table("calls").insert({"sid": "CA1"})
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("calls-2024-05-01.json.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes() == b'{"calls": {"1": '
    assert aside[0].name in caplog.text and "unreadable" in caplog.text
    assert json.loads(path.read_text()) == {"calls": {"1": {"sid": "CA1"}}}
