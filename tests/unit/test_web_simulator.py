"""The simulator page over HTTP, on real emulated SIM7600s through a real ``SimControl``: ring,
keys, a spoken sentence and hang-up reach the modem as a line driver sees them; bad input and
forged forms are refused; an appliance without simulated lines has no such page at all."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import serial
import soundfile

from appliance.audio.media import SpeechSynth
from appliance.events import EventBus
from appliance.sim.simcom import SimcomModem
from appliance.web import MemoryApiCredentials, MemorySettings, WebServer, create_app
from appliance.web.passwords import hash_password
from appliance.web.settings import ADMIN_PASSWORD
from appliance.web.simulator_page import SAMPLES, ControlSimulator
from tests.audio_checks import fraction_heard
from tests.web_harness import FakeClock, WebHarness, csrf_in, running_web

RATE = 8000
FRAME_BYTES = 320  # 20 ms of 8 kHz s16le, as the emulator's voice port carries it


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> SpeechSynth:  # type: ignore[no-untyped-def]
    return SpeechSynth(tmp_path_factory.mktemp("tts"))


@pytest.fixture
def modems() -> Iterator[dict[str, SimcomModem]]:
    started = {}
    for index in range(2):
        modem = SimcomModem(name=f"gsm{index}", number=f"+1555123000{index}", speed=8.0)
        modem.start()
        started[modem.name] = modem
    yield started
    for modem in started.values():
        modem.stop()


@pytest.fixture
def web(modems, synth, tmp_path) -> Iterator[WebHarness]:
    settings = MemorySettings()
    settings.set(ADMIN_PASSWORD, hash_password("correct horse battery"))
    bus, clock = EventBus(), FakeClock()
    credentials = MemoryApiCredentials("AC" + "0" * 32, "f" * 32)
    simulator = ControlSimulator(modems, synth, tmp_path / "samples")
    app = create_app(settings, bus, credentials=credentials, default_name="Demo line",
                     clock=clock, simulator=simulator)
    server = WebServer(app, "127.0.0.1", 0, threads=4)
    server.start()
    try:
        yield WebHarness(app, server, bus, settings, credentials, clock)
    finally:
        server.stop()


@pytest.fixture
def client(web) -> requests.Session:
    return web.login()


def post(web: WebHarness, client: requests.Session, path: str, **fields: str) -> str:
    """Submit a simulator form as the page does; the page it lands on (after the redirect)."""
    token = web.form_token(client, "/simulator")
    reply = client.post(web.url + path, data={"csrf_token": token, **fields},
                        allow_redirects=False)
    assert reply.status_code == 303, reply.text
    assert reply.headers["Location"].endswith("/simulator")
    page = client.get(web.url + "/simulator")
    page.raise_for_status()
    return page.text


def flash(html: str) -> tuple[str, str]:
    match = re.search(r'class="flash flash-(\w+)" role="status">([^<]*)<', html)
    assert match, "the page shows no message"
    return match.group(1), match.group(2)


def card(html: str, line: str) -> str:
    match = re.search(rf'<article class="card line sim-line" data-line="{line}".*?</article>',
                      html, re.S)
    assert match, f"no card for {line}"
    return match.group(0)


def answer(modem: SimcomModem) -> serial.Serial:
    """What the line driver does: answer, turn on PCM voice; the control port stays open."""
    control = serial.Serial(modem.control_path, 115200, timeout=5)
    control.write(b"ATE0\r")
    control.read_until(b"OK\r\n")
    control.write(b"ATA\r")
    assert b"VOICE CALL: BEGIN" in control.read_until(b"OK\r\n")
    control.write(b"AT+CPCMREG=1\r")
    assert control.read_until(b"OK\r\n").endswith(b"OK\r\n")
    assert modem.wait_audio(5)
    return control


def test_the_page_shows_each_simulated_line_its_state_and_the_forms_it_offers(web, client):
    page = client.get(web.url + "/simulator")
    assert page.status_code == 200
    gsm0 = card(page.text, "gsm0")
    assert 'data-state="idle"' in gsm0 and ">Idle<" in gsm0 and "+15551230000" in gsm0
    ring_form = re.search(r'<form[^>]*action="/simulator/gsm0/ring"[^>]*>', gsm0).group(0)
    keys_form = re.search(r'<form[^>]*action="/simulator/gsm0/press"[^>]*>', gsm0).group(0)
    assert " hidden" not in ring_form and " hidden" in keys_form
    assert gsm0.count('name="csrf_token"') == 4
    assert "gsm1" in page.text
    for sentence in SAMPLES.values():
        assert sentence in page.text
    # Every page of this appliance links to it.
    settings = client.get(web.url + "/settings").text
    assert 'href="/simulator"' in settings


def test_ring_keys_a_sentence_and_hang_up_reach_the_modem_as_a_driver_sees_them(
        web, client, modems, tmp_path):
    gsm0 = modems["gsm0"]
    html = post(web, client, "/simulator/gsm0/ring", caller_id="+15557654321", name="Grandma")
    assert flash(html) == ("ok", "gsm0: ringing from +15557654321.")
    assert gsm0.state == "ringing" and gsm0.caller_id == "+15557654321"
    assert 'data-state="ringing"' in card(html, "gsm0")
    status = client.get(web.url + "/simulator/status").json()
    [line] = [line for line in status["lines"] if line["name"] == "gsm0"]
    assert line["state"] == "ringing" and line["caller_id"] == "+15557654321"

    control = answer(gsm0)
    audio = serial.Serial(gsm0.audio_path, 115200, timeout=5)
    try:
        html = post(web, client, "/simulator/gsm0/press", keys="1234#")
        assert flash(html) == ("ok", "gsm0: pressed 1234#.")
        reported = control.read_until(b"+RXDTMF: #\r\n").decode()
        assert re.findall(r"\+RXDTMF: (.)", reported) == list("1234#")

        audio.reset_input_buffer()
        html = post(web, client, "/simulator/gsm0/play", sample="hello")
        assert flash(html)[0] == "ok"
        sentence, rate = soundfile.read(tmp_path / "samples" / "sample-hello.wav",
                                        dtype="int16")
        assert rate == RATE and len(sentence) > RATE  # espeak-ng said it, once, at 8 kHz
        said = np.frombuffer(audio.read(len(sentence) * 2 + 4 * RATE), dtype="<i2")
        # other speech scores near 0; a busy machine may cost a frame or two of the pty's
        assert fraction_heard(said, sentence, RATE) > 0.75, "the appliance hears the sentence"

        html = post(web, client, "/simulator/gsm0/hangup")
        assert flash(html) == ("ok", "gsm0: the caller hung up.")
        assert gsm0.wait_state("idle", 2)
        assert b"NO CARRIER" in control.read_until(b"NO CARRIER\r\n")
        assert 'data-state="idle"' in card(html, "gsm0")
    finally:
        audio.close()
        control.close()
    assert modems["gsm1"].state == "idle"


def test_the_sample_is_rendered_once_and_reused(web, client, modems, tmp_path):
    modems["gsm0"].ring("+15550001111")
    answer(modems["gsm0"]).close()
    post(web, client, "/simulator/gsm0/play", sample="bye")
    wav = tmp_path / "samples" / "sample-bye.wav"
    first = wav.stat().st_mtime_ns
    time.sleep(0.01)
    assert flash(post(web, client, "/simulator/gsm0/play", sample="bye"))[0] == "ok"
    assert wav.stat().st_mtime_ns == first


@pytest.mark.parametrize(("path", "fields", "message"), [
    ("/simulator/gsm0/ring", {"caller_id": "+1 555; rm -rf"}, "a caller ID is digits"),
    ("/simulator/gsm0/ring", {"caller_id": "+1555", "name": "x" * 41}, "at most 40"),
    ("/simulator/gsm0/press", {"keys": "12x"}, "keys are 1 to 32"),
    ("/simulator/gsm0/press", {"keys": "1"}, "no call in progress"),
    ("/simulator/gsm0/play", {"sample": "../../etc/passwd"}, "choose one of the sentences"),
    ("/simulator/gsm0/play", {"sample": "hello"}, "no call in progress"),
    ("/simulator/gsm0/hangup", {}, "no call to hang up"),
])
def test_bad_input_and_impossible_actions_are_explained_and_change_nothing(
        web, client, modems, path, fields, message):
    kind, text = flash(post(web, client, path, **fields))
    assert kind == "error" and text.startswith("gsm0: ") and message in text
    assert modems["gsm0"].state == "idle"


def test_ringing_a_line_already_ringing_is_refused(web, client, modems):
    post(web, client, "/simulator/gsm1/ring", caller_id="+15550001111")
    kind, text = flash(post(web, client, "/simulator/gsm1/ring", caller_id="+15550002222"))
    assert kind == "error" and "busy" in text
    assert modems["gsm1"].caller_id == "+15550001111"


def test_an_unknown_line_is_not_found(web, client):
    token = web.form_token(client, "/simulator")
    reply = client.post(web.url + "/simulator/gsm9/ring",
                        data={"csrf_token": token, "caller_id": "+1555"}, allow_redirects=False)
    assert reply.status_code == 404


def test_forms_without_the_session_or_its_csrf_token_are_refused(web, client, modems):
    reply = client.post(web.url + "/simulator/gsm0/ring", data={"caller_id": "+1555"},
                        allow_redirects=False)
    assert reply.status_code == 403
    reply = client.post(web.url + "/simulator/gsm0/ring",
                        data={"caller_id": "+1555", "csrf_token": "forged"},
                        allow_redirects=False)
    assert reply.status_code == 403
    stranger = web.browser()
    for path in ("/simulator", "/simulator/status"):
        assert stranger.get(web.url + path, allow_redirects=False).status_code in (302, 303, 401)
    token = csrf_in(client.get(web.url + "/simulator").text)
    reply = stranger.post(web.url + "/simulator/gsm0/ring",
                          data={"caller_id": "+1555", "csrf_token": token},
                          allow_redirects=False)
    assert reply.status_code in (302, 303, 401, 403)
    assert modems["gsm0"].state == "idle"


def test_an_appliance_without_simulated_lines_has_no_simulator_page():
    with running_web() as web:
        client = web.login()
        assert client.get(web.url + "/simulator").status_code == 404
        assert client.get(web.url + "/simulator/status").status_code == 404
        token = web.form_token(client, "/settings")
        reply = client.post(web.url + "/simulator/gsm0/ring",
                            data={"csrf_token": token, "caller_id": "+1555"},
                            allow_redirects=False)
        assert reply.status_code in (403, 404, 405)
        assert 'href="/simulator"' not in client.get(web.url + "/settings").text
        assert not any(route.rule.startswith("/simulator") for route in web.app.bottle.routes)


def test_the_page_reports_a_line_that_has_not_started(tmp_path, synth):
    simulator = ControlSimulator({}, synth, tmp_path)
    assert simulator.status() == {}
    assert not Path(tmp_path / "sample-hello.wav").exists()
