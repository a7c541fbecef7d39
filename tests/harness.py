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
from collections.abc import Sequence
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
    _log_closed: bool = False  # the daemon's stderr reached its end: no more lines will come

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.rstrip("\n")
            with self._changed:
                self.log_lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._log_closed = True
            self._changed.notify_all()

    def wait_log(self, pattern: str, timeout: float = 20.0, start: int = 0) -> re.Match:
        """Block until a log line matches ``pattern`` (regex); after the daemon has exited,
        its last lines are still searched."""
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
                if remaining <= 0 or self._log_closed:
                    raise AssertionError(
                        f"no log line matching {pattern!r}; log:\n" + "\n".join(self.log_lines))
                self._changed.wait(remaining)

    def state(self) -> dict:
        """The daemon's own account of what is alive (SIGUSR1 dumps it as one JSON log line)."""
        mark = len(self.log_lines)
        self.process.send_signal(signal.SIGUSR1)
        match = self.wait_log(r"state: (\{.*\})", start=mark)
        return json.loads(match.group(1))

    def unplug(self, name: str) -> None:
        """The modem of line ``name`` vanishes: its by-id links go (as udev removes them), then
        its ptys close. A pty number is reused by the next pty anyone opens, so a retrying
        driver must never find the old path again."""
        for link in (self.workdir / "serial").glob(f"{name}-*"):
            link.unlink()
        self.modems[name].stop()

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


def write_config(workdir: Path, modems: dict[str, SimcomModem], voice_url: str | Sequence[str],
                 speed: float = SPEED, by_id: bool = False, extra_config: str = "") -> Path:
    """A config for ``modems``; ``by_id`` reaches their ptys through symlinks in
    ``workdir/serial``, as udev's /dev/serial/by-id names real modems.

    ``voice_url`` is every line's, or one per line; ``extra_config`` (TOML tables such as
    ``[api]``) is added as it is.
    """
    urls = [voice_url] * len(modems) if isinstance(voice_url, str) else list(voice_url)
    lines = []
    for index, ((name, modem), url) in enumerate(zip(modems.items(), urls, strict=True)):
        control, audio = modem.control_path, modem.audio_path
        if by_id:
            links = workdir / "serial"
            links.mkdir(exist_ok=True)
            (links / f"{name}-control").symlink_to(control)
            (links / f"{name}-audio").symlink_to(audio)
            control, audio = str(links / f"{name}-control"), str(links / f"{name}-audio")
        lines.append(
            f'[[line]]\nname = "{name}"\ndriver = "simcom"\n'
            f'control = "{control}"\naudio = "serial:{audio}"\n'
            f'number = "+1555123000{index}"\nvoice_url = "{url}"\n'
        )
    config = workdir / "config.toml"
    config.write_text(
        '[appliance]\nname = "test line"\ndata_dir = "var"\n\n'
        "[audio]\nrate = 16000\nframe_ms = 20\n\n"
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\n\n'
        f"[sim]\nspeed = {speed}\n\n{extra_config}\n" + "\n".join(lines)
    )
    return config


def launch(workdir: Path, rules_xml: str | Sequence[str], lines: int = 2, speed: float = SPEED,
           drift_ppm: tuple[float, ...] = (), by_id: bool = False,
           extra_config: str = "") -> Daemon:
    """Start ``lines`` emulated modems and a daemon running ``rules_xml``; wait until ready.

    With ``by_id`` the daemon finds the modems through symlinks (see :func:`write_config`),
    so :meth:`Daemon.unplug` can make one vanish the way a USB modem does.
    """
    modems = {}
    for index in range(lines):
        drift = drift_ppm[index] if index < len(drift_ppm) else 0.0
        modem = SimcomModem(name=f"gsm{index}", number=f"+1555123000{index}",
                            speed=speed, drift_ppm=drift)
        modem.start()
        modems[f"gsm{index}"] = modem
    if isinstance(rules_xml, str):
        (workdir / "rules.xml").write_text(rules_xml)
        voice_urls: str | list[str] = "rules.xml"
    else:
        voice_urls = [f"rules{index}.xml" for index in range(lines)]
        for name, rules in zip(voice_urls, rules_xml, strict=True):
            (workdir / name).write_text(rules)
    config = write_config(workdir, modems, voice_urls, speed, by_id, extra_config)
    return spawn(config, modems, list(modems))


def spawn(config: Path, modems: dict[str, SimcomModem] | None = None,
          ready_lines: list[str] | tuple[str, ...] = ()) -> Daemon:
    """Start ``appliance run --config config``; wait until it and ``ready_lines`` are ready.

    ``modems`` are emulators the test runs itself (stopped by :meth:`Daemon.close`); lines
    with ``driver = "sim"`` bring their own inside the daemon.
    """
    workdir = config.parent
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        cwd=workdir, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    daemon = Daemon(process, modems or {}, workdir)
    threading.Thread(target=daemon._pump, daemon=True).start()
    try:
        daemon.wait_log(r"ready:")
        for name in ready_lines:
            daemon.wait_log(rf"line {name}: ready")
    except BaseException:
        daemon.close()
        raise
    return daemon
