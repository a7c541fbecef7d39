"""The live view in a real browser: a caller appears when they join, the talking indicator
follows their voice, mute and kick act on the real conference. Screenshots of the live view,
the recordings and the call log at phone and desktop sizes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile

from appliance.calls.conference import ParticipantOptions
from appliance.store import CallRecord, RecordingEntry
from tests.browser.conftest import DESKTOP, PHONE
from tests.web_harness import PASSWORD
from tests.web_live_harness import FMT, running_live

A, B, C = "CA" + "a" * 32, "CA" + "b" * 32, "CA" + "c" * 32
WAIT_MS = 5000


@pytest.fixture
def web(tmp_path):
    with running_live(tmp_path) as harness:
        harness.lines.update({
            "gsm0": {"state": "in-call", "detail": {"signal_dbm": -67, "operator": "Test Mobile"}},
            "gsm1": {"state": "idle", "detail": {"signal_dbm": -85, "operator": "Test Mobile"}},
        })
        yield harness


def ring(web, call_sid: str, caller: str) -> None:
    """What the call manager does when a call rings: the bus hears it, callers() knows it."""
    web.callers[call_sid] = caller
    web.bus.publish("call.ringing", call_sid=call_sid, line="gsm0", caller=caller,
                    direction="inbound")


def talk(room, speaker: str, seconds: float) -> None:
    """``seconds`` of the room's ticks with ``speaker`` talking and the others silent."""
    rng = np.random.default_rng(3)
    for _ in range(round(seconds / FMT.period)):
        frames = {p.call_sid: FMT.silence() for p in room.participants}
        frames[speaker] = rng.normal(0, 4000, FMT.samples).clip(-32768, 32767).astype(np.int16)
        room.mix(frames)


def log_in(page, web) -> None:
    page.goto(web.url + "/live")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(web.url + "/live")


def fill_history(web) -> None:
    """A few logged calls and a real recording, for the other pages' pictures."""
    now = time.time()
    calls = [("CA1", "+15557654321", "completed", 600, 1834, "family"),
             ("CA2", "+15551112222", "completed", 560, 1790, "family"),
             ("CA3", "+447700900123", "busy", 7200, None, None),
             ("CA4", "+15553334444", "no-answer", 86400, None, None)]
    for sid, caller, status, ago, length, room in calls:
        started = now - ago
        web.store.calls.save(CallRecord(
            sid=sid, line="gsm0", from_=caller, to="+15551230000", started=started,
            status=status, answered=started + 3 if length else None,
            ended=started + 3 + (length or 0) if length or status != "ringing" else None,
            conference=room, reason=None if length else status))
    path = web.recordings.path_for("RE" + "1" * 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, (np.sin(np.arange(16000 * 3) / 4) * 6000).astype(np.int16), 16000)
    web.store.recordings.add(RecordingEntry(
        sid="RE" + "1" * 32, path=str(path), created=now - 600, duration=3.0,
        size=path.stat().st_size, conference="family"))


def test_live_view_shows_joins_talk_mute_and_kick(chromium, web, screenshots):
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                   has_touch=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())  # kick and end ask first
    log_in(page, web)
    expect(page.locator("#live")).to_have_attribute("data-live", "on")
    expect(page.locator("#no-conferences")).to_be_visible()
    expect(page.locator('.line-chip[data-line="gsm0"] .state')).to_have_text("In a call")

    # Grandma rings and joins: she appears at once, waiting.
    room = web.conferences.get_or_create("family")
    ring(web, A, "+15557654321")
    room.join(A, ParticipantOptions(label="grandma"))
    card = page.locator(f'.room[data-sid="{room.sid}"]')
    grandma = card.locator(f'.participant[data-call-sid="{A}"]')
    expect(grandma.locator(".caller")).to_have_text("+15557654321")
    expect(grandma.locator(".label")).to_have_text("grandma")
    expect(card.locator(".room-state")).to_have_text("Waiting")
    expect(page.locator("#no-conferences")).to_be_hidden()

    # Her son joins; the room starts; "joined … ago" ticks.
    ring(web, B, "+15551112222")
    room.join(B, ParticipantOptions())
    son = card.locator(f'.participant[data-call-sid="{B}"]')
    expect(son.locator(".caller")).to_have_text("+15551112222")
    expect(card.locator(".room-state")).to_have_text("Live")
    expect(card.locator(".room-count")).to_have_text("2 people")
    expect(grandma.locator(".since")).to_have_text("0 s")
    expect(grandma.locator(".since")).to_have_text("1 s")

    # She talks: her indicator lights and her meter rises; his stays dark.
    talk(room, A, 0.6)
    expect(grandma).to_have_attribute("data-talking", "true")
    expect(grandma.locator(".talking-badge")).to_be_visible()
    expect(son).to_have_attribute("data-talking", "false")
    assert int(grandma.locator(".meter").get_attribute("aria-valuenow")) > -40
    page.screenshot(path=screenshots / "live.png", full_page=True)

    # She stops: after the detector's hang time (0.4 s) the indicator goes out.
    for _ in range(round(0.6 / FMT.period)):
        room.mix({A: FMT.silence(), B: FMT.silence()})
    expect(grandma).to_have_attribute("data-talking", "false")

    # Mute him: the registry says muted, the badge shows, the button offers Unmute.
    son.get_by_role("button", name="Mute").click()
    expect(son.locator(".muted-badge")).to_be_visible()
    expect(son.get_by_role("button", name="Unmute")).to_be_visible()
    assert room.participant(B).muted is True

    # A third caller joins and hangs up before the owner presses Hold: the page says so.
    ring(web, C, "+15553334444")
    room.join(C, ParticipantOptions())
    third = card.locator(f'.participant[data-call-sid="{C}"]')
    expect(third).to_be_visible()
    # Gone without the page being told yet (a leave racing the click): no event published.
    room._participants.pop(C)
    third.get_by_role("button", name="Hold").click()
    expect(card.locator(".room-error")).to_have_text(
        "+15553334444 has already left the conference.")
    expect(third).to_have_count(0)  # the page asked the appliance and redrew the room

    # Kick him (confirmed): gone from the room and from the page.
    son.get_by_role("button", name="Kick").click()
    expect(son).to_have_count(0)
    assert [p.call_sid for p in room.participants] == [A]
    expect(card.locator(".room-count")).to_have_text("1 person")

    # Desktop: the same view, wide.
    wide = chromium.new_context(viewport=DESKTOP)
    desk = wide.new_page()
    desk.set_default_timeout(WAIT_MS)
    log_in(desk, web)
    ring(web, B, "+15551112222")
    room.join(B, ParticipantOptions())
    room.set_held(A, True)
    expect(desk.locator(f'.participant[data-call-sid="{A}"] .held-badge')).to_be_visible()
    expect(desk.locator(f'.participant[data-call-sid="{B}"] .caller')).to_have_text(
        "+15551112222")
    talk(room, B, 0.6)
    expect(desk.locator(f'.participant[data-call-sid="{B}"]')).to_have_attribute(
        "data-talking", "true")
    desk.screenshot(path=screenshots / "live-desktop.png", full_page=True)

    # End the conference (confirmed) from the phone: the room goes from both pages.
    card.get_by_role("button", name="End conference").click()
    expect(card).to_have_count(0)
    expect(desk.locator(".room")).to_have_count(0)
    assert web.conferences.active() == []

    # The other pages, at both sizes.
    fill_history(web)
    for view, suffix in ((page, ""), (desk, "-desktop")):
        view.goto(web.url + "/recordings")
        expect(view.locator(".recording")).to_have_count(1)
        seconds = view.locator("audio").evaluate(
            "a => new Promise((done, failed) => { a.onloadedmetadata = () => done(a.duration);"
            " a.onerror = () => failed(String(a.error && a.error.code)); a.load(); })")
        assert seconds == pytest.approx(3.0, abs=0.05)  # the browser plays what it is served
        view.screenshot(path=screenshots / f"recordings{suffix}.png", full_page=True)
        view.goto(web.url + "/calls")
        expect(view.locator("#calls tbody tr")).to_have_count(4)
        view.screenshot(path=screenshots / f"calls{suffix}.png", full_page=True)
    assert errors == []
    context.close()
    wide.close()
