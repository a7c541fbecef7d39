"""Start the real daemon as a subprocess on emulated SIMCom modems behind real ptys."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.sim.simcom import SimcomModem

SPEED = float(os.environ.get("APPLIANCE_TEST_SPEED", "2.0"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Daemon:
    """A running ``appliance run`` and what it printed."""

    process: subprocess.Popen
    modems: dict[str, SimcomModem]
    workdir: Path
    log_lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.rstrip("\n")
            with self._changed:
                self.log_lines.append(line)
                self._changed.notify_all()

    def wait_log(self, pattern: str, timeout: float = 20.0, start: int = 0) -> re.Match:
        """Block until a log line matches ``pattern`` (regex)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            index = start
            while True:
                while index < len(self.log_lines):
                    match = regex.search(self.log_lines[index])
                    if match:
                        return match
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(
                        f"no log line matching {pattern!r}; log:\n" + "\n".join(self.log_lines))
                self._changed.wait(remaining)

    def state(self) -> dict:
        """The daemon's own account of what is alive (SIGUSR1 dumps it as one JSON log line)."""
        mark = len(self.log_lines)
        self.process.send_signal(signal.SIGUSR1)
        match = self.wait_log(r"state: (\{.*\})", start=mark)
        return json.loads(match.group(1))

    def close(self) -> None:
        """Stop the daemon and the modems."""
        self.stop()
        for modem in self.modems.values():
            modem.stop()

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def write_config(workdir: Path, modems: dict[str, SimcomModem], voice_url: str,
                 speed: float = SPEED) -> Path:
    lines = []
    for index, (name, modem) in enumerate(modems.items()):
        lines.append(
            f'[[line]]\nname = "{name}"\ndriver = "simcom"\n'
            f'control = "{modem.control_path}"\naudio = "serial:{modem.audio_path}"\n'
            f'number = "+1555123000{index}"\nvoice_url = "{voice_url}"\n'
        )
    config = workdir / "config.toml"
    config.write_text(
        '[appliance]\nname = "test line"\ndata_dir = "var"\n\n'
        "[audio]\nrate = 16000\nframe_ms = 20\n\n"
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\n\n'
        f"[sim]\nspeed = {speed}\n\n" + "\n".join(lines)
    )
    return config


def launch(workdir: Path, rules_xml: str, lines: int = 2, speed: float = SPEED,
           drift_ppm: tuple[float, ...] = ()) -> Daemon:
    """Start ``lines`` emulated modems and a daemon running ``rules_xml``; wait until ready."""
    modems = {}
    for index in range(lines):
        drift = drift_ppm[index] if index < len(drift_ppm) else 0.0
        modem = SimcomModem(name=f"gsm{index}", number=f"+1555123000{index}",
                            speed=speed, drift_ppm=drift)
        modem.start()
        modems[f"gsm{index}"] = modem
    (workdir / "rules.xml").write_text(rules_xml)
    config = write_config(workdir, modems, "rules.xml", speed)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        cwd=workdir, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    daemon = Daemon(process, modems, workdir)
    threading.Thread(target=daemon._pump, daemon=True).start()
    try:
        daemon.wait_log(r"ready:")
        for name in modems:
            daemon.wait_log(rf"line {name}: ready")
    except BaseException:
        daemon.close()
        raise
    return daemon
