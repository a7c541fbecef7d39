"""A writer process killed (SIGKILL) at random moments: every acknowledged write survives.

The writer is forked from the test (so each round starts in milliseconds, not an interpreter's
start-up), runs a fixed sequence of operations through the real :class:`Store` — create a room,
update it, log a call, update the call — and after each operation *returns* writes its number to
a pipe: that is the acknowledgement. After each kill the store must open cleanly, and hold
exactly the operations up to the last acknowledged one, or that plus the one in flight.

A SIGKILL tests the write sequence against the process dying at any instruction; the fsyncs in
that sequence are what carry the same guarantee over a power cut.

``STORE_KILLS=2000`` runs a longer soak.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from appliance.store import CallRecord, Room, Store

KILLS = int(os.environ.get("STORE_KILLS", "100"))
MAX_DELAY = 0.03  # seconds of writing before the kill: a few operations
BASE = datetime(2024, 6, 1, tzinfo=UTC).timestamp()
HOUR = 3600.0  # calls one hour apart: a new day's shard every 24 operations

State = tuple[dict[str, int], dict[str, str]]


def _call(i: int, **fields) -> CallRecord:
    return CallRecord(f"CA{i}", "gsm0", "+15557654321", "+15551230000", BASE + i * HOUR, **fields)


def run_operation(store: Store, i: int) -> None:
    """Operation ``i`` of the writer's endless sequence."""
    kind = i % 4
    if kind == 0:
        store.rooms.create(Room(name=f"r{i}", pin=str(1_000_000 + i), max_participants=2))
    elif kind == 1:
        room = store.rooms.find_by_name(f"r{i - 1}")
        assert room is not None
        store.rooms.update(room.id, max_participants=3)
    elif kind == 2:
        store.calls.save(_call(i))
    else:
        start = BASE + (i - 1) * HOUR
        store.calls.save(_call(i - 1, status="completed", answered=start + 1, ended=start + 9))


def apply_to_model(state: State, i: int) -> None:
    """What operation ``i`` does to the model of the store's content."""
    rooms, calls = state
    kind = i % 4
    if kind == 0:
        rooms[f"r{i}"] = 2
    elif kind == 1:
        rooms[f"r{i - 1}"] = 3
    elif kind == 2:
        calls[f"CA{i}"] = "ringing"
    else:
        calls[f"CA{i - 1}"] = "completed"


def temp_files(folder: Path) -> list[Path]:
    return list(folder.glob(".*.tmp")) + list(folder.glob("calls/.*.tmp"))


def load(folder: Path) -> State:
    """The store's content, read as the daemon would after a restart."""
    store = Store(folder)
    try:
        rooms = {r.name: r.max_participants for r in store.rooms.list()}
        calls = {c.sid: c.status for c in store.calls.query(limit=1_000_000)}
    finally:
        store.close()
    return rooms, calls


def writer(folder: Path, first: int, ack: int) -> None:
    """The child: write forever, acknowledging each operation once it has returned."""
    try:
        store = Store(folder)
        os.write(ack, b"ready\n")
        i = first
        while True:
            run_operation(store, i)
            os.write(ack, b"%d\n" % i)
            i += 1
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)


def kill_writer_once(folder: Path, first: int, delay: float) -> list[int]:
    """Fork a writer starting at operation ``first``, SIGKILL it ``delay`` s after it opened
    the store; returns the operations it acknowledged."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        writer(folder, first, write_end)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 10.0)
        assert ready, "the writer did not open the store"
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
            f"the writer died by itself (status {status}): see its traceback above"
        )
        output = b""
        while chunk := os.read(read_end, 65536):
            output += chunk
    finally:
        os.close(read_end)
    lines = output.split(b"\n")[:-1]  # a line cut short by the kill is not an acknowledgement
    assert lines[0] == b"ready"
    return [int(line) for line in lines[1:]]


def test_every_acknowledged_write_survives_a_writer_killed_at_random_moments(tmp_path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    model: State = ({}, {})
    done = 0  # operations 0 .. done-1 are in the store
    in_flight_kept = temp_files_left = acknowledged = 0
    for kill in range(KILLS):
        acks = kill_writer_once(tmp_path, done, rng.uniform(0.0, MAX_DELAY))
        assert acks == list(range(done, done + len(acks)))
        acknowledged += len(acks)
        for i in acks:
            apply_to_model(model, i)
        done += len(acks)
        temp_files_left += len(temp_files(tmp_path))
        on_disk = load(tmp_path)
        assert temp_files(tmp_path) == [], "opening the store removed the temp files"
        if on_disk != model:
            # The operation in flight may have completed before its acknowledgement was sent.
            apply_to_model(model, done)
            done += 1
            in_flight_kept += 1
        assert on_disk == model, (
            f"kill {kill} (seed {seed}): the store lost or invented writes after operation "
            f"{done - 1}:\n on disk: {on_disk}\n expected: {model}"
        )
    assert not list(tmp_path.rglob("*.corrupt-*")), "no file was ever unreadable"
    assert acknowledged > KILLS, "the kills fell among writes, not before them"
    print(
        f"{KILLS} kills, {acknowledged} acknowledged writes, {in_flight_kept} unacknowledged "
        f"writes completed, {temp_files_left} temp files left by kills mid-write (seed {seed})"
    )
