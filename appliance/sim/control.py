"""A Unix-socket control server for emulated modems running inside the daemon.

One JSON object per line in each direction. Requests name a ``cmd`` and, except ``status``,
a ``line``; answers carry ``"ok": true`` and the command's results, or ``"ok": false`` and an
``error``. Bad input is answered, never fatal to the server.

    {"cmd": "ring", "line": "gsm0", "caller_id": "+15551234567", "name": "Grandma"}
    {"cmd": "press", "line": "gsm0", "keys": "1234#", "inband": false, "ms": 100}
    {"cmd": "play", "line": "gsm0", "wav": "/abs/path/speech.wav"}
    {"cmd": "hangup", "line": "gsm0"}
    {"cmd": "record", "line": "gsm0", "path": "/abs/path/heard.wav"}
    {"cmd": "far_end", "line": "gsm0", "behaviour": "answer", "after": 1.0}
    {"cmd": "answer", "line": "gsm0"}
    {"cmd": "status"}

``far_end`` sets what the party reached by the line's next outbound calls does: "answer"
after ``after`` seconds of the modem's clock (alerting meanwhile), "busy" after ``after``,
"no-answer" (alerts until the line gives up, or the network after 60 s) or "unreachable".
``answer`` makes the party of the outbound call now alerting answer at once. Once it has
answered, ``press``, ``play``, ``record`` and ``hangup`` act for that party as for a caller;
``hangup`` before it answered declines the call (busy). ``status`` shows each line's state
(idle, ringing, dialing, alerting, active) and the number it ``dialed`` last.
"""

from __future__ import annotations

import json
import logging
import os
import socketserver
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from appliance.sim.far_end import OutboundCalls
from appliance.sim.models import SimulatedModem
from appliance.sim.simcom import RATE

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024


class RequestError(Exception):
    """A request that cannot be carried out; its text goes back to the client."""


def _text(request: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = request.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise RequestError(f"'{key}' must be a non-empty string")
    return value


def _status(modem: SimulatedModem) -> dict[str, Any]:
    return {
        "state": modem.state,
        "number": modem.number,
        "caller_id": modem.caller_id,
        "dialed": modem.dialed if isinstance(modem, OutboundCalls) else "",
        "audio": modem.audio_active,
        "sample_clock": modem.sample_clock,
        "stats": modem.stats(),
    }


class SimControl:
    """Carries out control requests against a set of named modems (no I/O of its own)."""

    def __init__(self, modems: Mapping[str, SimulatedModem]) -> None:
        self.modems = dict(modems)
        self._commands: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "status": self._cmd_status,
            "ring": self._cmd_ring,
            "press": self._cmd_press,
            "play": self._cmd_play,
            "hangup": self._cmd_hangup,
            "record": self._cmd_record,
            "far_end": self._cmd_far_end,
            "answer": self._cmd_answer,
        }

    def handle(self, raw: bytes | str) -> dict[str, Any]:
        """One request line in, one answer out; never raises."""
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise RequestError("a request is a JSON object")
            command = request.get("cmd")
            if command not in self._commands:
                known = ", ".join(sorted(self._commands))
                raise RequestError(f"unknown cmd {command!r} (known: {known})")
            return {"ok": True, **self._commands[command](request)}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        except (RequestError, ValueError, RuntimeError, OSError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug must not take the server down
            log.exception("sim control request failed: %r", raw)
            return {"ok": False, "error": f"internal error: {exc}"}

    def _modem(self, request: Mapping[str, Any]) -> SimulatedModem:
        line = _text(request, "line")
        try:
            return self.modems[line]
        except KeyError:
            known = ", ".join(sorted(self.modems)) or "none"
            raise RequestError(f"unknown line {line!r} (lines: {known})") from None

    def _cmd_status(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {"lines": {name: _status(modem) for name, modem in self.modems.items()}}

    def _cmd_ring(self, request: Mapping[str, Any]) -> dict[str, Any]:
        modem = self._modem(request)
        caller_id = _text(request, "caller_id", required=False)
        modem.ring(caller_id, _text(request, "name", required=False))
        return {"state": modem.state}

    def _cmd_press(self, request: Mapping[str, Any]) -> dict[str, Any]:
        modem = self._modem(request)
        ms = request.get("ms", 100)
        if not isinstance(ms, int) or isinstance(ms, bool) or not 20 <= ms <= 2000:
            raise RequestError("'ms' must be an integer from 20 to 2000")
        modem.press(_text(request, "keys"), inband=bool(request.get("inband")), ms=ms)
        return {}

    def _cmd_play(self, request: Mapping[str, Any]) -> dict[str, Any]:
        modem = self._modem(request)
        path = Path(_text(request, "wav"))
        if not path.is_file():
            raise RequestError(f"no such file: {path}")
        return {"start_sample": modem.play(path)}

    def _cmd_hangup(self, request: Mapping[str, Any]) -> dict[str, Any]:
        modem = self._modem(request)
        if modem.state == "idle":
            raise RequestError(f"{modem.name} has no call to hang up")
        modem.hangup()
        return {}

    def _cmd_record(self, request: Mapping[str, Any]) -> dict[str, Any]:
        import soundfile

        modem = self._modem(request)
        path = Path(_text(request, "path"))
        heard = modem.heard()
        soundfile.write(str(path), heard, RATE, subtype="PCM_16")
        return {"samples": len(heard), "seconds": len(heard) / RATE, "path": str(path)}

    def _outbound(self, request: Mapping[str, Any]) -> OutboundCalls:
        modem = self._modem(request)
        if not isinstance(modem, OutboundCalls):
            # The V.253 emulator is an analog line's subscriber end: it places no calls.
            raise RequestError(f"{modem.name} cannot take outbound calls (an analog line)")
        return modem

    def _cmd_far_end(self, request: Mapping[str, Any]) -> dict[str, Any]:
        modem = self._outbound(request)
        after = request.get("after", 1.0)
        if not isinstance(after, (int, float)) or isinstance(after, bool):
            raise RequestError("'after' must be a number of seconds")
        modem.set_far_end(_text(request, "behaviour"), float(after))
        return {}

    def _cmd_answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        modem = self._outbound(request)
        modem.answer_far_end()
        return {"state": modem.state}  # type: ignore[attr-defined]


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        while True:
            raw = self.rfile.readline(MAX_REQUEST_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_REQUEST_BYTES:
                answer = {"ok": False, "error": "request too long"}
            elif not raw.strip():
                continue
            else:
                answer = self.server.control.handle(raw)
            try:
                self.wfile.write(json.dumps(answer).encode() + b"\n")
                self.wfile.flush()
            except OSError:
                return
            if answer.get("error") == "request too long":
                return


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, control: SimControl) -> None:
        self.control = control
        super().__init__(path, _Handler)


class SimControlServer:
    """Serves :class:`SimControl` on a Unix stream socket (mode 0660) until ``stop()``."""

    def __init__(self, modems: Mapping[str, SimulatedModem], socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        self.control = SimControl(modems)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.is_socket():
            self.socket_path.unlink()  # left behind by a daemon that did not stop cleanly
        self._server = _Server(str(self.socket_path), self.control)
        os.chmod(self.socket_path, 0o660)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="sim-control", daemon=True
        )
        self._thread.start()
        log.info("sim control listening on %s", self.socket_path)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None
        if self.socket_path.is_socket():
            self.socket_path.unlink()

    def __enter__(self) -> SimControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
