"""The simulator page (``/simulator``): place simulated callers on the daemon's emulated lines.

Only for a daemon whose lines run the built-in emulator (``driver = "sim"``, as ``make demo``
does): the supervisor then passes a :class:`Simulator` to ``create_app`` and these routes
exist; on a real appliance they are never registered. Per line: ring it with a caller ID,
key digits, say one of a few bundled sentences (espeak-ng, rendered once), hang up, and the
line's state, kept current by ``static/simulator.js`` polling ``/simulator/status``.

Every action is a plain form (the access guard checks its CSRF token) answered by a redirect
back to the page with a message, so it works without JavaScript too.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import bottle
from bottle import request, response

from appliance.web.access import current_session
from appliance.web.context import WebContext
from appliance.web.render import render
from appliance.web.sessions import Session

if TYPE_CHECKING:
    from appliance.audio.media import SpeechSynth

log = logging.getLogger(__name__)

ENVIRON_FLAG = "appliance.simulator"  # base.tpl shows the nav link when this is set
SAMPLE_RATE = 8000  # what the emulated modem carries
# key → what the simulated caller says (rendered by espeak-ng on first use)
SAMPLES: dict[str, str] = {
    "hello": "Hello everyone, can you all hear me?",
    "garden": "The garden is full of tomatoes this summer, come and pick some.",
    "bye": "I have to go now. Talk to you all soon, goodbye.",
}
STATE_LABELS = {"idle": "Idle", "ringing": "Ringing", "active": "In a call",
                "dialing": "Dialing", "alerting": "Alerting"}
# which forms a line offers in which state (the page hides the others)
OFFERED = {"ring": ("idle",), "press": ("active",), "play": ("active",),
           "hangup": ("ringing", "active", "dialing", "alerting")}
CALLER_ID = re.compile(r"^\+?[0-9]{0,20}$")
KEYS = re.compile(r"^[0-9*#A-D]{1,32}$")
MAX_NAME = 40
DEFAULT_CALLER = "+15557654321"


class SimulatorError(Exception):
    """The emulator refused a request; the text says why, for the page."""


class Simulator(Protocol):
    """What the page needs of the emulated lines (``SimClient`` has the same shape)."""

    def status(self) -> dict[str, dict[str, Any]]: ...

    def ring(self, line: str, caller_id: str, name: str = "") -> None: ...

    def press(self, line: str, keys: str) -> None: ...

    def say(self, line: str, sample: str) -> None: ...

    def hangup(self, line: str) -> None: ...


class ControlSimulator:
    """A :class:`Simulator` over the daemon's own emulators, through ``sim.control.SimControl``
    (the same requests and checks as the ``appliance sim`` command's socket).

    ``modems`` is the supervisor's live name → modem mapping (filled as lines start);
    ``synth`` renders the sample sentences once into ``sample_dir``.
    """

    def __init__(self, modems: Mapping[str, Any], synth: SpeechSynth, sample_dir: Path) -> None:
        self._modems = modems
        self._synth = synth
        self._sample_dir = Path(sample_dir)
        self._render_lock = threading.Lock()

    def _request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        from appliance.sim.control import SimControl

        answer = SimControl(self._modems).handle(json.dumps({"cmd": cmd, **fields}))
        if not answer.pop("ok", False):
            raise SimulatorError(answer.get("error", "the simulator refused"))
        return answer

    def status(self) -> dict[str, dict[str, Any]]:
        return self._request("status")["lines"]

    def ring(self, line: str, caller_id: str, name: str = "") -> None:
        self._request("ring", line=line, caller_id=caller_id, name=name)

    def press(self, line: str, keys: str) -> None:
        self._request("press", line=line, keys=keys)

    def say(self, line: str, sample: str) -> None:
        # The emulator queues speech on an idle line for its next call; from the page that
        # would be a surprise minutes later, so only a caller in a call speaks.
        state = self.status().get(line, {}).get("state")
        if state is not None and state != "active":
            raise SimulatorError("no call in progress")
        self._request("play", line=line, wav=str(self.sample_path(sample)))

    def hangup(self, line: str) -> None:
        self._request("hangup", line=line)

    def sample_path(self, sample: str) -> Path:
        """The WAV of sample ``sample`` at the modem's rate, rendered on first use."""
        if sample not in SAMPLES:
            raise SimulatorError(f"no sample called {sample!r}")
        path = self._sample_dir / f"sample-{sample}.wav"
        with self._render_lock:
            if not path.is_file():
                import soundfile

                samples = self._synth.synthesize(SAMPLES[sample], "", "en-US", SAMPLE_RATE)
                self._sample_dir.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".part.wav")
                soundfile.write(str(partial), samples, SAMPLE_RATE, subtype="PCM_16")
                partial.replace(path)
        return path


def line_view(name: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """One line as the page and its status JSON show it."""
    state = str(status.get("state", "idle"))
    return {"name": name, "state": state, "label": STATE_LABELS.get(state, state.title()),
            "number": status.get("number") or "", "caller_id": status.get("caller_id") or "",
            "dialed": status.get("dialed") or "", "audio": bool(status.get("audio"))}


def install(app: bottle.Bottle, ctx: WebContext, simulator: Simulator) -> None:
    """Add /simulator, its status and its forms to ``app``."""

    @app.hook("before_request")
    def mark_simulated() -> None:
        request.environ[ENVIRON_FLAG] = True

    def session_of_request() -> Session:
        session = current_session(request)
        assert session is not None, "the access guard admits only sessions here"
        return session

    def lines() -> list[dict[str, Any]]:
        return [line_view(name, status) for name, status in sorted(simulator.status().items())]

    def known_line(line: str) -> None:
        if line not in simulator.status():
            raise bottle.HTTPError(404)

    def done(session: Session, kind: str, text: str) -> None:
        session.flash(kind, text)
        bottle.redirect("/simulator", 303)

    def act(line: str, what: str, action: Any) -> None:
        """Carry out ``action``; say what happened or why it could not."""
        session = session_of_request()
        known_line(line)
        try:
            action()
        except SimulatorError as exc:
            done(session, "error", f"{line}: {exc}")
        log.info("simulator: %s: %s", line, what)
        done(session, "ok", f"{line}: {what}.")

    @app.get("/simulator")
    def simulator_page() -> str:
        return render("simulator", ctx=ctx, session=session_of_request(), lines=lines(),
                      samples=SAMPLES, offered=OFFERED, default_caller=DEFAULT_CALLER,
                      scripts=["simulator.js"], styles=["simulator.css"])

    @app.get("/simulator/status")
    def simulator_status() -> str:
        response.content_type = "application/json"
        response.set_header("Cache-Control", "no-store")
        return json.dumps({"lines": lines(), "offered": OFFERED})

    @app.post("/simulator/<line>/ring")
    def ring(line: str) -> None:
        caller_id = request.forms.getunicode("caller_id", default="").strip().replace(" ", "")
        name = " ".join(request.forms.getunicode("name", default="").split())
        if not CALLER_ID.match(caller_id) or len(name) > MAX_NAME:
            known_line(line)
            done(session_of_request(), "error",
                 f"{line}: a caller ID is digits with an optional leading +, "
                 f"and a name at most {MAX_NAME} characters.")
        who = caller_id or "a withheld number"
        act(line, f"ringing from {who}", lambda: simulator.ring(line, caller_id, name))

    @app.post("/simulator/<line>/press")
    def press(line: str) -> None:
        keys = request.forms.getunicode("keys", default="").strip().upper()
        if not KEYS.match(keys):
            known_line(line)
            done(session_of_request(), "error",
                 f"{line}: keys are 1 to 32 of 0-9, *, # and A-D.")
        act(line, f"pressed {keys}", lambda: simulator.press(line, keys))

    @app.post("/simulator/<line>/play")
    def play(line: str) -> None:
        sample = request.forms.getunicode("sample", default="")
        if sample not in SAMPLES:
            known_line(line)
            done(session_of_request(), "error", f"{line}: choose one of the sentences.")
        act(line, f"the caller says “{SAMPLES[sample]}”", lambda: simulator.say(line, sample))

    @app.post("/simulator/<line>/hangup")
    def hangup(line: str) -> None:
        act(line, "the caller hung up", lambda: simulator.hangup(line))
