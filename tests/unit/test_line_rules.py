"""A line's call rules chosen on the page override config.toml's voice_url at the next call:
the supervisor's ``_run_call`` with the interpreter replaced by a recorder of what it runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance import supervisor as supervisor_module
from appliance.config import parse_config
from appliance.supervisor import Supervisor
from appliance.web.rule_files import RuleFiles
from tests.harness import free_port

GOOD = "<Response><Say>Chosen on the page.</Say></Response>"


class RecordingInterpreter:
    """Stands in for the interpreter: notes the document each call would run."""

    runs: list[tuple[str, str, str]] = []

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        pass

    def run(self, url: str, method: str, fallback: str) -> None:
        self.runs.append((url, method, fallback))


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    (tmp_path / "config-rules.xml").write_text(GOOD)
    config = parse_config(
        f'[appliance]\ndata_dir = "var"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[[line]]\nname = "gsm0"\ndriver = "sim"\nnumber = "+15551230000"\n'
        'voice_url = "config-rules.xml"\nvoice_method = "GET"\nfallback_url = "sorry.xml"\n'
        '[[line]]\nname = "gsm1"\ndriver = "sim"\nnumber = "+15551230001"\n'
        'voice_url = "rooms"\n',
        path=tmp_path / "config.toml")
    monkeypatch.setattr(supervisor_module, "Interpreter", RecordingInterpreter)
    monkeypatch.setattr(supervisor_module, "LiveCallSession",
                        lambda *args, **kwargs: SimpleNamespace())
    RecordingInterpreter.runs = []
    sup = Supervisor(config)
    try:
        yield sup, tmp_path
    finally:
        if sup.web is not None:
            sup.web.stop()
        sup.store.close()


def call_on(sup: Supervisor, line: str) -> tuple[str, str, str]:
    sup._run_call(SimpleNamespace(line=line))  # type: ignore[arg-type]
    return RecordingInterpreter.runs[-1]


def test_without_a_choice_the_line_runs_config_tomls_voice_url(daemon):
    sup, folder = daemon
    url, method, fallback = call_on(sup, "gsm0")
    assert url == (folder / "config-rules.xml").as_uri() and method == "GET"
    assert fallback == (folder / "sorry.xml").as_uri()
    assert call_on(sup, "gsm1")[0].endswith("/voice/entry")


def test_a_chosen_rule_file_overrides_config_at_the_next_call(daemon):
    sup, folder = daemon
    files = RuleFiles.in_data_dir(sup.config.appliance.data_dir)
    files.save("mine.xml", GOOD, new=True)
    sup.store.settings.set("line_voice_urls", {"gsm0": "rule:mine.xml"})
    url, _method, fallback = call_on(sup, "gsm0")
    assert url == (folder / "var" / "rules" / "mine.xml").as_uri()
    assert fallback == (folder / "sorry.xml").as_uri(), "config's fallback still applies"
    sup.store.settings.set("line_voice_urls", {})
    assert call_on(sup, "gsm0")[0] == (folder / "config-rules.xml").as_uri()


def test_built_in_rooms_and_urls_can_be_chosen(daemon):
    sup, _folder = daemon
    sup.store.settings.set("line_voice_urls", {"gsm0": "rooms",
                                               "gsm1": "https://example.com/voice.xml"})
    assert call_on(sup, "gsm0")[:2] == (sup._room_entry_url(), "POST")
    assert call_on(sup, "gsm1")[0] == "https://example.com/voice.xml"


@pytest.mark.parametrize("stored", ["rule:../../etc/passwd.xml", "ftp://example.com/x.xml",
                                    "javascript:alert(1)"])
def test_a_tampered_choice_falls_back_to_config(daemon, stored, caplog):
    sup, folder = daemon
    sup.store.settings.set("line_voice_urls", {"gsm0": stored})
    assert call_on(sup, "gsm0")[0] == (folder / "config-rules.xml").as_uri()
    assert "is not valid; using config.toml's" in caplog.text


def test_a_chosen_file_that_vanished_is_still_what_the_line_runs(daemon, caplog):
    sup, folder = daemon
    sup.store.settings.set("line_voice_urls", {"gsm0": "rule:gone.xml"})
    assert call_on(sup, "gsm0")[0] == Path(folder / "var" / "rules" / "gone.xml").as_uri()
    assert "rule file gone.xml is missing" in caplog.text  # the caller hears the apology
