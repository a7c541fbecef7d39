"""The calls layer's side of the interpreter's :class:`CallSession` protocol."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable

from appliance.audio.media import MediaSource
from appliance.calls.call import Call
from appliance.calls.conference import ConferenceRegistry, LeaveReason, ParticipantOptions
from appliance.twiml.verbs import Conference, Dial

log = logging.getLogger(__name__)

# Twilio's jitterBufferSize values as buffer targets (DESIGN: small 20, medium 40, large 60 ms).
JITTER_TARGET_MS = {"small": 20, "medium": 40, "large": 60, "off": 0}


class LiveCallSession:
    """Binds one :class:`Call` to the conferences and to the line that can hang it up."""

    def __init__(
        self,
        call: Call,
        conferences: ConferenceRegistry,
        hangup: Callable[[Call], None],
        account_sid: str,
    ) -> None:
        self.call = call
        self.sid = call.sid
        self._conferences = conferences
        self._hangup = hangup
        self._account_sid = account_sid

    @property
    def ended(self) -> bool:
        return self.call.hung_up.is_set()

    def params(self) -> dict[str, str]:
        return self.call.params(self._account_sid)

    def play(self, source: MediaSource) -> bool:
        return self.call.play(source)

    def hangup(self) -> None:
        self._hangup(self.call)

    def join_conference(
        self, noun: Conference, dial: Dial, wait_audio: Callable[[], MediaSource | None] | None
    ) -> str:
        options = ParticipantOptions(
            muted=noun.muted,
            beep=noun.beep,
            start_on_enter=noun.start_conference_on_enter,
            end_on_exit=noun.end_conference_on_exit,
            wait_audio=wait_audio,
            label=noun.participant_label or "",
        )
        conference = None
        participant = None
        for _attempt in range(3):  # the room may end between lookup and join; take the new one
            conference = self._conferences.get_or_create(noun.name)
            try:
                participant = conference.join(self.call.sid, options)
                break
            except RuntimeError:
                continue
        if conference is None or participant is None:
            return "failed"
        self.call.conference = noun.name
        if self.call.port is not None:
            self.call.port.set_jitter_target(JITTER_TARGET_MS[noun.jitter_buffer_size])
        try:
            while not participant.left.is_set():
                if self.call.hung_up.is_set():
                    conference.leave(self.call.sid, LeaveReason.HANGUP)
                    return "hangup"
                try:
                    key = self.call.keys.get(timeout=0.05)
                except queue.Empty:
                    continue
                if key == "*" and dial.hangup_on_star:
                    conference.leave(self.call.sid, LeaveReason.HANGUP_ON_STAR)
            return "hangup" if self.call.hung_up.is_set() else "completed"
        finally:
            self.call.conference = None
