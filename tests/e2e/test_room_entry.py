"""The built-in room entry on the real daemon and emulated modems: one caller keys the room's
PIN and hears the hold music alone; another keys three wrong PINs, hears goodbye, and the
call ends.

Two ways in: a line whose ``voice_url`` is the entry's http URL on a web server this test
runs (the daemon signs its requests with the pinned ``[api] auth_token``), and
``voice_url = "rooms"`` with the room in the daemon's own store (needs the supervisor to
serve the rooms and resolve "rooms" to its own ``/voice/entry``).
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np
import pytest

from appliance import supervisor
from appliance.events import EventBus
from appliance.sim.simcom import SimcomModem
from appliance.store import Room, Store
from appliance.web import MemoryApiCredentials, MemorySettings, WebServer, create_app, room_twiml
from appliance.web.room_services import RoomServices
from tests.audio_checks import rms_dbfs
from tests.e2e.callers import RATE, Voices, hears, hears_hold_music
from tests.harness import SPEED, spawn, write_config

pytestmark = pytest.mark.e2e
ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "4" * 32
API = f'[api]\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{AUTH_TOKEN}"\n'
PIN = "1234"
ROOMS_WIRED = "RoomServices" in inspect.getsource(supervisor)



def speech_after(modem: SimcomModem, since: int, timeout: float = 20.0) -> int:
    """Wait until the caller hears a prompt after sample ``since`` (quiet, then speech)."""
    window = RATE // 10
    deadline = time.monotonic() + timeout
    quiet_at = None
    while time.monotonic() < deadline:
        heard = modem.heard()
        start = since if quiet_at is None else quiet_at
        for offset in range(start, len(heard) - window + 1, window):
            level = rms_dbfs(heard[offset:offset + window])
            if quiet_at is None and level < -50:
                quiet_at = offset
            elif quiet_at is not None and level > -40:
                return offset
        time.sleep(0.05)
    raise AssertionError("the caller never heard the next prompt")


def enter_pin(modem: SimcomModem, keys: str) -> int:
    """Key ``keys`` once the (next) prompt is playing; returns the sample clock after."""
    speech_after(modem, modem.sample_clock - RATE // 5)
    modem.press(keys)
    return modem.sample_clock


def wait_for_hold_music(modem: SimcomModem, since: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        heard = modem.heard()
        if len(heard) - since > 2 * RATE and hears_hold_music(heard):
            return
        time.sleep(0.2)
    raise AssertionError("the caller never heard the hold music after the PIN")


def run_entry(modems: dict[str, SimcomModem], voices: Voices) -> None:
    """Caller 1 keys the PIN and waits alone; caller 2 keys three wrong PINs."""
    first, second = modems["gsm0"], modems["gsm1"]
    first.ring("+15550001111")
    assert first.wait_audio(20)
    mark = enter_pin(first, PIN + "#")
    wait_for_hold_music(first, mark)

    second.ring("+15550002222")
    assert second.wait_audio(20)
    for wrong in ("1111#", "2222#"):
        enter_pin(second, wrong)
    mark = enter_pin(second, "3333#")
    assert second.wait_state("idle", 30), "the call should end after the third wrong PIN"
    goodbye = voices(f"{room_twiml.WRONG_PIN} {room_twiml.GOODBYE}")
    heard = second.heard()[mark:]
    assert hears(heard, goodbye), "the caller should hear that the PIN is wrong, and goodbye"
    assert not hears_hold_music(np.asarray(heard)), "a wrong PIN never reaches the room"
    assert first.state == "active", "the first caller is still in the room"
    assert hears_hold_music(first.heard())


def start_modems() -> dict[str, SimcomModem]:
    modems = {}
    for index in range(2):
        modem = SimcomModem(name=f"gsm{index}", number=f"+1555123000{index}", speed=SPEED)
        modem.start()
        modems[f"gsm{index}"] = modem
    return modems


def test_the_entry_served_over_http_admits_the_pin_and_turns_away_wrong_ones(tmp_path: Path,
                                                                             voices):
    store = Store.in_data_dir(tmp_path / "web")
    store.rooms.create(Room(name="family", pin=PIN))
    app = create_app(MemorySettings(), EventBus(),
                     credentials=MemoryApiCredentials(ACCOUNT_SID, AUTH_TOKEN),
                     default_name="the family line", store=store,
                     rooms=RoomServices.in_data_dir(store.rooms, tmp_path / "web"))
    web = WebServer(app, "127.0.0.1", 0, threads=4)
    web.start()
    modems = start_modems()
    daemon = None
    try:
        workdir = tmp_path / "daemon"
        workdir.mkdir()
        config = write_config(workdir, modems, web.url + room_twiml.ENTRY_PATH, SPEED,
                              extra_config=API)
        daemon = spawn(config, modems, list(modems))
        run_entry(modems, voices)
        assert daemon.stop() == 0
    finally:
        if daemon is not None:
            daemon.close()
        else:
            for modem in modems.values():
                modem.stop()
        web.stop()
        store.close()


@pytest.mark.skipif(not ROOMS_WIRED, reason=(
    "the supervisor does not serve the rooms yet: create_app(..., rooms=RoomServices."
    "in_data_dir(store.rooms, data_dir)) and voice_url = \"rooms\" resolved to "
    "http://127.0.0.1:<web port>/voice/entry are needed"))
def test_voice_url_rooms_runs_the_built_in_entry_from_the_daemons_own_store(tmp_path: Path,
                                                                           voices):
    store = Store.in_data_dir(tmp_path / "var")  # the daemon's data_dir, before it starts
    store.rooms.create(Room(name="family", pin=PIN))
    store.close()
    modems = start_modems()
    config = write_config(tmp_path, modems, "rooms", SPEED, extra_config=API)
    daemon = spawn(config, modems, list(modems))
    try:
        run_entry(modems, voices)
        assert daemon.stop() == 0
    finally:
        daemon.close()
