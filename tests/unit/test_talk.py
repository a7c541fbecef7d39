import numpy as np

from appliance.audio.talk import SILENCE_DBFS, TalkDetector, frame_dbfs
from appliance.audio.tones import tone

RATE, FRAME = 16000, 320


def frames_of(samples: np.ndarray) -> list[np.ndarray]:
    return [samples[i : i + FRAME] for i in range(0, len(samples) - FRAME + 1, FRAME)]


def run(detector: TalkDetector, samples: np.ndarray) -> list[tuple[int, bool]]:
    changes = []
    for index, frame in enumerate(frames_of(samples)):
        change = detector.update(frame)
        if change is not None:
            changes.append((index, change))
    return changes


def test_levels_are_in_dbfs() -> None:
    assert frame_dbfs(np.zeros(FRAME, np.int16)) == SILENCE_DBFS
    full_scale_sine = tone(1000, 100, RATE, amplitude=1.0)[2 * FRAME : 3 * FRAME]
    assert abs(frame_dbfs(full_scale_sine) - (-3.0)) < 0.5


def test_speech_level_starts_talking_within_two_frames_and_stops_after_the_hang_time() -> None:
    detector = TalkDetector()
    speech = tone(300, 1000, RATE, amplitude=0.1)  # -23 dBFS
    changes = run(detector, np.concatenate([np.zeros(FRAME * 5, np.int16), speech,
                                            np.zeros(FRAME * 40, np.int16)]))
    assert changes[0] == (6, True)
    start_of_silence = 5 + len(speech) // FRAME
    assert changes[1][1] is False
    assert start_of_silence + 19 <= changes[1][0] <= start_of_silence + 21
    assert len(changes) == 2


def test_short_pauses_between_words_do_not_flap() -> None:
    detector = TalkDetector()
    word = tone(300, 200, RATE, amplitude=0.1)
    pause = np.zeros(RATE // 5, np.int16)  # 200 ms, shorter than the 400 ms hang time
    changes = run(detector, np.concatenate([word, pause] * 5))
    assert changes == [(1, True)]


def test_line_noise_is_not_talking() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(RATE * 2) * 30).astype(np.int16)  # about -61 dBFS
    detector = TalkDetector()
    assert run(detector, noise) == []
    assert detector.level_dbfs < -55
