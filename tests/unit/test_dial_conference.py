"""<Dial><Conference> in the interpreter: what follows a refused or failed join, and the URLs
it hands to the calls layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.frames import AudioFormat
from appliance.audio.media import MediaSource, SpeechSynth
from appliance.twiml.fetch import Fetcher
from appliance.twiml.interpreter import Interpreter
from appliance.twiml.media_cache import MediaCache
from appliance.twiml.verbs import Conference
from appliance.twiml.verbs import Dial as DialVerb

FMT = AudioFormat(16000, 20)


@dataclass
class Session:
    """Joins answer ``status``; plays are only counted."""

    status: str
    sid: str = "CA" + "e" * 32
    nouns: list[Conference] = field(default_factory=list)
    played: int = 0
    ended: bool = False

    def params(self) -> dict[str, str]:
        return {"CallSid": self.sid}

    def play(self, source: MediaSource) -> bool:
        self.played += 1
        return True

    def hangup(self) -> None:
        self.ended = True

    def join_conference(self, noun: Conference, dial: DialVerb,
                        wait_audio: Callable[[], MediaSource | None] | None) -> str:
        self.nouns.append(noun)
        return self.status


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SpeechSynth:
    return SpeechSynth(tmp_path_factory.mktemp("tts"))


def run(synth: SpeechSynth, folder: Path, status: str) -> Session:
    after = VoiceResponse()
    after.pause(length=1)
    (folder / "after.xml").write_text(str(after))
    response = VoiceResponse()
    dial = Dial(action="after.xml")
    dial.conference("room", status_callback="events", recording_status_callback="../rec",
                    event_callback_url="https://example.com/end", wait_url="")
    response.append(dial)
    response.pause(length=1)
    response.pause(length=1)
    (folder / "rules.xml").write_text(str(response))
    session = Session(status)
    fetcher = Fetcher("AC" + "0" * 32, "token")
    Interpreter(session, fetcher, synth, FMT, MediaCache(fetcher, FMT.rate)).run(
        (folder / "rules.xml").as_uri())
    return session


def test_a_refused_join_goes_on_with_the_next_verb_without_the_action(synth, tmp_path):
    assert run(synth, tmp_path, "refused").played == 2


@pytest.mark.parametrize("status", ["failed", "completed"])
def test_a_failed_or_completed_dial_continues_at_its_action(synth, tmp_path, status):
    assert run(synth, tmp_path, status).played == 1


def test_callback_urls_reach_the_calls_layer_resolved_against_the_document(synth, tmp_path):
    (noun,) = run(synth, tmp_path, "completed").nouns
    assert noun.status_callback == (tmp_path / "events").as_uri()
    assert noun.recording_status_callback == (tmp_path.parent / "rec").as_uri()
    assert noun.event_callback_url == "https://example.com/end"
    assert noun.wait_url == ""
