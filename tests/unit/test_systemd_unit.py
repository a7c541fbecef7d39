"""The shipped systemd unit: valid, and hardened to an exposure of at most 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "appliance.service"
INSTALLED_COMMAND = "/opt/appliance/venv/bin/appliance"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed")


def settings(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_verifies(tmp_path):
    # verify insists that ExecStart exists: point a copy at this checkout's command.
    command = Path(sys.executable).with_name("appliance")
    assert command.exists(), "the project is not installed in this environment"
    copy = tmp_path / "appliance.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_COMMAND, str(command)))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "appliance.service" not in result.stderr, result.stderr


def test_the_unit_is_hardened():
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    score = re.search(r"Overall exposure level for appliance\.service: ([\d.]+)", result.stdout)
    assert score is not None, result.stdout
    assert float(score.group(1)) <= 2.0, result.stdout


def test_the_unit_keeps_the_promises_the_daemon_relies_on():
    unit = settings(UNIT.read_text())
    assert unit["Type"] == ["notify"]
    assert unit["Restart"] == ["always"]
    assert unit["ExecStart"][0].startswith(INSTALLED_COMMAND + " run")
    assert int(unit["WatchdogSec"][0]) <= 15  # within what a Pi's hardware watchdog allows
    assert unit["User"] == ["appliance"]
    assert set(unit["SupplementaryGroups"][0].split()) == {"dialout", "audio"}
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["ReadWritePaths"] == ["/var/lib/appliance"]
    assert unit["DevicePolicy"] == ["closed"]
