"""Issue 5's key test, end to end: the real daemon on two emulated modems whose lines run the
built-in room entry (``voice_url = "rooms"``), driven from Debian's chromium.

The owner sets the password, logs in and creates the room "family" with PIN 1234 through the
form; two simulated callers ring and key 1234#; both appear on /live without a reload; what
one says the other hears; Mute on the page silences them for the other (measured on the
modem's audio) while they stay in the room; Kick ends their call; both calls are in the log.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from appliance.audio.media import SpeechSynth
from appliance.sim.simcom import SimcomModem
from tests.audio_checks import rms_dbfs
from tests.browser.conftest import DESKTOP, PHONE
from tests.e2e.callers import RATE, Voices, heard_while, hears, quiet, wait_clock, wait_for
from tests.harness import SPEED, Daemon, spawn, write_config

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
PIN = "1234"
GRANDMA, SON = "+15557654321", "+15551112222"
WAIT_MS = 20_000  # the page waits on real calls: prompts, PIN, joins at the emulator's pace


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """The daemon with two emulated SIM7600s, both lines on the built-in room entry."""
    modems = {}
    for index in range(2):
        modem = SimcomModem(name=f"gsm{index}", number=f"+1555123000{index}", speed=SPEED)
        modem.start()
        modems[f"gsm{index}"] = modem
    try:
        config = write_config(tmp_path, modems, "rooms", SPEED)
        running = spawn(config, modems, list(modems))
    except BaseException:
        for modem in modems.values():
            modem.stop()
        raise
    yield running
    running.close()


def web_url(workdir: Path) -> str:
    """The daemon's page, from the ``[web] listen`` the harness chose."""
    listen = tomllib.loads((workdir / "config.toml").read_text())["web"]["listen"]
    return "http://" + listen


def prompt_playing(modem: SimcomModem, since: int, timeout: float = 30.0) -> None:
    """Wait until the caller hears speech after sample ``since`` (the entry's PIN prompt)."""
    window = RATE // 10

    def speaking() -> bool:
        heard = modem.heard()
        return any(rms_dbfs(heard[at:at + window]) > -40
                   for at in range(since, len(heard) - window + 1, window))
    wait_for(speaking, timeout, f"{modem.name} to hear the entry's prompt")


def dial_in_with_pin(modem: SimcomModem, caller: str) -> None:
    """The caller rings the line, hears the welcome and keys the room's PIN and #."""
    modem.ring(caller)
    assert modem.wait_state("active", 20), f"{modem.name} was not answered"
    assert modem.wait_audio(20), f"{modem.name} has no audio"
    prompt_playing(modem, modem.sample_clock)
    modem.press(PIN + "#")


def log_in(page, url: str) -> None:
    page.goto(url + "/live")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/live")


def participant(page, caller: str):
    return page.locator(".participant").filter(
        has=page.locator(".caller", has_text=re.compile("^" + re.escape(caller) + "$")))


def test_two_callers_key_the_pin_appear_live_and_mute_and_kick_act_on_the_real_call(
        chromium, daemon, screenshots, tmp_path):
    from playwright.sync_api import expect

    voices = Voices(SpeechSynth(tmp_path / "tts"))
    sentence = voices("The garden is full of tomatoes this summer, come and pick some.")
    grandma_modem, son_modem = daemon.modems["gsm0"], daemon.modems["gsm1"]
    url = web_url(daemon.workdir)

    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                   has_touch=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())  # kick asks first

    # First run: the admin password, then the owner is in.
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/setup$"))
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_label("Type it again").fill(PASSWORD)
    page.get_by_role("button", name="Set password and continue").click()
    expect(page).to_have_url(url + "/")

    # The room, through the form.
    page.get_by_role("link", name="Rooms").click()
    page.get_by_role("link", name="New room").click()
    page.get_by_label("Name").fill("family")
    page.get_by_label("PIN", exact=True).fill(PIN)
    page.get_by_role("button", name="Create room").click()
    expect(page.locator("main")).to_contain_text("family")
    expect(page).not_to_have_url(re.compile(r"/rooms/new$"))
    page.goto(url + "/rooms")
    expect(page.locator(".room")).to_have_count(1)
    page.screenshot(path=screenshots / "rooms-family.png", full_page=True)

    # The live view, opened once: everything after this arrives over SSE.
    page.get_by_role("link", name="Live").click()
    expect(page.locator("#live")).to_have_attribute("data-live", "on")
    expect(page.locator("#no-conferences")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    dial_in_with_pin(grandma_modem, GRANDMA)
    grandma = participant(page, GRANDMA)
    expect(grandma).to_be_visible()
    expect(page.locator(".room")).to_have_count(1)
    room = page.locator(".room")

    dial_in_with_pin(son_modem, SON)
    son = participant(page, SON)
    expect(son).to_be_visible()
    expect(room.locator(".room-count")).to_have_text("2 people")
    expect(room.locator(".room-state")).to_have_text("Live")
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"

    # What grandma says, her son hears; the page shows her talking meanwhile (after the
    # join beep, a second of the son's clock).
    wait_clock(son_modem, son_modem.sample_clock + RATE)
    mark = son_modem.sample_clock
    start = grandma_modem.play(sentence)
    expect(grandma).to_have_attribute("data-talking", "true")
    expect(son).to_have_attribute("data-talking", "false")
    page.screenshot(path=screenshots / "live-call.png", full_page=True)
    wait_clock(grandma_modem, start + len(sentence) + RATE // 2)
    assert hears(son_modem.heard()[mark:], sentence), "the son should hear grandma"
    expect(grandma).to_have_attribute("data-talking", "false")  # she stopped; so did the badge

    wide = chromium.new_context(viewport=DESKTOP)
    desk = wide.new_page()
    desk.set_default_timeout(WAIT_MS)
    log_in(desk, url)
    expect(participant(desk, GRANDMA)).to_be_visible()
    expect(participant(desk, SON)).to_be_visible()
    desk.screenshot(path=screenshots / "live-call-desktop.png", full_page=True)
    wide.close()

    # Mute grandma on the page: her son no longer hears her; she is still in the room.
    grandma.get_by_role("button", name="Mute").click()
    expect(grandma.locator(".muted-badge")).to_be_visible()
    expect(grandma.get_by_role("button", name="Unmute")).to_be_visible()
    [son_heard] = heard_while(grandma_modem, sentence, son_modem)
    assert not hears(son_heard, sentence), "a muted caller must not be heard"
    assert quiet(son_heard), f"the son hears {rms_dbfs(son_heard):.1f} dBFS while she is muted"
    assert grandma_modem.state == "active"
    expect(room.locator(".room-count")).to_have_text("2 people")

    # Kick her: her call ends and she leaves the page; her son stays.
    grandma.get_by_role("button", name="Kick").click()
    assert grandma_modem.wait_state("idle", 20), "a kicked caller's call should end"
    expect(grandma).to_have_count(0)
    expect(son).to_be_visible()
    expect(room.locator(".room-count")).to_have_text("1 person")

    # He hangs up: the room goes.
    son_modem.hangup()
    expect(page.locator(".room")).to_have_count(0)
    expect(page.locator("#no-conferences")).to_be_visible()
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"

    # Both calls are in the log, ended (the log is written by its own thread: reload until).
    page.get_by_role("link", name="Calls").click()
    rows = page.locator("#calls tbody tr")

    def both_completed() -> bool:
        statuses = rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
        if statuses == ["completed", "completed"]:
            return True
        page.reload()
        return False
    wait_for(both_completed, 10, "both calls logged as completed", every=0.3)
    for caller, line in ((GRANDMA, "gsm0"), (SON, "gsm1")):
        row = rows.filter(has_text=caller)
        expect(row).to_have_count(1)
        expect(row.locator('[data-label="Line"]')).to_have_text(line)
        expect(row.locator('[data-label="Room"]')).to_have_text("family")
    page.screenshot(path=screenshots / "live-call-log.png", full_page=True)
    assert errors == []
    context.close()


def test_the_simulator_page_rings_keys_and_hangs_up_a_simulated_line(chromium, screenshots,
                                                                     tmp_path):
    """DESIGN's journey 5 from a phone: the demo's simulator page places a caller on an
    emulated line, keys digits and hangs up; the line's state follows without a reload."""
    from playwright.sync_api import expect

    from appliance.events import EventBus
    from appliance.web import MemorySettings, WebServer, create_app
    from appliance.web.passwords import hash_password
    from appliance.web.settings import ADMIN_PASSWORD
    from appliance.web.simulator_page import ControlSimulator

    modems = {}
    for index in range(2):
        modem = SimcomModem(name=f"gsm{index}", number=f"+1555123000{index}", speed=SPEED)
        modem.start()
        modems[modem.name] = modem
    settings = MemorySettings()
    settings.set(ADMIN_PASSWORD, hash_password(PASSWORD))
    app = create_app(settings, EventBus(), default_name="Demo line",
                     simulator=ControlSimulator(modems, SpeechSynth(tmp_path / "tts"),
                                                tmp_path / "samples"))
    server = WebServer(app, "127.0.0.1", 0, threads=4)
    server.start()
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                   has_touch=True)
    try:
        page = context.new_page()
        page.set_default_timeout(5000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        log_in(page, server.url)
        page.get_by_role("link", name="Simulator").click()
        gsm0 = page.locator('.sim-line[data-line="gsm0"]')
        expect(gsm0.locator(".state")).to_have_text("Idle")
        expect(gsm0.get_by_role("button", name="Press")).to_be_hidden()

        gsm0.get_by_label("Caller ID").fill(GRANDMA)
        gsm0.get_by_role("button", name="Ring gsm0").click()
        expect(page.locator(".flash-ok")).to_have_text(f"gsm0: ringing from {GRANDMA}.")
        expect(gsm0.locator(".state")).to_have_text("Ringing")
        assert modems["gsm0"].state == "ringing" and modems["gsm0"].caller_id == GRANDMA

        # The appliance answers (here: what its driver would send); the page follows.
        control = serial.Serial(modems["gsm0"].control_path, 115200, timeout=5)
        control.write(b"ATE0\r")
        control.read_until(b"OK\r\n")
        control.write(b"ATA\r")
        control.read_until(b"OK\r\n")
        page.evaluate("window.__notReloaded = true")
        expect(gsm0.locator(".state")).to_have_text("In a call")
        expect(gsm0.get_by_role("button", name="Ring gsm0")).to_be_hidden()
        assert page.evaluate("window.__notReloaded === true")

        gsm0.get_by_label("Keys").fill("1234#")
        gsm0.get_by_role("button", name="Press").click()
        expect(page.locator(".flash-ok")).to_have_text("gsm0: pressed 1234#.")
        assert re.findall(r"\+RXDTMF: (.)", control.read_until(b"+RXDTMF: #\r\n").decode()) \
            == list("1234#")
        page.screenshot(path=screenshots / "simulator.png", full_page=True)

        gsm0.get_by_role("button", name="Hang up").click()
        expect(gsm0.locator(".state")).to_have_text("Idle")
        assert modems["gsm0"].wait_state("idle", 5)
        control.close()
        assert errors == []
    finally:
        context.close()
        server.stop()
        for modem in modems.values():
            modem.stop()
