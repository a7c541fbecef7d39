"""A line pointed at a rule file on the page: the caller hears that document, not config.toml's.

The choice is written the way the page writes it (the rule file checked and kept by the page's
library in ``data_dir/rules``, the line's choice in the store's settings) before the daemon
starts, since only one process may write the store.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.media import load_audio
from appliance.sim.simcom import SimcomModem
from appliance.store import Store
from appliance.web.rule_files import RuleFiles
from tests.audio_checks import fraction_heard
from tests.harness import SPEED, spawn, write_config

pytestmark = pytest.mark.e2e
RATE = 8000  # what the modem carries
FROM_PAGE = "This greeting comes from the rule file chosen on the web page."
FROM_CONFIG = "Configuration file speaking, please hold."


def espeak(text: str, wav: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
    return load_audio(wav, RATE)


def test_a_rule_file_chosen_for_the_line_is_what_the_caller_hears(tmp_path):
    (tmp_path / "config.xml").write_text(f"<Response><Say>{FROM_CONFIG}</Say></Response>")
    modem = SimcomModem(name="gsm0", number="+15551230000", speed=SPEED)
    modem.start()
    config = write_config(tmp_path, {"gsm0": modem}, "config.xml", SPEED)
    data_dir = tmp_path / "var"
    warnings = RuleFiles.in_data_dir(data_dir).save(
        "greeting.xml", f"<Response>\n  <Say>{FROM_PAGE}</Say>\n  <Hangup/>\n</Response>\n",
        new=True)
    assert warnings == []
    store = Store.in_data_dir(data_dir)
    store.settings.set("line_voice_urls", {"gsm0": "rule:greeting.xml"})
    store.close()

    daemon = spawn(config, {"gsm0": modem}, ["gsm0"])
    try:
        modem.ring("+15557654321")
        assert modem.wait_audio(20)
        assert modem.wait_state("idle", 40), "the rule file ends the call with <Hangup>"
        heard = modem.heard()
        page = fraction_heard(heard, espeak(FROM_PAGE, tmp_path / "page.wav"), RATE)
        assert page > 0.9, f"the caller heard {page:.0%} of the rule file's speech"
        configured = fraction_heard(heard, espeak(FROM_CONFIG, tmp_path / "config.wav"), RATE)
        assert configured < 0.3, "config.toml's voice_url ran instead"
        daemon.wait_log(r"line gsm0: running file:.*/var/rules/greeting\.xml "
                        r"\(chosen on the web page\)")
        assert daemon.stop() == 0
    finally:
        daemon.close()
