import logging
import threading

from appliance.jobs import JobRunner


def test_a_job_runs_on_its_interval_and_a_failing_one_does_not_stop_the_others(caplog) -> None:
    runner = JobRunner(poll_seconds=0.01)
    ran = threading.Event()
    runner.every(0.05, ran.set, "ok")
    runner.every(0.05, lambda: 1 / 0, "broken")
    with caplog.at_level(logging.WARNING):
        runner.start()
        assert ran.wait(5)
        ran.clear()
        assert ran.wait(5), "runs again after the broken job failed"
        runner.stop()
    assert "job broken failed" in caplog.text


def test_run_all_now_runs_every_job_at_once() -> None:
    runner = JobRunner()
    calls = []
    runner.every(3600, lambda: calls.append("a"), "a")
    runner.every(3600, lambda: calls.append("b"), "b")
    runner.run_all_now()
    assert sorted(calls) == ["a", "b"]
