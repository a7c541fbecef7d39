"""A room's events as Plivo sends them: a member's ``callbackUrl`` (ConferenceAction
``enter``, ``exit``, ``digits``, ``floor`` and ``record``) and its ``transcriptionUrl``, with
the parameters of Plivo's ``<Conference>`` reference (seed 004).

Each member with a callbackUrl brings one :class:`PlivoConferenceCallbacks`; it hears the
events about that member, and the first member's also hears the room's recording. No
transcriber is bundled: a transcriptionUrl receives Plivo's ``error`` field instead of text.
"""

from __future__ import annotations

import time

from appliance.calls.conference import Conference, ConferenceEvent, EventKind
from appliance.calls.recording import RecordingResult
from appliance.calls.twilio_callbacks import CallbackUrl
from appliance.webhooks import WebhookSender

NO_TRANSCRIBER = "Transcription is not available on this appliance"

_ACTIONS = {
    EventKind.JOIN: "enter",
    EventKind.LEAVE: "exit",
    EventKind.DIGITS: "digits",
    EventKind.FLOOR: "floor",
}


class PlivoConferenceCallbacks:
    """The observer of one member (and, for the first member, of the room's recording)."""

    def __init__(
        self,
        sender: WebhookSender,
        call_uuid: str,
        callback: CallbackUrl | None = None,
        floor_event: bool = False,
        transcription: CallbackUrl | None = None,
    ) -> None:
        self._sender = sender
        self._call_uuid = call_uuid
        self._callback = callback
        self._floor_event = floor_event
        self._transcription = transcription

    def conference_event(self, conference: Conference, event: ConferenceEvent) -> None:
        if event.kind is EventKind.RECORDING_END and event.recording is not None:
            self._recorded(conference, event.recording)
            return
        action = _ACTIONS.get(event.kind)
        member = event.participant
        if action is None or member is None or self._callback is None:
            return
        if member.call_sid != self._call_uuid or (action == "floor" and not self._floor_event):
            return
        params = {
            "ConferenceAction": action,
            "ConferenceName": conference.name,
            "ConferenceUUID": conference.uuid,
            "ConferenceMemberID": str(member.member_id),
            "CallUUID": member.call_sid,
        }
        if event.kind is EventKind.DIGITS:
            params["ConferenceDigitsMatch"] = event.digits
        self._sender.send(self._callback.url, self._callback.method, params)

    def _recorded(self, conference: Conference, recording: RecordingResult) -> None:
        if recording.status != "completed":
            return
        ended_ms = int(time.time() * 1000)
        duration_ms = int(recording.duration * 1000)
        if self._callback is not None:
            self._sender.send(self._callback.url, self._callback.method, {
                "ConferenceAction": "record",
                "ConferenceName": conference.name,
                "ConferenceUUID": conference.uuid,
                "RecordUrl": recording.url,
                "RecordingID": recording.sid,
                "RecordingDuration": str(round(recording.duration)),
                "RecordingDurationMs": str(duration_ms),
                "RecordingStartMs": str(int(recording.started_at * 1000)),
                "RecordingEndMs": str(ended_ms),
            })
        if self._transcription is not None:
            self._sender.send(self._transcription.url, self._transcription.method, {
                "transcription_charge": "0",
                "transcription": "",
                "duration": str(round(recording.duration)),
                "call_uuid": self._call_uuid,
                "transcription_rate": "0",
                "recording_id": recording.sid,
                "error": NO_TRANSCRIBER,
            })


def record_callback_params(recording: RecordingResult, ended_at: float) -> dict[str, str]:
    """A <Record>'s callbackUrl parameters once its file is ready (Plivo's <Record> reference);
    ``ended_at`` in epoch seconds."""
    return {
        "RecordUrl": recording.url,
        "RecordingID": recording.sid,
        "RecordingDuration": str(round(recording.duration)),
        "RecordingDurationMs": str(round(recording.duration * 1000)),
        "RecordingStartMs": str(round(recording.started_at * 1000)),
        "RecordingEndMs": str(round(ended_at * 1000)),
    }
