"""Client for the daemon's simulated-modem control socket (see ``appliance.sim.control``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class SimControlError(Exception):
    """The daemon refused or failed a request; the message is its explanation."""


class SimUnavailableError(SimControlError):
    """Nothing listens on the control socket (the daemon is not running with sim lines)."""


class SimClient:
    """One request per connection, mirroring the server's commands."""

    def __init__(self, socket_path: Path | str, timeout: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **fields}``; the answer without its ``ok`` flag."""
        payload = json.dumps({"cmd": cmd, **fields}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(payload)
                with sock.makefile("rb") as answers:
                    raw = answers.readline()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SimUnavailableError(
                f"no simulator control socket at {self.socket_path} "
                "(is `appliance run` running with simulated lines?)"
            ) from exc
        except OSError as exc:
            raise SimControlError(f"{self.socket_path}: {exc}") from exc
        if not raw:
            raise SimControlError("the daemon closed the connection without answering")
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SimControlError(f"unreadable answer from the daemon: {raw!r}") from exc
        if not answer.pop("ok", False):
            raise SimControlError(answer.get("error", "request failed"))
        return answer

    def status(self) -> dict[str, dict[str, Any]]:
        """Every simulated line: state, number, caller, audio counters."""
        return self.request("status")["lines"]

    def ring(self, line: str, caller_id: str, name: str = "") -> None:
        self.request("ring", line=line, caller_id=caller_id, name=name)

    def press(self, line: str, keys: str, *, inband: bool = False, ms: int = 100) -> None:
        self.request("press", line=line, keys=keys, inband=inband, ms=ms)

    def play(self, line: str, wav: Path | str) -> int:
        """Queue a sound file as the caller's speech; the sample index where it starts."""
        return self.request("play", line=line, wav=str(Path(wav).resolve()))["start_sample"]

    def hangup(self, line: str) -> None:
        self.request("hangup", line=line)

    def record(self, line: str, path: Path | str) -> int:
        """Write what the line's caller heard to a WAV file; the number of samples."""
        return self.request("record", line=line, path=str(Path(path).resolve()))["samples"]

    def far_end(self, line: str, behaviour: str, after: float = 1.0) -> None:
        """What the party reached by the line's next outbound calls does (see ``control``)."""
        self.request("far_end", line=line, behaviour=behaviour, after=after)

    def answer(self, line: str) -> None:
        """The party of the line's alerting outbound call answers now."""
        self.request("answer", line=line)
