"""Starts, watches and stops everything: lines, the audio tick, one interpreter per call."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance.audio.engine import AudioEngine
from appliance.audio.media import SpeechSynth
from appliance.calls.call import Call
from appliance.calls.conference import ConferenceRegistry
from appliance.calls.manager import CallManager
from appliance.calls.recording import RecordingStore
from appliance.calls.router import AudioRouter
from appliance.calls.session import LiveCallSession
from appliance.config import Config, LineConfig
from appliance.events import EventBus
from appliance.jobs import JobRunner
from appliance.lines.base import LineDriver
from appliance.lines.registry import create_driver
from appliance.twiml.fetch import Fetcher, resolve_url
from appliance.twiml.interpreter import Interpreter
from appliance.twiml.media_cache import MediaCache
from appliance.webhooks import WebhookSender

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
LINE_HEALTH_SECONDS = 30  # signal, registration, operator and SIM of every line


@dataclass(frozen=True)
class ApiCredentials:
    account_sid: str
    auth_token: str


def load_api_credentials(config: Config) -> ApiCredentials:
    """Credentials from the config, else generated on first start and kept in data_dir."""
    path = config.appliance.data_dir / "api.json"
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:  # e.g. cut short by a power loss on first start
            log.warning("%s unreadable (%s); generating new API credentials", path, exc)
            stored = {}
    sid = config.api.account_sid or stored.get("account_sid") or "AC" + secrets.token_hex(16)
    token = config.api.auth_token or stored.get("auth_token") or secrets.token_hex(16)
    if stored != {"account_sid": sid, "auth_token": token}:
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # Created 0600 (the token is a secret from its first byte) and on disk before the rename.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(json.dumps({"account_sid": sid, "auth_token": token}))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    return ApiCredentials(sid, token)


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness and status; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            log.debug("sd_notify failed", exc_info=True)


class LineRunner:
    """Runs one line driver on its own thread; a driver that fails is restarted with backoff."""

    def __init__(self, config: LineConfig, make_driver: Callable[[], LineDriver],
                 on_driver: Callable[[LineDriver], None]) -> None:
        self.config = config
        self._make_driver = make_driver
        self._on_driver = on_driver
        self._stopping = threading.Event()
        self._driver: LineDriver | None = None
        self._thread = threading.Thread(target=self._loop, name=f"line-{config.name}",
                                        daemon=True)
        self.restarts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._driver is not None:
            try:
                self._driver.stop()
            except Exception:
                log.exception("line %s: stop failed", self.config.name)
        self._thread.join(5.0)

    def refresh_status(self) -> None:
        """Re-read the modem's health, if the driver can and is running."""
        driver = self._driver
        refresh = getattr(driver, "refresh_status", None)
        if refresh is None or self._stopping.is_set():
            return
        try:
            refresh()
        except Exception as exc:
            log.warning("line %s: health check failed: %s", self.config.name, exc)

    def _loop(self) -> None:
        delay = BACKOFF_START
        while not self._stopping.is_set():
            try:
                driver = self._make_driver()
                self._driver = driver
                if self._stopping.is_set():  # stop() came while it was made: it saw the old one
                    return
                self._on_driver(driver)
                driver.run()
                if self._stopping.is_set():
                    return
                log.warning("line %s: driver stopped by itself; restarting", self.config.name)
            except Exception as exc:
                log.error("line %s: %s; retrying in %.0f s", self.config.name, exc, delay)
            self.restarts += 1
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX)


class Supervisor:
    """The daemon: ``run()`` blocks until SIGTERM/SIGINT (or ``stop()``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.fmt = config.audio.format
        data_dir = config.appliance.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.credentials = load_api_credentials(config)
        self.bus = EventBus()
        self.conferences = ConferenceRegistry(self.fmt, self.bus.publish)
        self.engine = AudioEngine(self.fmt, self._on_tick, speed=config.sim.speed)
        self.calls = CallManager(self.engine, self.bus, self._run_call)
        self.router = AudioRouter(self.fmt, self.calls.calls, self.conferences)
        self.fetcher = Fetcher(self.credentials.account_sid, self.credentials.auth_token)
        self.synth = SpeechSynth(data_dir / "cache" / "tts")
        self.media = MediaCache(self.fetcher, self.fmt.rate)
        self.webhooks = WebhookSender(self.credentials.auth_token)
        self.recordings = RecordingStore.for_listen(data_dir / "recordings", config.web.host,
                                                    config.web.port)
        self._lines: list[LineRunner] = []
        self._modems: dict[str, object] = {}
        self._sim_server = None
        self._stopping = threading.Event()
        self.jobs = JobRunner()
        self.jobs.every(LINE_HEALTH_SECONDS, self._refresh_line_health, "line health")

    # --- calls ------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        self.router.on_tick()

    def _run_call(self, call: Call) -> None:
        line = self._line_config(call.line)
        session = LiveCallSession(call, self.conferences, self.calls.hangup,
                                  self.credentials.account_sid, self.webhooks, self.recordings)
        interpreter = Interpreter(session, self.fetcher, self.synth, self.fmt, self.media)
        base = self.config.path.parent.as_uri() + "/" if self.config.path else ""
        fallback = resolve_url(base, line.fallback_url) if line.fallback_url else ""
        interpreter.run(resolve_url(base, line.voice_url), line.voice_method, fallback)

    def _line_config(self, name: str) -> LineConfig:
        return next(line for line in self.config.lines if line.name == name)

    # --- lines ------------------------------------------------------------------------------

    def _driver_factory(self, line: LineConfig) -> Callable[[], LineDriver]:
        handler = self.calls.handler_for(line.name)
        if line.driver == "sim":
            from appliance.sim.simcom import SimcomModem

            modem = SimcomModem(name=line.name, number=line.number, speed=self.config.sim.speed,
                                drift_ppm=line.drift_ppm)
            modem.start()
            self._modems[line.name] = modem
            log.info("line %s: simulated SIMCom modem on %s (control) and %s (audio)",
                     line.name, modem.control_path, modem.audio_path)
            return lambda: create_driver("simcom", line.name, handler,
                                         control=modem.control_path,
                                         audio="serial:" + modem.audio_path, fmt=self.fmt,
                                         number=line.number)
        return lambda: create_driver(line.driver, line.name, handler, control=line.control or "",
                                     audio=line.audio, fmt=self.fmt, number=line.number)

    def _refresh_line_health(self) -> None:
        """Ask every running driver for fresh health; it reports on the event bus (line.status)."""
        for runner in self._lines:
            runner.refresh_status()

    def start(self) -> None:
        self.jobs.start()
        self.webhooks.start()
        self.engine.start()
        for line in self.config.lines:
            try:
                factory = self._driver_factory(line)
            except ValueError as exc:
                log.error("%s", exc)
                continue
            runner = LineRunner(line, factory,
                                lambda driver, name=line.name, number=line.number:
                                self.calls.register_line(name, driver, number))
            runner.start()
            self._lines.append(runner)
        if self._modems:
            from appliance.sim.control import SimControlServer

            self._sim_server = SimControlServer(
                self._modems, self.config.appliance.data_dir / "sim.sock")
            self._sim_server.start()
        log.info("ready: %d line(s), %s Hz, %d ms frames; account %s", len(self._lines),
                 self.fmt.rate, self.fmt.frame_ms, self.credentials.account_sid)
        sd_notify(f"READY=1\nSTATUS=lines {len(self._lines)}")

    def stop(self) -> None:
        """Hang up live calls, stop lines, tick and emulators."""
        self.jobs.stop()
        log.info("stopping: hanging up %d call(s)", len(self.calls.calls()))
        sd_notify("STOPPING=1")
        self.calls.hangup_all()
        for runner in self._lines:
            runner.stop()
        if self._sim_server is not None:
            self._sim_server.stop()
        for modem in self._modems.values():
            modem.stop()  # type: ignore[attr-defined]
        self.engine.stop()
        self.webhooks.stop()
        log.info("stopped")

    def run(self) -> int:
        def request_stop(signum: int, _frame: object) -> None:
            log.info("signal %s received", signal.Signals(signum).name)
            self._stopping.set()

        signal.signal(signal.SIGUSR1, lambda _signum, _frame: self.log_state())
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.start()
        try:
            while not self._stopping.wait(1.0):
                pass
        finally:
            self.stop()
        return 0

    def state(self) -> dict:
        """What is alive right now: calls, their threads, audio ports, conferences, threads."""
        return {
            "calls": [call.sid for call in self.calls.calls()],
            "ports": {call.sid: call.port.stats() for call in self.calls.calls() if call.port},
            "call_threads": self.calls.active_threads(),
            "attached_ports": self.engine.stats().get("ports", 0),
            "conferences": [conference.name for conference in self.conferences.active()],
            "threads": sorted(thread.name for thread in threading.enumerate()),
            "engine": self.engine.stats(),
        }

    def log_state(self) -> None:
        log.info("state: %s", json.dumps(self.state(), default=str))

    def request_stop(self) -> None:
        self._stopping.set()
