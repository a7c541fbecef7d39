"""A modem that vanishes mid-call, on every driver family besides SIMCom (SIMCom's own case is in
test_errors_and_shutdown.py), and a modem that answers garbage or nothing.

Each line's emulator sits behind real ptys reached through by-id style symlinks, as udev names
real modems (the SIM800's sound card through links to its FIFOs, as an ALSA card keeps its
name); unplugging removes the links, then closes the ptys. The call on that line must end
cleanly (the others hear the leave beep and go on talking), the line is reopened with backoff
once a new device appears behind the same names and answers a new call, and the other lines'
calls never notice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from appliance.audio.media import SpeechSynth
from appliance.sim.models import EmulatedLine, make_emulator
from appliance.sim.soundcard import install_alsa_config
from tests.audio_checks import beep_times, fraction_heard
from tests.e2e.callers import conference, wait_clock, wait_for
from tests.harness import SPEED, Daemon, free_port, spawn

pytestmark = pytest.mark.e2e
RATE = 8000
SENTENCE = "The rest of us are still here and can hear each other."
AFTER = "Hello again, I am back on the line."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory):
    synth = SpeechSynth(tmp_path_factory.mktemp("tts"))

    def say(text: str) -> np.ndarray:
        samples = synth.synthesize(text, "", "en-US", RATE)
        loud = np.flatnonzero(np.abs(samples) > 100)
        return samples[loud[0]: loud[-1] + 1]

    return say


class Bench:
    """Emulated lines of one family behind stable by-id names, and the daemon using them."""

    def __init__(self, workdir: Path, model: str) -> None:
        self.workdir = workdir
        self.model = model
        self.links = workdir / "serial"
        self.links.mkdir(exist_ok=True)
        self.lines: dict[str, EmulatedLine] = {}
        self.daemon: Daemon | None = None

    def plug(self, name: str, index: int, **options) -> EmulatedLine:
        """A new device for line ``name``, started, behind the line's by-id names."""
        emulated = make_emulator(self.model, name=name, number=f"+1555123000{index}",
                                 speed=SPEED, **options)
        emulated.modem.start()
        self.lines[name] = emulated
        if self.daemon is not None:
            self.daemon.modems[name] = emulated.modem
        self._link(name, "control", emulated.control)
        if emulated.audio is not None and emulated.audio.startswith("serial:"):
            self._link(name, "audio", emulated.audio.removeprefix("serial:"))
        elif emulated.audio is not None:  # the SIM800's sound card: its two FIFOs
            card = emulated.modem._card
            self._link(name, "capture", str(card.capture_path))
            self._link(name, "playback", str(card.playback_path))
        return emulated

    def _link(self, name: str, role: str, target: str) -> None:
        (self.links / f"{name}-{role}").symlink_to(target)

    def keys(self, name: str) -> str:
        """The line's driver/control/audio keys, through the by-id names."""
        emulated = self.lines[name]
        keys = (f'driver = "{emulated.driver}"\n'
                f'control = "{self.links / (name + "-control")}"\n')
        if emulated.audio is None:
            return keys
        if emulated.audio.startswith("serial:"):
            return keys + f'audio = "serial:{self.links / (name + "-audio")}"\n'
        device = (f'appliance_sim:CAPTURE="{self.links / (name + "-capture")}",'
                  f'PLAYBACK="{self.links / (name + "-playback")}"')
        return keys + f"audio = {json.dumps('alsa:' + device)}\n"

    def start(self, rules: str, ready: tuple[str, ...], extra: str = "") -> Daemon:
        (self.workdir / "rules.xml").write_text(rules)
        tables = [f'[[line]]\nname = "{name}"\n{self.keys(name)}'
                  f'number = "{line.modem.number}"\nvoice_url = "rules.xml"\n'
                  for name, line in self.lines.items()]
        config = self.workdir / "config.toml"
        config.write_text('[appliance]\nname = "vanish"\ndata_dir = "var"\n\n'
                          f'[web]\nlisten = "127.0.0.1:{free_port()}"\n\n'
                          f"[sim]\nspeed = {SPEED}\n\n{extra}\n" + "\n".join(tables))
        self.daemon = spawn(config, {n: line.modem for n, line in self.lines.items()}, ready)
        return self.daemon

    def unplug(self, name: str) -> None:
        """The device goes: its names first (udev), then its ptys and FIFOs."""
        for link in self.links.glob(f"{name}-*"):
            link.unlink()
        self.lines[name].modem.stop()

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.close()
        for line in self.lines.values():
            line.modem.stop()


@pytest.fixture
def bench(tmp_path: Path, monkeypatch) -> Iterator:
    monkeypatch.setenv("ALSA_CONFIG_PATH", install_alsa_config(tmp_path))  # the daemon's
    made: list[Bench] = []

    def make(model: str) -> Bench:
        made.append(Bench(tmp_path, model))
        return made[-1]

    yield make
    for item in made:
        item.close()


def answered(modem) -> None:
    assert modem.wait_state("active", 30), f"{modem.name} was not answered"
    assert modem.wait_audio(30), f"{modem.name} has no audio"


@pytest.mark.parametrize("model", ["quectel", "huawei", "sim800", "v253-usr"])
def test_a_modem_vanishing_mid_call_ends_that_call_and_returns_while_the_others_talk_on(
    model: str, bench, speech
) -> None:
    setup = bench(model)
    for index, name in enumerate(("gone", "stays", "hears")):
        setup.plug(name, index)
    daemon = setup.start(conference("room", wait_url="", jitter_buffer_size="small"),
                         ready=("gone", "stays", "hears"))
    gone, stays, hears = (setup.lines[n].modem for n in ("gone", "stays", "hears"))
    for index, modem in enumerate((gone, stays, hears)):
        modem.ring(f"+1555000200{index}")
        answered(modem)
        daemon.wait_log(rf"line {modem.name}: call CA\w+ answered")
    for _ in range(3):
        daemon.wait_log(r"joined conference room")
    sid = daemon.wait_log(r"line gone: call (CA\w+) from").group(1)
    wait_clock(stays, stays.sample_clock + RATE)
    # The gaps the others hear in a stretch as long as the unplug's, before it: this machine's
    # own noise floor (a loaded CI box stalls the emulators now and then).
    calm = {m.name: m.stats()["underruns"] for m in (stays, hears)}
    wait_clock(stays, stays.sample_clock + 3 * RATE)
    calm = {m.name: m.stats()["underruns"] - calm[m.name] for m in (stays, hears)}
    before = {m.name: m.stats() for m in (stays, hears)}
    mark, beep_mark = len(daemon.log_lines), stays.sample_clock

    setup.unplug("gone")
    # "failed" when the voice channel notices first (the SIM800's sound card), else device-lost.
    daemon.wait_log(rf"line gone: call {sid} ended \((device-lost|failed)\)", start=mark)
    daemon.wait_log(rf"{sid} left conference room", start=mark)
    daemon.wait_log(r"line gone: gone: modem lost: .*; retrying in 1 s", start=mark)
    wait_clock(stays, beep_mark + 3 * RATE)
    for modem in (stays, hears):
        gaps = modem.stats()["underruns"] - before[modem.name]["underruns"]
        assert gaps <= 2 * calm[modem.name] + 4, \
            f"{modem.name} heard {gaps} gaps as the other modem vanished ({calm} before)"
    wait_for(lambda: beep_times(stays.heard()[beep_mark:], RATE, 880, 660), timeout=30,
             what="the leave beep at the line that stays", every=0.5)

    # The conference goes on: one who stayed talks, the other hears every word.
    words = speech(SENTENCE)
    mark_hears = hears.sample_clock
    start = stays.play(words)
    wait_clock(stays, start + len(words) + RATE // 2)
    wait_clock(hears, hears.sample_clock + RATE // 2)
    share = fraction_heard(hears.heard()[mark_hears:], words, RATE)
    assert share > 0.9, (f"after the unplug {share:.0%} of the sentence got through; "
                         f"{stays.stats()} {hears.stats()} {daemon.state()['ports']}")
    daemon.wait_log(r"line gone: gone: cannot open .*gone-control.*; retrying in 2 s",
                    start=mark, timeout=15)

    # The other lines never noticed: same calls, no restart, no gap in their audio.
    assert stays.state == hears.state == "active"
    state = daemon.state()
    assert len(state["calls"]) == 2 and sid not in state["calls"]
    assert not [line for line in daemon.log_lines[mark:]
                if ("line stays:" in line and ("retrying" in line or "ended" in line))
                or ("line hears:" in line and ("retrying" in line or "ended" in line))]

    # Plugged back in: a new device behind the same names; the retry takes it.
    mark = len(daemon.log_lines)
    back = setup.plug("gone", 0).modem
    daemon.wait_log(r"line gone: ready", start=mark, timeout=20)
    back.ring("+15550003333")
    answered(back)
    daemon.wait_log(r"joined conference room", start=mark)
    wait_clock(back, back.sample_clock + RATE)
    again = speech(AFTER)
    mark_back = back.sample_clock
    start = stays.play(again)
    wait_clock(stays, start + len(again) + RATE // 2)
    wait_clock(back, back.sample_clock + RATE // 2)
    share = fraction_heard(back.heard()[mark_back:], again, RATE)
    assert share > 0.9, f"the returned line heard {share:.0%} of the room"
    assert not [line for line in daemon.log_lines if "Traceback" in line]
    assert daemon.stop() == 0


def _status_via_web(daemon: Daemon) -> dict:
    """Each line's state and detail as the web page shows them (first run: set a password)."""
    config = (daemon.workdir / "config.toml").read_text()
    port = int(config.split('listen = "127.0.0.1:')[1].split('"')[0])
    base = f"http://127.0.0.1:{port}"
    client = requests.Session()
    client.headers["Accept"] = "text/html"
    page = client.get(base + "/setup", timeout=10)
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    password = "a long enough test password"
    reply = client.post(base + "/setup", timeout=10, data={
        "password": password, "confirm": password, "csrf_token": token})
    assert reply.ok, reply.text
    client.headers["Accept"] = "application/json"
    status = client.get(base + "/api/status", timeout=10)
    assert status.ok, status.text
    return status.json()["lines"]


@pytest.mark.parametrize("fault", ["garbage", "silent"])
def test_a_modem_answering_garbage_or_nothing_is_a_line_status_not_fatal(fault: str, bench,
                                                                          speech) -> None:
    setup = bench("quectel")
    setup.plug("broken", 0, **{fault: True})
    setup.plug("works", 1)
    daemon = setup.start(conference("room", wait_url=""), ready=("works",))
    daemon.wait_log(r"line broken: broken: no OK to AT after \d+ attempts; is .*broken-control "
                    r"the EC25's AT port, and is it powered\?; retrying in 1 s", timeout=30)

    lines = _status_via_web(daemon)
    assert lines["broken"]["state"] == "down", lines
    assert "no OK to AT" in lines["broken"]["detail"]["error"], lines
    assert lines["works"]["state"] == "idle", lines

    works = setup.lines["works"].modem
    works.ring("+15550004444")
    answered(works)
    daemon.wait_log(r"joined conference room")
    assert daemon.process.poll() is None, "the daemon died"
    assert os.path.exists(setup.links / "broken-control")
    daemon.wait_log(r"line broken: .*retrying in 2 s", timeout=30)
    assert daemon.stop() == 0
