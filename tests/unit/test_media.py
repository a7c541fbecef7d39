import io

import numpy as np
import pytest
import soundfile

from appliance.audio import media
from appliance.audio.frames import AudioFormat
from appliance.audio.media import (
    BufferSource,
    MediaError,
    SequenceSource,
    SilenceSource,
    SpeechSynth,
    hold_music,
    load_audio,
)

FMT = AudioFormat(16000, 20)


def tone(frequency: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * frequency * t)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


def read_all(source) -> list[np.ndarray]:
    frames = []
    while (frame := source.read_frame()) is not None:
        frames.append(frame)
    return frames


# --- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_stereo_file_at_44k1_is_mixed_to_mono_and_resampled(tmp_path, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(path, tone(440, 1.0, 44100, channels=2), 44100, format=fmt)
    samples = load_audio(path, 16000)
    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert abs(len(samples) - 16000) <= 2
    assert abs(dominant_frequency(samples, 16000) - 440) < 3
    assert 15000 < np.abs(samples).max() < 17000  # 0.5 full scale survives


def test_bytes_decode_like_files():
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(1000, 0.5, 8000), 8000, format="WAV", subtype="PCM_16")
    samples = load_audio(buffer.getvalue(), 16000)
    assert abs(len(samples) - 8000) <= 2
    assert abs(dominant_frequency(samples, 16000) - 1000) < 3


def test_undecodable_input_is_a_media_error(tmp_path):
    with pytest.raises(MediaError, match="cannot decode"):
        load_audio(b"<html>not audio</html>", 16000)
    with pytest.raises(MediaError, match="no such file"):
        load_audio(tmp_path / "missing.wav", 16000)


# --- speech ---------------------------------------------------------------------------------


def test_espeak_speech_is_non_empty_at_16k_and_cached(tmp_path, monkeypatch):
    synth = SpeechSynth(tmp_path / "tts")
    speech = synth.synthesize("Welcome to the family conference line.", rate=16000)
    assert speech.dtype == np.int16
    assert 1.0 < len(speech) / 16000 < 6.0
    assert np.abs(speech).max() > 1000

    def no_espeak(*args, **kwargs):
        raise AssertionError("espeak-ng ran for a cached prompt")

    monkeypatch.setattr(media.subprocess, "run", no_espeak)
    again = synth.synthesize("Welcome to the family conference line.", rate=16000)
    assert again is speech  # from memory
    from_disk = SpeechSynth(tmp_path / "tts").synthesize(
        "Welcome to the family conference line.", rate=16000
    )
    assert np.array_equal(from_disk, speech)


def test_cache_key_includes_voice_and_rate(tmp_path):
    synth = SpeechSynth(tmp_path)
    narrow = synth.synthesize("one", rate=8000)
    wide = synth.synthesize("one", rate=16000)
    assert abs(len(wide) - 2 * len(narrow)) <= 4
    assert not np.array_equal(synth.synthesize("one", voice="woman", rate=8000), narrow)
    assert len(list(tmp_path.glob("*.npy"))) == 3


@pytest.mark.parametrize(
    ("voice", "language", "expected"),
    [
        ("man", "en-US", "en-us"),
        ("", "en-US", "en-us"),
        ("woman", "en-GB", "en-gb+f3"),
        ("alice", "en-US", "en-us+f3"),
        ("Polly.Joanna", "en-US", "en-us+f3"),
        ("Polly.Matthew", "en-US", "en-us"),
        ("man", "de-DE", "de"),
        ("man", "xx-YY", "en-us"),
    ],
)
def test_twilio_voices_map_loosely_to_espeak(tmp_path, voice, language, expected):
    assert SpeechSynth(tmp_path).espeak_voice(voice, language) == expected


def test_missing_espeak_is_a_media_error(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("espeak-ng")

    monkeypatch.setattr(media.subprocess, "run", missing)
    with pytest.raises(MediaError, match="espeak-ng is not installed"):
        SpeechSynth(tmp_path).synthesize("hello")


# --- hold music -----------------------------------------------------------------------------


def test_hold_music_loads_once_at_the_requested_rate():
    music = hold_music(16000)
    assert music.dtype == np.int16
    assert len(music) > 16000 * 10
    assert np.abs(music).max() > 1000
    assert hold_music(16000) is music
    assert not music.flags.writeable


def test_hold_music_falls_back_to_a_generated_tune(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(media, "MOH_DIR", tmp_path / "none")
    hold_music.cache_clear()
    try:
        music = hold_music(8000)
    finally:
        hold_music.cache_clear()
    assert len(music) > 8000
    assert np.abs(music).max() > 1000
    assert "generated tune" in caplog.text


# --- sources --------------------------------------------------------------------------------


def test_buffer_source_frames_exactly_and_zero_pads_the_end():
    samples = np.arange(1, 2 * FMT.samples + 101, dtype=np.int16)
    source = BufferSource(samples, FMT)
    frames = read_all(source)
    assert [len(frame) for frame in frames] == [FMT.samples] * 3
    assert np.array_equal(np.concatenate(frames)[: len(samples)], samples)
    assert not frames[-1][100:].any()
    assert source.done
    assert source.read_frame() is None


def test_buffer_source_is_done_after_its_last_frame():
    source = BufferSource(np.ones(2 * FMT.samples, dtype=np.int16), FMT)
    source.read_frame()
    assert not source.done
    source.read_frame()
    assert source.done


def test_buffer_source_loops_without_a_gap():
    samples = np.arange(1, 201, dtype=np.int16)
    frames = read_all(BufferSource(samples, FMT, loop=3))
    played = np.concatenate(frames)
    assert np.array_equal(played[:600], np.tile(samples, 3))
    assert len(frames) == 2


def test_buffer_source_loop_zero_plays_forever():
    source = BufferSource(np.ones(50, dtype=np.int16), FMT, loop=0)
    for _ in range(1000):
        frame = source.read_frame()
        assert frame is not None and frame.all()
    assert not source.done


def test_empty_buffer_is_done_at_once():
    source = BufferSource(np.zeros(0, dtype=np.int16), FMT, loop=0)
    assert source.done
    assert source.read_frame() is None


def test_silence_source_gives_its_frames():
    source = SilenceSource(3, FMT)
    frames = read_all(source)
    assert len(frames) == 3
    assert all(len(frame) == FMT.samples and not frame.any() for frame in frames)
    assert source.done


def test_sequence_source_plays_each_in_turn():
    first = BufferSource(np.full(FMT.samples, 7, dtype=np.int16), FMT)
    second = SilenceSource(2, FMT)
    third = BufferSource(np.full(10, 9, dtype=np.int16), FMT)
    source = SequenceSource([first, second, third])
    frames = read_all(source)
    assert len(frames) == 4
    assert frames[0].tolist() == [7] * FMT.samples
    assert not frames[1].any() and not frames[2].any()
    assert frames[3][:10].tolist() == [9] * 10
    assert source.done
