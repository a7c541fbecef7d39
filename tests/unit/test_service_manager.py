"""systemd notifications: readiness, STATUS= and a watchdog fed only while the tick runs."""

from __future__ import annotations

import os
import socket

import pytest

from appliance.service_manager import ServiceNotifier, sd_notify, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    message = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in message.splitlines())


def test_outside_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sd_notify("READY=1") is False
    assert watchdog_interval() is None


def test_the_watchdog_interval_is_half_the_timeout(notify_socket, monkeypatch):
    assert watchdog_interval() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


def test_ready_carries_the_status_line(notify_socket):
    ServiceNotifier(lambda: 0.0, lambda: "2 lines, 1 call").ready()
    assert received(notify_socket) == {"READY": "1", "STATUS": "2 lines, 1 call"}


def test_the_watchdog_is_fed_only_while_the_tick_runs(notify_socket, caplog):
    age = [0.02]
    notifier = ServiceNotifier(lambda: age[0], lambda: "1 line, 0 calls")
    notifier.beat(watchdog=True)
    assert received(notify_socket) == {"WATCHDOG": "1", "STATUS": "1 line, 0 calls"}
    age[0] = 3.0  # the tick has not run for three seconds
    notifier.beat(watchdog=True)
    assert received(notify_socket) == {"STATUS": "1 line, 0 calls"}
    assert "audio tick stalled" in caplog.text
    age[0] = 0.01
    notifier.beat(watchdog=True)
    assert received(notify_socket)["WATCHDOG"] == "1"


def test_a_running_notifier_pings_on_its_own(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    notifier = ServiceNotifier(lambda: 0.0, lambda: "ok")
    notifier.start()
    try:
        assert received(notify_socket)["WATCHDOG"] == "1"
        assert received(notify_socket)["WATCHDOG"] == "1"
    finally:
        notifier.stop()
