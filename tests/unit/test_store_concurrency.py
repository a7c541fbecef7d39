"""The web server's threads and the call threads use one store at once: nothing is lost."""

import threading
from datetime import UTC, datetime

from appliance.store import CallRecord, Room, Store

THREADS = 4
ROOMS_PER_THREAD = 15
CALLS_PER_THREAD = 30
NOW = datetime(2024, 6, 15, 23, 59, 50, tzinfo=UTC).timestamp()  # calls cross midnight


def test_threads_saving_rooms_and_logging_calls_at_once_lose_nothing(tmp_path) -> None:
    store = Store(tmp_path)
    start = threading.Barrier(2 * THREADS + 1)
    errors: list[BaseException] = []

    def rooms(t: int) -> None:
        start.wait()
        for n in range(ROOMS_PER_THREAD):
            room = store.rooms.create(Room(name=f"room {t}-{n}", pin=f"{t}{n:04d}"))
            store.rooms.update(room.id, max_participants=10 + n)

    def calls(t: int) -> None:
        start.wait()
        for n in range(CALLS_PER_THREAD):
            call = CallRecord(f"CA{t}x{n}", f"gsm{t}", "+15557654321", "+1555", NOW + n)
            store.calls.save(call)
            store.calls.query(line=f"gsm{t}", limit=5)

    def settings() -> None:
        start.wait()
        for n in range(1, 30):
            store.settings.update(call_log_retention_days=n)

    def guarded(target, *args) -> None:
        try:
            target(*args)
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    workers = [threading.Thread(target=guarded, args=(rooms, t)) for t in range(THREADS)]
    workers += [threading.Thread(target=guarded, args=(calls, t)) for t in range(THREADS)]
    workers.append(threading.Thread(target=guarded, args=(settings,)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []

    def check(store: Store) -> None:
        saved = {r.name: r.max_participants for r in store.rooms.list()}
        assert saved == {
            f"room {t}-{n}": 10 + n for t in range(THREADS) for n in range(ROOMS_PER_THREAD)
        }
        logged = {c.sid for c in store.calls.query(limit=10_000)}
        assert logged == {f"CA{t}x{n}" for t in range(THREADS) for n in range(CALLS_PER_THREAD)}
        assert store.settings.snapshot().call_log_retention_days == 29

    check(store)
    store.close()
    check(Store(tmp_path))
