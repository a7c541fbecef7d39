"""The tick's work: read every call's input, mix each conference, write every call's output,
and hand both to the call's recordings."""

from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.audio.frames import AudioFormat
from appliance.calls.call import Call
from appliance.calls.conference import ConferenceRegistry

log = logging.getLogger(__name__)


class AudioRouter:
    """Called once per tick by the audio engine (on its thread)."""

    def __init__(
        self,
        fmt: AudioFormat,
        calls: Callable[[], list[Call]],
        conferences: ConferenceRegistry,
    ) -> None:
        self._fmt = fmt
        self._calls = calls
        self._conferences = conferences
        self._silence = fmt.silence()

    def on_tick(self) -> None:
        connected = [c for c in self._calls() if c.port is not None and not c.port.closed]
        inputs = {call.sid: call.port.read_frame() for call in connected}  # type: ignore[union-attr]
        for call in connected:
            call.listen_for_keys(inputs[call.sid], self._fmt.rate)
        outputs = {}
        for conference in self._conferences.active():
            outputs.update(conference.mix(inputs))
        for call in connected:
            frame = outputs.get(call.sid)
            if frame is None:
                frame = call.next_prompt_frame()
            frame = call.with_overlay(self._silence if frame is None else frame)
            call.port.write_frame(frame)  # type: ignore[union-attr]
            call.tap(inputs[call.sid], frame)  # recordings: what was said and what was heard
