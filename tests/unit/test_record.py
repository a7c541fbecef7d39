"""<Record> in the calls layer: a take of the caller's voice fed frame by frame as the tick
does, its stop conditions on the call's audio clock, trimming, the files and the callbacks."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from appliance.audio.frames import AudioFormat
from appliance.audio.tones import DTMF_FREQS, dtmf, goertzel_power, tone
from appliance.calls.call import Call
from appliance.calls.call_recordings import CallRecordings
from appliance.calls.caller_recording import (
    KEY_HOLDBACK_SECONDS,
    CallerRecording,
    SessionRecording,
)
from appliance.calls.recording import Recorder, RecordingResult, RecordingStore
from appliance.twiml.record import RecordOutcome, RecordRequest, StatusCallback

FMT = AudioFormat(16000, 20)
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
SILENCE = FMT.silence()


def frames(samples: np.ndarray) -> list[np.ndarray]:
    padded = np.concatenate([samples, np.zeros(-len(samples) % FMT.samples, np.int16)])
    return list(padded.reshape(-1, FMT.samples))


def voice(seconds: float) -> np.ndarray:
    """Something the caller says: a warbling tone, loud enough to be heard."""
    t = np.arange(int(seconds * FMT.rate)) / FMT.rate
    return (8000 * np.sin(2 * np.pi * (300 + 80 * np.sin(2 * np.pi * 3 * t)) * t)).astype(np.int16)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * FMT.rate), np.int16)


class Hooks:
    """A WebhookSender stand-in that keeps what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.changed = threading.Event()

    def send(self, url: str, method: str, params: dict[str, str]) -> None:
        self.sent.append((url, method, dict(params)))
        self.changed.set()


@pytest.fixture
def store(tmp_path: Path) -> RecordingStore:
    return RecordingStore(tmp_path / "recordings", "http://appliance.local")


def take(store: RecordingStore, max_seconds: float = 60, silence_seconds: float = 0,
         trim: bool = False) -> CallerRecording:
    recorder = Recorder(store, FMT, trim, lambda result: None)
    recorder.start()
    return CallerRecording(recorder, FMT.rate, max_seconds, silence_seconds)


def feed(recording: CallerRecording, samples: np.ndarray) -> int:
    """Feed ``samples`` frame by frame until the take ends; the frames taken."""
    fed = 0
    for frame in frames(samples):
        if recording.finished.is_set():
            break
        recording.feed(frame, SILENCE)
        fed += 1
    return fed


def file_of(recording: CallerRecording) -> np.ndarray:
    result = recording.recorder.wait(10)
    assert result is not None and result.status == "completed"
    return soundfile.read(result.path, dtype="int16")[0]


# --- the take's stop conditions --------------------------------------------------------------


def test_silence_timeout_counts_the_calls_audio_not_wall_time(store):
    recording = take(store, silence_seconds=2)
    assert feed(recording, voice(1.0)) == 50
    fed = feed(recording, quiet(10))  # fed far faster than real time
    assert recording.reason == "timeout"
    assert fed == 100, "exactly two seconds of silent frames end it"
    assert len(file_of(recording)) == 3 * FMT.rate


def test_silence_before_anything_is_said_also_times_out(store):
    recording = take(store, silence_seconds=1, trim=True)
    feed(recording, quiet(5))
    assert recording.reason == "timeout" and recording.seconds == pytest.approx(1.0)
    result = recording.recorder.wait(10)
    assert result is not None and result.status == "absent" and not result.path.exists()


def test_timeout_zero_records_through_any_silence_until_max_length(store):
    recording = take(store, max_seconds=7, silence_seconds=0)
    feed(recording, np.concatenate([voice(0.5), quiet(10)]))
    assert recording.reason == "max-length"
    assert recording.seconds == pytest.approx(7.0)


def test_max_length_cuts_the_take_at_that_much_audio(store):
    recording = take(store, max_seconds=1.01)  # not a whole number of frames
    feed(recording, voice(3))
    assert recording.reason == "max-length"
    assert len(file_of(recording)) == round(1.01 * FMT.rate)


def test_a_key_drops_the_held_back_tail_where_its_tone_is(store):
    recording = take(store)
    said = voice(1.0)
    feed(recording, np.concatenate([said, dtmf("#", 120, FMT.rate)]))
    recording.stop("#", drop_tail=True)
    recorded = file_of(recording)
    kept = len(said) + round(0.12 * FMT.rate) - round(KEY_HOLDBACK_SECONDS * FMT.rate)
    assert abs(len(recorded) - kept) <= FMT.samples
    _, high = DTMF_FREQS["#"]
    assert goertzel_power(recorded[-FMT.samples:], high, FMT.rate) < 1e-4, "no tone at the end"


def test_hang_up_keeps_everything_said(store):
    recording = take(store)
    said = voice(0.6)
    feed(recording, said)
    recording.close()
    assert recording.reason == "hangup"
    assert np.array_equal(file_of(recording), said)


def test_trim_removes_the_silence_around_the_words(store):
    recording = take(store, trim=True)
    said = voice(0.8)
    feed(recording, np.concatenate([quiet(1.0), said, quiet(1.0)]))
    recording.close()
    assert np.array_equal(file_of(recording), said)


def test_session_recording_keeps_the_caller_left_and_what_they_heard_right(store):
    recorder = Recorder(store, FMT, False, lambda result: None, channels=2)
    recorder.start()
    session = SessionRecording(recorder, FMT.rate, max_seconds=None)
    said, heard = voice(0.4), tone(1000, 400, FMT.rate)
    for inbound, outbound in zip(frames(said), frames(heard), strict=True):
        session.feed(inbound, outbound)
    session.close()
    session.feed(SILENCE, SILENCE)  # after the end: ignored
    result = recorder.wait(10)
    assert result is not None
    data = soundfile.read(result.path, dtype="int16")[0]
    assert data.shape == (len(said), 2)
    assert np.array_equal(data[:, 0], said) and np.array_equal(data[:, 1], heard)


# --- a whole take on a call: keys, hang-up, callbacks ---------------------------------------


class Line:
    """A call with a stand-in port, and a tick that feeds it from the test's thread."""

    def __init__(self, store: RecordingStore) -> None:
        self.call = Call(line="gsm0", from_number="+15550001111", to_number="+15551230000")
        self.call.port = types.SimpleNamespace(fmt=FMT, closed=False)  # type: ignore[assignment]
        self.hooks = Hooks()
        self.recordings = CallRecordings(self.call, store, ACCOUNT_SID, self.hooks)  # type: ignore[arg-type]

    def record(self, request: RecordRequest) -> Callable[[], RecordOutcome | None]:
        """Start ``request`` on the interpreter's side; returns a function giving its end."""
        box: list[RecordOutcome | None] = []
        thread = threading.Thread(target=lambda: box.append(self.recordings.record(request)))
        thread.start()

        def outcome() -> RecordOutcome | None:
            thread.join(10)
            assert box, "the take did not end"
            return box[0]

        return outcome

    def tick(self, samples: np.ndarray) -> None:
        for frame in frames(samples):
            self.wait_for_tap()
            self.call.tap(frame, SILENCE)

    def wait_for_tap(self) -> None:
        for _ in range(500):
            if self.call._taps:
                return
            threading.Event().wait(0.01)
        raise AssertionError("the take never started")


def test_finish_on_key_ends_the_take_and_is_reported_as_digits(store):
    line = Line(store)
    callback = StatusCallback("https://app.example/status", "POST", ("completed",))
    outcome = line.record(RecordRequest(max_seconds=60, silence_seconds=5, finish_on_key="#*",
                                        trim=True, callback=callback))
    line.tick(voice(1.0))
    line.call.keys.put("5")  # not a finishing key: ignored
    line.tick(voice(0.5))
    line.call.keys.put("*")
    result = outcome()
    assert result is not None and result.ended_by == "*" and not result.empty
    assert result.twilio_params()["Digits"] == "*"
    assert 1.0 < result.duration < 1.5
    assert line.hooks.changed.wait(5)
    ((url, method, params),) = line.hooks.sent
    assert (url, method) == ("https://app.example/status", "POST")
    assert params == {
        "AccountSid": ACCOUNT_SID,
        "CallSid": line.call.sid,
        "RecordingSid": result.sid,
        "RecordingUrl": f"http://appliance.local/recordings/{result.sid}",
        "RecordingStatus": "completed",
        "RecordingChannels": "1",
        "RecordingStartTime": params["RecordingStartTime"],
        "RecordingSource": "RecordVerb",
        "ErrorCode": "0",
        "RecordingDuration": str(round(result.duration)),
    }
    assert params["RecordingStartTime"].endswith("+0000")


def test_keys_pressed_before_the_take_do_not_end_it(store):
    line = Line(store)
    line.call.keys.put("#")
    outcome = line.record(RecordRequest(max_seconds=1, finish_on_key="#"))
    line.tick(voice(1.2))
    result = outcome()
    assert result is not None and result.ended_by == "max-length"
    assert result.twilio_params()["Digits"] == ""


def test_hang_up_ends_the_take_with_digits_hangup(store):
    line = Line(store)
    outcome = line.record(RecordRequest(max_seconds=60, finish_on_key="#"))
    line.tick(voice(0.5))
    line.call.end()
    result = outcome()
    assert result is not None and result.ended_by == "hangup"
    assert result.twilio_params()["Digits"] == "hangup"
    assert result.duration == pytest.approx(0.5, abs=0.02)


def test_a_silent_twiml_take_is_empty_and_reported_absent(store):
    line = Line(store)
    callback = StatusCallback("https://app.example/status", "GET", ("absent", "in-progress"))
    outcome = line.record(RecordRequest(max_seconds=60, silence_seconds=1, drop_silent=True,
                                        callback=callback))
    line.tick(quiet(2))
    result = outcome()
    assert result is not None and result.empty and result.ended_by == "timeout"
    assert not list(store.directory.glob("*")), "no file is kept"
    assert line.hooks.changed.wait(5)
    statuses = [params["RecordingStatus"] for _, _, params in line.hooks.sent]
    assert statuses == ["in-progress", "absent"]


def test_plivo_callback_gets_the_record_parameters_in_audio_time(store):
    line = Line(store)
    callback = StatusCallback("https://app.example/ready", dialect="plivo")
    outcome = line.record(RecordRequest(max_seconds=2, file_format="wav", callback=callback))
    line.tick(voice(3))
    result = outcome()
    assert result is not None and result.ended_by == "max-length"
    params = result.plivo_params()
    assert params["RecordingDuration"] == "2" and params["RecordingDurationMs"] == "2000"
    assert int(params["RecordingEndMs"]) - int(params["RecordingStartMs"]) == 2000
    assert line.hooks.changed.wait(5)
    ((_, _, sent),) = line.hooks.sent
    assert sent == {
        "RecordUrl": result.url, "RecordingID": result.sid, "RecordingDuration": "2",
        "RecordingDurationMs": "2000", "RecordingStartMs": params["RecordingStartMs"],
        "RecordingEndMs": params["RecordingEndMs"], "CallUUID": line.call.sid,
    }


def test_a_call_without_audio_records_nothing(store):
    line = Line(store)
    line.call.port = None
    assert line.recordings.record(RecordRequest(max_seconds=5)) is None


def test_outcome_parameters_for_each_dialect():
    outcome = RecordOutcome("RE1", "http://a/recordings/RE1", 3.4, "timeout", 1000.0, 1003.4)
    assert outcome.twilio_params() == {"RecordingUrl": "http://a/recordings/RE1",
                                       "RecordingDuration": "3", "RecordingSid": "RE1",
                                       "Digits": ""}
    assert outcome.plivo_params() == {
        "RecordUrl": "http://a/recordings/RE1", "RecordingID": "RE1", "RecordingDuration": "3",
        "RecordingDurationMs": "3400", "RecordingStartMs": "1000000",
        "RecordingEndMs": "1003400", "Digits": ""}


def test_recording_result_of_a_failed_writer_is_absent(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    done: list[RecordingResult] = []
    recorder = Recorder(RecordingStore(blocked, "http://a"), FMT, False, done.append)
    recorder.start()
    recorder.write(voice(0.1)[: FMT.samples])
    recorder.stop()
    result = recorder.wait(10)
    assert result is not None and result.status == "absent" and done == [result]
