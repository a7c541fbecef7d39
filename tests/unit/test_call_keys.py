import numpy as np

from appliance.audio.tones import dtmf
from appliance.calls.call import Call

RATE, FRAME = 16000, 320


def drain(call: Call) -> list[str]:
    keys = []
    while not call.keys.empty():
        keys.append(call.keys.get_nowait())
    return keys


def feed(call: Call, samples: np.ndarray) -> None:
    for start in range(0, len(samples) - FRAME + 1, FRAME):
        call.listen_for_keys(samples[start : start + FRAME], RATE)


def press(key: str) -> np.ndarray:
    return np.concatenate([dtmf(key, 100, RATE), np.zeros(RATE // 5, np.int16)])


def test_a_key_heard_in_band_is_delivered_once() -> None:
    call = Call(line="gsm0", from_number="+1", to_number="+2")
    feed(call, np.concatenate([press("5"), press("#")]))
    assert drain(call) == ["5", "#"]


def test_a_press_the_modem_reports_and_the_audio_carries_counts_once() -> None:
    call = Call(line="gsm0", from_number="+1", to_number="+2")
    assert call.key_from_modem("7")
    feed(call, press("7"))  # the same press, heard in band right after the report
    assert drain(call) == ["7"]
    feed(call, np.zeros(RATE, np.int16))  # a second later ...
    feed(call, press("7"))  # ... a second press of the same key is a new press
    assert drain(call) == ["7"]


def test_keys_only_the_modem_reports_are_delivered() -> None:
    call = Call(line="gsm0", from_number="+1", to_number="+2")
    assert call.key_from_modem("1") and call.key_from_modem("2")
    assert drain(call) == ["1", "2"]
