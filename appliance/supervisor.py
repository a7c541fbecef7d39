"""Starts, watches and stops everything: lines, the audio tick, one interpreter per call."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable

from appliance.audio.engine import AudioEngine
from appliance.audio.media import SpeechSynth
from appliance.call_history import CallHistory
from appliance.calls.call import Call
from appliance.calls.conference import ConferenceRegistry
from appliance.calls.dial import NumberDialer, Rooms
from appliance.calls.manager import CallManager
from appliance.calls.recording import RecordingStore
from appliance.calls.router import AudioRouter
from appliance.calls.session import LiveCallSession
from appliance.config import Config, LineConfig
from appliance.credentials import load_api_credentials
from appliance.events import EventBus
from appliance.jobs import JobRunner
from appliance.lines.base import LineDriver
from appliance.lines.registry import create_driver
from appliance.service_manager import ServiceNotifier
from appliance.store import PRUNE_EVERY_SECONDS, Store, StoreError
from appliance.twiml.fetch import Fetcher, resolve_url
from appliance.twiml.interpreter import Interpreter
from appliance.twiml.media_cache import MediaCache
from appliance.web import WebServer, create_app
from appliance.web.line_rules import voice_url_for
from appliance.web.room_services import RoomServices
from appliance.web.rule_files import RuleFiles
from appliance.web.simulator_page import ControlSimulator
from appliance.webhooks import WebhookSender

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
LINE_HEALTH_SECONDS = 30  # signal, registration, operator and SIM of every line
BUILT_IN_ROOMS = "rooms"  # voice_url of the built-in room entry (PIN, then the room)
WEB_MAX_REQUEST_BYTES = 25 * 1024 * 1024  # above an upload's 20 MB cap: refused before read


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
        self.bridges = ConferenceRegistry(self.fmt)  # <Dial><Number>'s private two-party rooms
        self.router = AudioRouter(self.fmt, self.calls.calls, Rooms(self.conferences, self.bridges))
        self.dialer = NumberDialer(self.calls, self.bridges, self.fmt,
                                   lambda: self.engine.ticks * self.fmt.period)
        self.fetcher = Fetcher(self.credentials.account_sid, self.credentials.auth_token)
        self.synth = SpeechSynth(data_dir / "cache" / "tts")
        self.media = MediaCache(self.fetcher, self.fmt.rate, cache_dir=data_dir / "cache" / "media")
        self.webhooks = WebhookSender(self.credentials.auth_token)
        self.recordings = RecordingStore.for_listen(data_dir / "recordings", config.web.host,
                                                    config.web.port)
        self._lines: list[LineRunner] = []
        self._modems: dict[str, object] = {}
        self._sim_server = None
        self._stopping = threading.Event()
        self.jobs = JobRunner()
        self.jobs.every(LINE_HEALTH_SECONDS, self._refresh_line_health, "line health")
        self.store = Store.in_data_dir(data_dir)
        self.history = CallHistory(self.bus, self.store)
        self.jobs.every(PRUNE_EVERY_SECONDS, self.store.prune_call_log, "call log pruning")
        self.web = self._web_server()
        self.notifier = ServiceNotifier(self.engine.last_tick_age, self._status_line)

    # --- calls ------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        self.router.on_tick()

    def _run_call(self, call: Call) -> None:
        line = self._line_config(call.line)
        session = LiveCallSession(call, self.conferences, self.calls.hangup,
                                  self.credentials.account_sid, self.webhooks, self.recordings,
                                  answer=self.calls.answer, reject=self.calls.reject,
                                  dialer=self.dialer)
        interpreter = Interpreter(session, self.fetcher, self.synth, self.fmt, self.media,
                                  answering=session)
        base = self.config.path.parent.as_uri() + "/" if self.config.path else ""
        fallback = resolve_url(base, line.fallback_url) if line.fallback_url else ""
        voice_url = self._voice_url(line)
        if voice_url == BUILT_IN_ROOMS:
            interpreter.run(self._room_entry_url(), "POST", fallback)
        else:
            interpreter.run(resolve_url(base, voice_url), line.voice_method, fallback)

    def _voice_url(self, line: LineConfig) -> str:
        """The line's call rules now: the web page's choice (stored in the settings) when it
        made one, else config.toml's ``voice_url``. Read at each call, so a change made on the
        page applies to the next call."""
        try:
            choice = self.store.settings.snapshot().line_voice_urls.get(line.name)
        except StoreError as exc:  # a damaged settings file must not silence the line
            log.error("line %s: cannot read the page's choice of call rules (%s); "
                      "using config.toml's", line.name, exc)
            return line.voice_url
        chosen = voice_url_for(choice, RuleFiles.in_data_dir(self.config.appliance.data_dir))
        if chosen is None:
            return line.voice_url
        log.info("line %s: running %s (chosen on the web page)", line.name, chosen)
        return chosen

    def _room_entry_url(self) -> str:
        """The built-in room entry, served by this daemon's own web server on loopback."""
        if self.web is None:
            return "http://127.0.0.1:1/voice/entry"  # no web server: the call hears the apology
        host = self.config.web.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host in ("::", "[::]"):
            host = "[::1]"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.web.port}/voice/entry"

    def _line_config(self, name: str) -> LineConfig:
        return next(line for line in self.config.lines if line.name == name)

    # --- lines ------------------------------------------------------------------------------

    def _driver_factory(self, line: LineConfig) -> Callable[[], LineDriver]:
        handler = self.calls.handler_for(line.name)
        if line.driver == "sim":
            from appliance.sim.models import make_emulator

            emulated = make_emulator(line.model, name=line.name, number=line.number,
                                     speed=self.config.sim.speed, drift_ppm=line.drift_ppm)
            if emulated.audio is not None and emulated.audio.startswith("alsa:"):
                from appliance.sim.soundcard import install_alsa_config

                install_alsa_config(self.config.appliance.data_dir)  # its sound card's PCM
            emulated.modem.start()
            self._modems[line.name] = emulated.modem
            log.info("line %s: simulated %s modem on %s (control), voice on %s", line.name,
                     line.model, emulated.control, emulated.audio or "the control port")
            return lambda: create_driver(emulated.driver, line.name, handler,
                                         control=emulated.control, audio=emulated.audio,
                                         fmt=self.fmt, number=line.number)
        return lambda: create_driver(line.driver, line.name, handler, control=line.control or "",
                                     audio=line.audio, fmt=self.fmt, number=line.number)

    def _refresh_line_health(self) -> None:
        """Ask every running driver for fresh health; it reports on the event bus (line.status)."""
        for runner in self._lines:
            runner.refresh_status()

    def start(self) -> None:
        self.jobs.start()
        self.history.start()
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
        if self.web is not None:
            self.web.start()
        log.info("ready: %d line(s), %s Hz, %d ms frames; account %s", len(self._lines),
                 self.fmt.rate, self.fmt.frame_ms, self.credentials.account_sid)
        self.notifier.ready()
        self.notifier.start()

    def stop(self) -> None:
        """Hang up live calls, stop lines, tick and emulators."""
        self.jobs.stop()
        log.info("stopping: hanging up %d call(s)", len(self.calls.calls()))
        self.notifier.stopping()
        self.notifier.stop()
        if self.web is not None:
            self.web.stop()
        self.calls.hangup_all()
        for runner in self._lines:
            runner.stop()
        if self._sim_server is not None:
            self._sim_server.stop()
        for modem in self._modems.values():
            modem.stop()  # type: ignore[attr-defined]
        self.engine.stop()
        self.webhooks.stop()
        self.history.stop()
        self.store.close()
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

    def _web_server(self) -> WebServer | None:
        """The web page; a port that cannot be had is logged, and the lines still answer."""
        rooms = RoomServices.in_data_dir(self.store.rooms, self.config.appliance.data_dir)
        simulator = None
        if any(line.driver == "sim" for line in self.config.lines):
            simulator = ControlSimulator(self._modems, self.synth,
                                         self.config.appliance.data_dir / "cache" / "sim")
        app = create_app(self.store.settings, self.bus, line_states=self._line_states,
                         credentials=self.credentials, default_name=self.config.appliance.name,
                         store=self.store, rooms=rooms, conferences=self.conferences,
                         callers=self._callers, recordings=self.recordings,
                         rule_files=RuleFiles.in_data_dir(self.config.appliance.data_dir),
                         lines=lambda: [(line.name, line.voice_url) for line in self.config.lines],
                         simulator=simulator)
        host, port = self.config.web.host, self.config.web.port
        try:
            return WebServer(app, host, port, max_request_body_size=WEB_MAX_REQUEST_BYTES)
        except OSError as exc:
            log.error("web page: cannot listen on %s:%d (%s); calls are still answered",
                      host, port, exc)
            return None

    def _callers(self) -> dict[str, str]:
        """Call sid -> caller ID of the live calls, for the web page's participant list."""
        return {call.sid: call.from_number for call in self.calls.calls()}

    def _line_states(self) -> dict[str, dict]:
        """Line name -> {"state", "detail"} for the web page; "starting" until it reports."""
        states = {line.name: {"state": "starting", "detail": {}} for line in self.config.lines}
        for name, status in dict(self.calls.line_status).items():
            states[name] = {"state": status.state, "detail": status.detail}
        return states

    def _status_line(self) -> str:
        """What systemd shows as the service's status."""
        ready = sum(1 for status in dict(self.calls.line_status).values()
                    if status.state in ("idle", "ringing", "in-call"))
        return (f"{ready}/{len(self.config.lines)} lines ready, "
                f"{len(self.calls.calls())} calls, {len(self.conferences.active())} conferences")

    def state(self) -> dict:
        """What is alive right now: calls, their threads, audio ports, conferences, threads."""
        return {
            "calls": [call.sid for call in self.calls.calls()],
            "ports": {call.sid: call.port.stats() for call in self.calls.calls() if call.port},
            "call_threads": self.calls.active_threads(),
            "attached_ports": self.engine.stats().get("ports", 0),
            "conferences": [conference.name for conference in self.conferences.active()],
            "bridges": [bridge.name for bridge in self.bridges.active()],
            "threads": sorted(thread.name for thread in threading.enumerate()),
            "engine": self.engine.stats(),
        }

    def log_state(self) -> None:
        log.info("state: %s", json.dumps(self.state(), default=str))

    def request_stop(self) -> None:
        self._stopping.set()
