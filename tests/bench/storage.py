"""Storage: saving a room, logging a call and reading the call log, with 100,000 calls logged.

Run with ``python -m tests.bench.storage``. Each operation is timed 50 times on a store holding
100,000 calls (365 days of history, the default retention, about 274 calls a day) and, in
alternation so both see the same machine load, on the same store with no calls. The reference
is the least a durable write can cost on this disk: a 1 KB file written, fsynced, renamed over
its target and the folder fsynced.

Targets, against the store with no calls: saving a room within 1.5x (a room save never reads or
writes the call log: only noise may separate the two); logging a call within 4x (it rewrites its
day's shard, so its cost grows with the calls of that day, about 274 here, never with the
100,000 in all).

The 100,000 calls are written straight into the day shards through the storage class (one
write per day), as the call log would have left them.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.store import CallRecord, Room, Store
from appliance.store.calllog import TABLE
from appliance.store.storage import AtomicJSONStorage

CALLS = 100_000
DAYS = 365
RUNS = 50
ROOMS = 20
TARGETS = {"save a room": 1.5, "log a call": 4.0}  # x the same operation with no calls


def fill_call_log(store: Store, calls: int, days: int, now: float) -> None:
    """``calls`` finished calls spread evenly over the ``days`` up to ``now``, newest today."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    per_day = [calls // days + (1 if d < calls % days else 0) for d in range(days)]
    for day, count in enumerate(per_day):
        midnight = today - timedelta(days=day)
        span = (now - midnight.timestamp()) if day == 0 else 86400.0
        documents = {}
        for n in range(count):
            started = midnight.timestamp() + span * n / max(count, 1)
            record = CallRecord(
                sid=f"CA{day:03d}{n:029d}",
                line=("gsm0", "gsm1")[n % 2],
                from_=f"+1555{n % 997:07d}",
                to="+15551230000",
                started=started,
                direction="inbound",
                status="completed",
                answered=started + 4,
                ended=started + 304,
                duration=300,
                conference="family",
                reason="caller hung up",
            )
            documents[str(n + 1)] = record.to_document()
        AtomicJSONStorage(store.calls.path_for(midnight.date())).write({TABLE: documents})


def make_store(folder: Path, calls: int) -> tuple[Store, int]:
    """A store with ROOMS rooms and ``calls`` logged calls; returns it and a room's id."""
    store = Store(folder)
    rooms = [store.rooms.create(Room(name=f"room {n}", pin=f"{1000 + n}")) for n in range(ROOMS)]
    if calls:
        fill_call_log(store, calls, DAYS, time.time())
    return store, rooms[0].id


def raw_write(folder: Path) -> Callable[[], None]:
    """The reference: a durable 1 KB replace without TinyDB, JSON or the store."""
    target, temp, data = folder / "raw.json", folder / "raw.tmp", os.urandom(1024)

    def write() -> None:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)

    return write


def operations(store: Store, room_id: int, tag: str) -> dict[str, Callable[[], object]]:
    counter = iter(range(1_000_000))

    def save_room() -> None:
        store.rooms.update(room_id, max_participants=10 + next(counter) % 100)

    def log_call() -> None:
        now = time.time()
        sid = f"CA{tag}{next(counter):032d}"
        store.calls.save(CallRecord(sid, "gsm0", "+15557654321", "+15551230000", now))

    return {
        "save a room": save_room,
        "log a call": log_call,
        "query the last 50 calls": lambda: store.calls.query(limit=50),
    }


def timed_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def run() -> None:
    """Print the table."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        base = Path(folder)
        build = time.perf_counter()
        full, full_room = make_store(base / "full", CALLS)
        build = time.perf_counter() - build
        empty, empty_room = make_store(base / "empty", 0)
        (base / "raw").mkdir()
        reference = raw_write(base / "raw")
        full_ops = operations(full, full_room, "F")
        empty_ops = operations(empty, empty_room, "E")
        print(
            f"storage: {CALLS:,} calls over {DAYS} days (built in {build:.1f} s) vs no calls;"
            f" {RUNS} runs each, in ms"
        )
        print(
            f"{'operation':<24} {'100k med':>8} {'p95':>6} {'empty med':>9} {'p95':>6}"
            f" {'raw med':>7} {'100k/empty':>10} {'100k/raw':>8}  target"
        )
        for name in full_ops:
            times: tuple[list[float], list[float], list[float]] = ([], [], [])
            for _ in range(RUNS):
                times[0].append(timed_ms(full_ops[name]))
                times[1].append(timed_ms(empty_ops[name]))
                times[2].append(timed_ms(reference))
            full_med, empty_med, raw_med = (statistics.median(t) for t in times)
            ratio = full_med / empty_med
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                verdict = f"<= {target:g}x " + ("ok" if ratio <= target else "MISSED")
            print(
                f"{name:<24} {full_med:>8.2f} {p95(times[0]):>6.2f} {empty_med:>9.2f}"
                f" {p95(times[1]):>6.2f} {raw_med:>7.2f} {ratio:>10.2f} {full_med / raw_med:>8.2f}"
                f"  {verdict}"
            )
        full.close()
        empty.close()


if __name__ == "__main__":
    run()
