"""The owner's first visit in a real browser: set the password, watch a line change live over
SSE, rotate the API token, log out and back in. Screenshots at phone and desktop sizes."""

from __future__ import annotations

import re

import pytest

from appliance.web.passwords import hash_password
from appliance.web.settings import ADMIN_PASSWORD
from tests.browser.conftest import DESKTOP, PHONE
from tests.web_harness import running_web

PASSWORD = "grandma's kitchen radio"
WAIT_MS = 5000


@pytest.fixture
def web():
    with running_web(password=None) as harness:
        harness.lines.update({
            "gsm0": {"state": "idle", "detail": {"signal_dbm": -67, "operator": "Test Mobile",
                                                 "registration": "registered", "sim": "READY"}},
            "gsm1": {"state": "starting", "detail": {"sim": "READY"}},
        })
        yield harness


def publish_line(web, line: str, state: str, **detail) -> None:
    """What the call manager does when a driver reports: snapshot and bus both change."""
    web.lines[line] = {"state": state, "detail": detail}
    web.bus.publish("line.status", line=line, state=state, detail=detail)


def watch_for_errors(page) -> list[str]:
    """Console errors and page errors (a CSP violation shows up here); not the log lines of
    the refusals the test asks for (a wrong password is a 401)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_first_visit_live_status_settings_and_logout(chromium, web, screenshots):
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                   has_touch=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors = watch_for_errors(page)

    # First run: any page leads to setup; mismatched passwords get a clear error.
    page.goto(web.url + "/settings")
    expect(page).to_have_url(re.compile(r"/setup$"))
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    page.screenshot(path=screenshots / "setup.png", full_page=True)
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_label("Type it again").fill(PASSWORD + "!")
    page.get_by_role("button", name="Set password and continue").click()
    expect(page.locator("#setup-error")).to_contain_text("The two passwords differ")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_label("Type it again").fill(PASSWORD)
    page.get_by_role("button", name="Set password and continue").click()
    assert web.settings.get(ADMIN_PASSWORD).startswith("scrypt$")

    # The status page, live.
    expect(page).to_have_url(web.url + "/")
    expect(page.get_by_role("status").filter(has_text="The admin password is set")).to_be_visible()
    live = page.locator("#live")
    expect(live).to_have_attribute("data-live", "on")
    expect(live).to_have_text("Live")
    gsm0, gsm1 = page.locator('[data-line="gsm0"]'), page.locator('[data-line="gsm1"]')
    expect(gsm0.locator(".state")).to_have_text("Ready")
    expect(gsm0.locator('[data-field="operator"] dd')).to_have_text("Test Mobile")
    expect(gsm0.locator(".bars")).to_have_attribute("data-bars", "4")
    expect(gsm1.locator(".state")).to_have_text("Starting")

    publish_line(web, "gsm1", "idle", signal_dbm=-91, operator="Other Net", sim="READY")
    expect(gsm1.locator(".state")).to_have_text("Ready")
    expect(gsm1.locator('[data-field="signal_dbm"] dd')).to_have_text("-91 dBm")
    publish_line(web, "gsm0", "ringing", signal_dbm=-67, operator="Test Mobile",
                 caller_id="+15557654321")
    expect(gsm0.locator(".state")).to_have_text("Ringing")
    expect(gsm0.locator('[data-field="caller_id"] dd')).to_have_text("+15557654321")
    publish_line(web, "fxo0", "down", error="no modem on /dev/ttyACM0")
    fxo0 = page.locator('[data-line="fxo0"]')
    expect(fxo0.locator(".state")).to_have_text("Down")
    expect(page.locator(".line")).to_have_count(3)
    assert page.locator(".line").evaluate_all("cards => cards.map(c => c.dataset.line)") == [
        "fxo0", "gsm0", "gsm1"]
    page.wait_for_timeout(1300)  # let the change highlight fade before the picture
    page.screenshot(path=screenshots / "status.png", full_page=True)

    # Settings: rename, rotate the token (confirmed), see it once.
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    page.get_by_label("Name").fill("Family line")
    page.get_by_role("button", name="Save name").click()
    expect(page.locator(".brand")).to_have_text("Family line")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Make a new auth token").click()
    token = web.credentials.current().auth_token
    expect(page.locator("#new-token")).to_have_value(token)
    page.screenshot(path=screenshots / "settings.png", full_page=True)
    page.reload()
    expect(page.locator("#masked-token")).to_have_text(re.compile("•+" + token[-4:] + "$"))

    # Log out, then back in (a wrong password first).
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login\?bye=1$"))
    expect(page.get_by_text("You have logged out.")).to_be_visible()
    page.goto(web.url + "/settings")
    expect(page).to_have_url(re.compile(r"/login\?next=/settings$"))
    page.get_by_label("Admin password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong password. Try again.")
    page.screenshot(path=screenshots / "login.png", full_page=True)
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(web.url + "/settings")

    # The same pages on a desktop screen.
    desktop = chromium.new_context(viewport=DESKTOP, storage_state=context.storage_state())
    wide = desktop.new_page()
    wide.set_default_timeout(WAIT_MS)
    errors += watch_for_errors(wide)
    wide.goto(web.url + "/")
    expect(wide.locator("#live")).to_have_attribute("data-live", "on")
    wide.screenshot(path=screenshots / "status-desktop.png")
    wide.goto(web.url + "/settings")
    wide.screenshot(path=screenshots / "settings-desktop.png", full_page=True)
    desktop.close()
    context.close()
    assert errors == []


def test_status_page_goes_to_login_when_the_session_ends(chromium, web):
    from playwright.sync_api import expect

    web.settings.set(ADMIN_PASSWORD, hash_password(PASSWORD))
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(web.url + "/")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live")).to_have_attribute("data-live", "on")
    web.clock.advance(web.app.ctx.options.idle_timeout + 1)  # the stream ends; 401 on retry
    expect(page).to_have_url(re.compile(r"/login"), timeout=10000)
    context.close()
