"""waitUrl rendering: audio files loop, TwiML documents of Play/Say/Pause/Redirect are rendered
and requested again after each pass, any other verb is Twilio's error 13238."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from twilio.twiml.voice_response import VoiceResponse

from appliance.audio.frames import AudioFormat
from appliance.audio.media import SpeechSynth
from appliance.audio.tones import tone
from appliance.twiml.fetch import Fetcher
from appliance.twiml.media_cache import MediaCache
from appliance.twiml.wait import (
    INVALID_WAIT_VERB,
    WaitAudio,
    WaitRenderer,
    WaitSource,
    WaitUrlError,
)

FMT = AudioFormat(16000, 20)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SpeechSynth:
    return SpeechSynth(tmp_path_factory.mktemp("tts"))


@pytest.fixture
def renderer(synth) -> WaitRenderer:
    fetcher = Fetcher("AC" + "0" * 32, "token")
    return WaitRenderer(fetcher, synth, MediaCache(fetcher, FMT.rate), FMT, dict)


def wav(path: Path, freq: float, ms: float) -> np.ndarray:
    samples = tone(freq, ms, FMT.rate)
    soundfile.write(path, samples, FMT.rate, subtype="PCM_16")
    return samples


def read(source, frames: int) -> np.ndarray:
    return np.concatenate([source.read_frame() for _ in range(frames)])


def next_sound(source: WaitSource, frames: int, timeout: float = 2.0) -> np.ndarray:
    """The next ``frames`` frames after the silence that stands in while a pass renders."""
    deadline = time.monotonic() + timeout
    while not (frame := source.read_frame()).any():
        assert time.monotonic() < deadline, "the next pass never arrived"
        time.sleep(0.005)
    return np.concatenate([frame, read(source, frames - 1)])


def test_an_audio_file_loops_without_asking_again(renderer, tmp_path):
    samples = wav(tmp_path / "music.wav", 440, 200)
    first = renderer.render((tmp_path / "music.wav").as_uri(), "POST")
    assert len(first.once) == 0 and np.array_equal(first.forever, samples)
    source = renderer.source_factory(first, "unused", "POST")()
    heard = read(source, 25)
    assert np.array_equal(heard[: len(samples)], samples)
    assert np.array_equal(heard[len(samples) : 2 * len(samples)], samples)


def test_a_document_plays_its_verbs_and_follows_redirects(renderer, tmp_path):
    beep = wav(tmp_path / "beep.wav", 600, 100)
    second = VoiceResponse()
    second.play("beep.wav", loop=2)
    (tmp_path / "second.xml").write_text(str(second))
    first = VoiceResponse()
    first.pause(length=1)
    first.redirect("second.xml")
    first.say("never reached")
    (tmp_path / "wait.xml").write_text(str(first))
    audio = renderer.render((tmp_path / "wait.xml").as_uri(), "POST")
    assert audio.forever is None
    assert np.array_equal(audio.once, np.concatenate([np.zeros(FMT.rate, np.int16), beep, beep]))


def test_play_forever_ends_the_pass_with_a_loop(renderer, tmp_path):
    beep = wav(tmp_path / "beep.wav", 600, 100)
    response = VoiceResponse()
    response.say("Please hold")
    response.play("beep.wav", loop=0)
    (tmp_path / "wait.xml").write_text(str(response))
    audio = renderer.render((tmp_path / "wait.xml").as_uri(), "POST")
    assert len(audio.once) > FMT.rate // 2
    assert np.array_equal(audio.forever, beep)


@pytest.mark.parametrize("verb", ["gather", "hangup", "dial", "reject"])
def test_other_verbs_are_error_13238(renderer, tmp_path, verb):
    response = VoiceResponse()
    response.say("hello")
    if verb == "dial":
        response.dial("+15551234567")
    else:
        getattr(response, verb)()
    (tmp_path / "wait.xml").write_text(str(response).replace("><", ">\n<"))
    with pytest.raises(WaitUrlError) as error:
        renderer.render((tmp_path / "wait.xml").as_uri(), "POST")
    assert error.value.code == INVALID_WAIT_VERB
    assert "(line 4)" in str(error.value)


def test_a_missing_wait_url_is_error_11200(renderer, tmp_path):
    with pytest.raises(WaitUrlError) as error:
        renderer.render((tmp_path / "missing.xml").as_uri(), "POST")
    assert error.value.code == 11200


def test_an_empty_document_is_a_second_of_silence(renderer, tmp_path):
    (tmp_path / "wait.xml").write_text("<Response/>")
    audio = renderer.render((tmp_path / "wait.xml").as_uri(), "POST")
    assert len(audio.once) == FMT.rate and not audio.once.any()


def test_the_source_asks_for_the_next_pass_when_one_ends_off_the_tick():
    first = WaitAudio(tone(440, 40, FMT.rate))
    second = WaitAudio(tone(880, 40, FMT.rate))
    asked = threading.Event()
    threads: list[str] = []

    def refresh() -> WaitAudio:
        threads.append(threading.current_thread().name)
        asked.set()
        return second

    source = WaitSource(first, FMT, refresh)
    assert np.array_equal(read(source, 2), first.once)
    assert asked.wait(2)
    assert np.array_equal(next_sound(source, 2), second.once)
    assert set(threads) == {"wait-audio"}


def test_a_failed_refresh_plays_the_last_pass_again():
    first = WaitAudio(tone(440, 40, FMT.rate))
    done = threading.Event()

    def refresh() -> WaitAudio:
        done.set()
        raise WaitUrlError(11200, "gone")

    source = WaitSource(first, FMT, refresh)
    read(source, 2)
    assert done.wait(2)
    assert np.array_equal(next_sound(source, 2), first.once)
