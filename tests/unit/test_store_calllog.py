import logging
import threading
from datetime import UTC, datetime

import pytest

from appliance.jobs import JobRunner
from appliance.store import CallRecord, Room, Store, ValidationError
from appliance.store.calllog import TABLE, shard_day
from appliance.store.storage import AtomicJSONStorage

DAY = 86400.0
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path)
    yield store
    store.close()


def _call(sid: str, started: float, **fields) -> CallRecord:
    values = {"line": "gsm0", "from_": "+15557654321", "to": "+15551230000", **fields}
    return CallRecord(sid=sid, started=started, **values)


def _shards(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "calls").iterdir())


def test_calls_go_to_one_file_per_utc_day_apart_from_the_rooms(tmp_path, store) -> None:
    store.calls.save(_call("CA1", NOW))
    store.calls.save(_call("CA2", NOW - DAY))
    store.calls.save(_call("CA3", NOW - 40 * DAY))
    assert _shards(tmp_path) == [
        "calls-2024-05-06.json",
        "calls-2024-06-14.json",
        "calls-2024-06-15.json",
    ]
    assert not (tmp_path / "rooms.json").exists(), "logging a call does not write the rooms"


def test_saving_a_room_does_not_rewrite_the_call_log(tmp_path, store) -> None:
    store.calls.save(_call("CA1", NOW))
    shard = tmp_path / "calls" / "calls-2024-06-15.json"
    before = shard.stat().st_ino
    store.rooms.create(Room(name="family", pin="1234"))
    assert shard.stat().st_ino == before


def test_one_record_per_call_updated_as_the_call_goes_on(tmp_path, store) -> None:
    store.calls.save(_call("CA1", NOW, status="ringing"))
    store.calls.save(_call("CA1", NOW, status="in-progress", answered=NOW + 3))
    stored = store.calls.save(
        _call(
            "CA1",
            NOW,
            status="completed",
            answered=NOW + 3,
            ended=NOW + 63.4,
            conference="family",
            reason="caller hung up",
        )
    )
    assert stored.duration == 60, "counted from the answer"
    assert Store(tmp_path).calls.query() == [stored]
    assert Store(tmp_path).calls.find("CA1") == stored


def test_an_unanswered_call_lasts_zero_seconds(store) -> None:
    stored = store.calls.save(_call("CA1", NOW, status="no-answer", ended=NOW + 30))
    assert stored.duration == 0


def test_every_field_is_stored_including_from(tmp_path, store) -> None:
    call = _call(
        "CA1",
        NOW,
        direction="outbound-api",
        status="busy",
        ended=NOW + 1,
        duration=0,
        conference="c",
        reason="busy",
    )
    store.calls.save(call)
    assert Store(tmp_path).calls.find("CA1") == call
    assert Store(tmp_path).calls.find("CA2") is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sid": ""}, "sid"),
        ({"line": None}, "line"),
        ({"from_": None}, "from"),
        ({"status": "done"}, "status"),
        ({"direction": "sideways"}, "direction"),
        ({"started": float("inf")}, "started"),
        ({"answered": NOW - 1}, "answered"),
        ({"ended": "later"}, "ended"),
        ({"duration": -3}, "duration"),
        ({"reason": 5}, "reason"),
    ],
)
def test_bad_call_records_are_refused(store, fields, field) -> None:
    values = {"sid": "CA1", "started": NOW, **fields}
    with pytest.raises(ValidationError) as caught:
        store.calls.save(_call(**values))
    assert field in caught.value.errors
    assert store.calls.query() == []


@pytest.fixture
def history(store):
    """Ten calls a day for 30 days, alternating lines, callers and statuses.

    Each day's shard is written in one go through the storage class, as ``save`` leaves it.
    """
    for day in range(30):
        calls = [
            _call(
                f"CA{day:02d}{n}",
                NOW - day * DAY - n * 60,
                line=("gsm0", "gsm1")[n % 2],
                from_=("+15557654321", "+4930123456")[n % 2],
                status=("completed", "no-answer", "busy")[n % 3],
            )
            for n in range(10)
        ]
        path = store.calls.path_for(shard_day(calls[0].started))
        documents = {str(n + 1): call.to_document() for n, call in enumerate(calls)}
        AtomicJSONStorage(path).write({TABLE: documents})
    return store


def test_the_newest_calls_come_first_across_days(history) -> None:
    calls = history.calls.query(limit=25)
    assert len(calls) == 25
    started = [c.started for c in calls]
    assert started == sorted(started, reverse=True)
    assert calls[0].sid == "CA000" and calls[24].sid == "CA024"
    assert len(history.calls.query(limit=1000)) == 300


def test_queries_filter_by_date_range_line_caller_and_status(history) -> None:
    since, until = NOW - 3 * DAY - 300, NOW - DAY - 120
    in_range = history.calls.query(since=since, until=until, limit=1000)
    assert in_range and all(since <= c.started < until for c in in_range)
    assert len(in_range) == 7 + 10 + 6  # day 1 from n=3, all of day 2, day 3 up to n=5
    gsm1 = history.calls.query(line="gsm1", limit=1000)
    assert len(gsm1) == 150 and {c.line for c in gsm1} == {"gsm1"}
    berlin = history.calls.query(caller="4930", limit=1000)
    assert len(berlin) == 150 and {c.from_ for c in berlin} == {"+4930123456"}
    busy = history.calls.query(status="busy", line="gsm0", since=NOW - 0.5 * DAY, limit=1000)
    assert [c.sid for c in busy] == ["CA002", "CA008"]
    assert history.calls.query(caller="+1999") == []


def test_a_limit_below_one_is_an_error(store) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.calls.query(limit=0)


def test_pruning_drops_whole_days_older_than_the_retention(tmp_path, history) -> None:
    history.settings.update(call_log_retention_days=7)
    assert history.prune_call_log(now=NOW) == 30 - 8
    assert _shards(tmp_path)[0] == "calls-2024-06-08.json"
    assert len(history.calls.query(limit=1000)) == 80
    assert history.prune_call_log(now=NOW) == 0


def test_the_pruning_job_runs_on_the_schedule_jobs_thread(tmp_path, store) -> None:
    store.calls.save(_call("CAold", datetime(2020, 1, 1, tzinfo=UTC).timestamp()))
    store.calls.save(_call("CAnew", datetime.now(UTC).timestamp()))
    runner = JobRunner(poll_seconds=0.01)
    pruned = threading.Event()
    runner.every(0.02, lambda: store.prune_call_log() and pruned.set(), "call log pruning")
    runner.start()
    try:
        assert pruned.wait(5)
    finally:
        runner.stop()
    assert [c.sid for c in store.calls.query()] == ["CAnew"]


def test_a_corrupt_day_is_set_aside_and_logging_goes_on(tmp_path, caplog) -> None:
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "calls-2024-06-15.json").write_text('{"calls": {"1": {"sid": "CA')
    store = Store(tmp_path)
    with caplog.at_level(logging.ERROR):
        store.calls.save(_call("CA1", NOW))
    assert [c.sid for c in store.calls.query()] == ["CA1"]
    aside = [p.name for p in folder.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0] in caplog.text


def test_a_query_passes_over_a_corrupt_day_sets_it_aside_and_lists_the_others(
    tmp_path, store, caplog
) -> None:
    store.calls.save(_call("CA1", NOW))
    store.calls.save(_call("CA2", NOW - 2 * DAY))
    bad = tmp_path / "calls" / "calls-2024-06-14.json"
    bad.write_text("not json")
    with caplog.at_level(logging.ERROR):
        assert [c.sid for c in store.calls.query()] == ["CA1", "CA2"]
    assert "calls-2024-06-14.json" in caplog.text
    aside = [p.name for p in bad.parent.glob("*.corrupt-*")]
    assert len(aside) == 1 and aside[0].startswith(bad.name + ".corrupt-")
    assert (bad.parent / aside[0]).read_text() == "not json"


def test_a_record_edited_into_another_shape_is_passed_over(tmp_path, store) -> None:
    store.calls.save(_call("CA1", NOW))
    path = tmp_path / "calls" / "calls-2024-06-15.json"
    path.write_text(path.read_text().replace('{"calls":{', '{"calls":{"9":{"sid":"CAx"},'))
    assert [c.sid for c in Store(tmp_path).calls.query()] == ["CA1"]
