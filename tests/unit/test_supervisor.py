"""The supervisor's own duties: restarting failed line drivers with backoff, and the API
credentials it generates on first start."""

from __future__ import annotations

import itertools
import json
import logging
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance import supervisor
from appliance.config import Config, LineConfig, parse_config
from appliance.credentials import load_api_credentials
from appliance.lines.base import LineDriver, LineError
from appliance.supervisor import LineRunner

LINE = LineConfig(
    name="gsm0",
    driver="sim",
    control=None,
    audio=None,
    number="+15551230000",
    voice_url="rules.xml",
)
WAIT = 5.0  # seconds; an Event not set by then is a failure, not a slow machine


class FakeDriver(LineDriver):
    """Fails ``run()`` with ``error`` if given; otherwise serves until ``stop()``."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__("gsm0", lambda event: None)
        self.error = error
        self.ran = threading.Event()
        self.stopped = threading.Event()
        self.ran_at: float | None = None

    def run(self) -> None:
        self.ran_at = time.monotonic()
        self.ran.set()
        if self.error is not None:
            raise self.error
        self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()

    def answer(self) -> None:
        raise LineError("no call")

    def hangup(self) -> None:
        pass

    def refresh_status(self) -> dict:
        self.refreshed = getattr(self, "refreshed", 0) + 1
        if self.error is not None:
            raise LineError("modem answers garbage")
        return {}


class DriverFactory:
    """Hands out the drivers of ``plan`` in order, then ones that serve until stopped."""

    def __init__(self, plan: list[FakeDriver]) -> None:
        self.plan = list(plan)
        self.made: list[FakeDriver] = []
        self.registered: list[LineDriver] = []
        self.lock = threading.Lock()
        self.serving = threading.Event()  # a driver that does not fail is running

    def make(self) -> FakeDriver:
        with self.lock:
            driver = self.plan.pop(0) if self.plan else FakeDriver()
            self.made.append(driver)
        if driver.error is None:
            threading.Thread(target=self._watch, args=(driver,), daemon=True).start()
        return driver

    def _watch(self, driver: FakeDriver) -> None:
        if driver.ran.wait(WAIT):
            self.serving.set()

    def on_driver(self, driver: LineDriver) -> None:
        self.registered.append(driver)


@pytest.fixture
def runners() -> Iterator[Callable[[DriverFactory], LineRunner]]:
    started: list[LineRunner] = []

    def start(factory: DriverFactory) -> LineRunner:
        runner = LineRunner(LINE, factory.make, factory.on_driver)
        started.append(runner)
        runner.start()
        return runner

    yield start
    for runner in started:
        runner.stop()


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delays the runner announced in its "retrying in" log lines."""
    delays = []
    for record in caplog.records:
        if record.name == "appliance.supervisor" and "retrying in" in record.msg:
            delays.append(float(record.args[-1]))  # type: ignore[index]
    return delays


# --- LineRunner -----------------------------------------------------------------------------


def test_failing_driver_is_restarted_with_doubling_delays_up_to_the_maximum(
    runners, monkeypatch, caplog
):
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.02)
    monkeypatch.setattr(supervisor, "BACKOFF_MAX", 0.08)
    caplog.set_level(logging.ERROR, logger="appliance.supervisor")
    failures = [FakeDriver(LineError(f"modem lost ({n})")) for n in range(5)]
    factory = DriverFactory(failures)
    runner = runners(factory)

    assert factory.serving.wait(WAIT), "the sixth driver never ran"
    assert retry_delays(caplog) == [0.02, 0.04, 0.08, 0.08, 0.08]
    starts = [driver.ran_at for driver in factory.made[:6] if driver.ran_at is not None]
    assert len(starts) == 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    for gap, delay in zip(gaps, [0.02, 0.04, 0.08, 0.08, 0.08], strict=True):
        assert gap >= delay * 0.9, f"restarted after {gap:.3f} s, before its {delay} s backoff"
    assert runner.restarts == 5
    assert factory.registered == factory.made, "every new driver is handed to the call manager"
    assert "line gsm0: modem lost (0); retrying in" in caplog.text


def test_driver_that_returns_by_itself_is_restarted(runners, monkeypatch, caplog):
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.01)
    returns = FakeDriver()
    returns.stopped.set()  # run() returns at once, as if the device closed cleanly
    second = FakeDriver()
    runners(DriverFactory([returns, second]))
    assert second.ran.wait(WAIT)
    assert "line gsm0: driver stopped by itself; restarting" in caplog.text


def test_the_health_job_asks_a_running_driver_for_fresh_status(runners):
    factory = DriverFactory([])
    runner = runners(factory)
    assert factory.serving.wait(WAIT)
    runner.refresh_status()
    runner.refresh_status()
    assert factory.made[-1].refreshed == 2


def test_a_failing_health_check_is_logged_not_fatal(caplog):
    runner = LineRunner(LINE, lambda: FakeDriver(), lambda driver: None)
    runner._driver = FakeDriver(error=LineError("x"))
    with caplog.at_level(logging.WARNING):
        runner.refresh_status()
    assert "health check failed" in caplog.text


def test_stop_stops_a_running_driver_promptly(runners):
    factory = DriverFactory([])
    runner = runners(factory)
    assert factory.serving.wait(WAIT)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 1.0
    (driver,) = factory.made
    assert driver.stopped.is_set()


def test_stop_during_a_long_backoff_does_not_wait_it_out(runners, monkeypatch, caplog):
    monkeypatch.setattr(supervisor, "BACKOFF_START", 60.0)
    caplog.set_level(logging.ERROR, logger="appliance.supervisor")
    failing = FakeDriver(LineError("cannot open /dev/ttyUSB2"))
    factory = DriverFactory([failing])
    runner = runners(factory)
    assert failing.ran.wait(WAIT)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 1.0
    assert factory.made == [failing], "no restart after stop()"


def test_stop_while_a_new_driver_is_being_made_never_runs_it(monkeypatch):
    """stop() may come between making a driver and running it (a restart racing shutdown)."""
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.01)
    failing = FakeDriver(LineError("modem lost"))
    stop_seen = threading.Event()
    failing.stop = stop_seen.set  # type: ignore[method-assign]
    making = threading.Event()
    made: list[FakeDriver] = []

    def make() -> FakeDriver:
        if not made:
            made.append(failing)
            return failing
        making.set()
        assert stop_seen.wait(WAIT)  # stop() has begun: it saw the failed driver, not this one
        made.append(FakeDriver())
        return made[-1]

    runner = LineRunner(LINE, make, lambda driver: None)
    runner.start()
    assert making.wait(WAIT)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 1.0, "stop() waited for a driver it never stopped"
    late = made[-1]
    assert late is not failing
    assert not late.ran.is_set(), "a driver made after stop() must not run"


# --- API credentials ------------------------------------------------------------------------


def config_for(data_dir: Path, api: str = "") -> Config:
    data_dir.mkdir(parents=True, exist_ok=True)
    return parse_config(f'[appliance]\ndata_dir = "{data_dir}"\n{api}')


def test_credentials_are_generated_on_first_start_and_kept(tmp_path):
    config = config_for(tmp_path / "data")
    first = load_api_credentials(config).current()
    assert re.fullmatch(r"AC[0-9a-f]{32}", first.account_sid)
    assert re.fullmatch(r"[0-9a-f]{32}", first.auth_token)
    stored = tmp_path / "data" / "api.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text()) == {
        "account_sid": first.account_sid,
        "auth_token": first.auth_token,
    }
    modified = stored.stat().st_mtime_ns

    assert load_api_credentials(config).current() == first
    assert stored.stat().st_mtime_ns == modified, "kept credentials are not rewritten"
    assert [path.name for path in stored.parent.iterdir()] == ["api.json"], "no temp file left"


def test_each_appliance_generates_its_own_credentials(tmp_path):
    one = load_api_credentials(config_for(tmp_path / "one")).current()
    two = load_api_credentials(config_for(tmp_path / "two")).current()
    assert one.account_sid != two.account_sid
    assert one.auth_token != two.auth_token


def test_credentials_in_the_config_win_and_are_kept(tmp_path):
    generated = load_api_credentials(config_for(tmp_path / "data")).current()
    sid, token = "AC" + "ab" * 16, "my-own-token"
    api = f'[api]\naccount_sid = "{sid}"\nauth_token = "{token}"\n'
    configured = load_api_credentials(config_for(tmp_path / "data", api)).current()
    assert (configured.account_sid, configured.auth_token) == (sid, token)
    assert configured != generated
    stored = tmp_path / "data" / "api.json"
    assert json.loads(stored.read_text()) == {"account_sid": sid, "auth_token": token}
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


@pytest.mark.parametrize("damage", ["", '{"account_sid": "AC', "[]"], ids=["empty", "cut", "list"])
def test_damaged_stored_credentials_are_replaced_instead_of_stopping_the_daemon(
    tmp_path, caplog, damage
):
    config = config_for(tmp_path / "data")
    stored = tmp_path / "data" / "api.json"
    stored.write_text(damage)
    credentials = load_api_credentials(config).current()
    assert re.fullmatch(r"AC[0-9a-f]{32}", credentials.account_sid)
    assert json.loads(stored.read_text())["auth_token"] == credentials.auth_token
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "api.json unreadable" in caplog.text


def test_a_rotated_token_is_kept_and_used_at_once(tmp_path):
    config = config_for(tmp_path / "data")
    credentials = load_api_credentials(config)
    before = credentials.current()
    rotated = credentials.rotate()
    assert rotated.account_sid == before.account_sid
    assert rotated.auth_token != before.auth_token
    assert credentials.auth_token() == rotated.auth_token
    assert load_api_credentials(config).current() == rotated, "the new token survives a restart"


def test_a_token_pinned_in_the_config_cannot_be_rotated(tmp_path):
    api = '[api]\nauth_token = "my-own-token"\n'
    credentials = load_api_credentials(config_for(tmp_path / "data", api))
    with pytest.raises(ValueError, match=r"config\.toml"):
        credentials.rotate()
    assert credentials.auth_token() == "my-own-token"
