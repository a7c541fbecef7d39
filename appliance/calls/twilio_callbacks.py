"""A room's events as Twilio sends them: statusCallback, recordingStatusCallback and the
deprecated eventCallbackUrl, with the parameters of Twilio's ``<Conference>`` reference.

The first participant's ``<Conference>`` attributes make one :class:`TwilioConferenceCallbacks`
the room's observer. It only builds the parameters and queues them on the
:class:`~appliance.webhooks.WebhookSender`, so it may run on the tick thread; the sender signs
and delivers them in order.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from appliance.calls.conference import (
    Conference,
    ConferenceEvent,
    EndReason,
    EventKind,
    LeaveReason,
    ParticipantState,
)
from appliance.calls.recording import RecordingResult
from appliance.webhooks import WebhookSender

# statusCallbackEvent values and the StatusCallbackEvent each of our events is sent as.
_STATUS_EVENTS: dict[EventKind, tuple[str, str]] = {
    EventKind.START: ("start", "conference-start"),
    EventKind.END: ("end", "conference-end"),
    EventKind.JOIN: ("join", "participant-join"),
    EventKind.LEAVE: ("leave", "participant-leave"),
    EventKind.MUTE: ("mute", "participant-mute"),
    EventKind.UNMUTE: ("mute", "participant-unmute"),
    EventKind.HOLD: ("hold", "participant-hold"),
    EventKind.UNHOLD: ("hold", "participant-unhold"),
    EventKind.MODIFY: ("modify", "participant-modify"),
    EventKind.SPEECH_START: ("speaker", "participant-speech-start"),
    EventKind.SPEECH_STOP: ("speaker", "participant-speech-stop"),
    EventKind.ANNOUNCEMENT_END: ("announcement", "announcement-end"),
}

# ReasonParticipantLeft (Twilio's list has no entry for leaving on "*" or at the Dial's
# timeLimit: both are the participant hanging up on the conference while the call goes on).
_LEAVE_REASONS = {
    LeaveReason.HANGUP: "participant_hung_up",
    LeaveReason.HANGUP_ON_STAR: "participant_hung_up",
    LeaveReason.TIME_LIMIT: "participant_hung_up",
    LeaveReason.KICKED: "participant_updated_via_api",
}

_END_MESSAGES = {
    EndReason.LAST_PARTICIPANT_LEFT: "Last participant left",
    EndReason.LAST_PARTICIPANT_KICKED: "Last participant was removed",
    EndReason.END_ON_EXIT_LEFT: "Participant with endConferenceOnExit left",
    EndReason.END_ON_EXIT_KICKED: "Participant with endConferenceOnExit was removed",
    EndReason.API: "Conference ended via API",
}

RECORDING_SOURCE = "DialVerb"  # a recording started by <Dial><Conference record=...>


def rfc2822(timestamp: float) -> str:
    """``Thu, 01 Jun 2017 20:48:32 +0000``."""
    return format_datetime(datetime.fromtimestamp(timestamp, UTC))


def _bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class CallbackUrl:
    url: str
    method: str = "POST"


class TwilioConferenceCallbacks:
    """The observer of one room: which of its events to send where."""

    def __init__(
        self,
        sender: WebhookSender,
        account_sid: str,
        status_callback: CallbackUrl | None = None,
        status_events: Collection[str] = (),
        recording_callback: CallbackUrl | None = None,
        recording_events: Collection[str] = ("completed",),
        event_callback_url: str | None = None,
    ) -> None:
        self._sender = sender
        self._account_sid = account_sid
        self._status = status_callback
        self._status_events = frozenset(status_events)
        self._recording = recording_callback
        self._recording_events = frozenset(recording_events)
        self._event_callback_url = event_callback_url
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()  # SequenceNumber order = queue order

    def conference_event(self, conference: Conference, event: ConferenceEvent) -> None:
        if event.kind in (EventKind.RECORDING_START, EventKind.RECORDING_END):
            self._recording_event(conference, event)
            return
        if event.kind not in _STATUS_EVENTS:
            return  # floor and digits events are Plivo's
        group, name = _STATUS_EVENTS[event.kind]
        if self._status is None or group not in self._status_events:
            return
        params = {"StatusCallbackEvent": name}
        if event.participant is not None:
            params.update(self._participant(event.participant))
        if event.kind is EventKind.LEAVE:
            params.update(self._leave(event))
        elif event.kind is EventKind.END:
            params.update(self._end(event))
        elif event.kind is EventKind.ANNOUNCEMENT_END:
            params["AnnounceUrl"] = event.announce_url
        self._send_status(conference, event, self._status, params)

    # --- statusCallback ----------------------------------------------------------------------

    def _send_status(self, conference: Conference, event: ConferenceEvent,
                     target: CallbackUrl, params: dict[str, str]) -> None:
        with self._lock:
            params = {
                "ConferenceSid": conference.sid,
                "FriendlyName": conference.name,
                "AccountSid": self._account_sid,
                "SequenceNumber": str(next(self._sequence)),
                "Timestamp": rfc2822(event.timestamp),
                **params,
            }
            self._sender.send(target.url, target.method, params)

    @staticmethod
    def _participant(state: ParticipantState) -> dict[str, str]:
        params = {
            "CallSid": state.call_sid,
            "Muted": _bool(state.muted),
            "Hold": _bool(state.held),
            "Coaching": _bool(state.coaching is not None),
            "EndConferenceOnExit": _bool(state.end_on_exit),
            "StartConferenceOnEnter": _bool(state.start_on_enter),
        }
        if state.coaching is not None:
            params["CallSidToCoach"] = state.coaching
        if state.label:
            params["ParticipantLabel"] = state.label
        return params

    @staticmethod
    def _leave(event: ConferenceEvent) -> dict[str, str]:
        if event.end_reason:
            by_moderator = event.end_reason in (EndReason.END_ON_EXIT_LEFT,
                                                EndReason.END_ON_EXIT_KICKED)
            why = "moderator_ended_conference" if by_moderator else "conference_ended_via_api"
        else:
            why = _LEAVE_REASONS.get(LeaveReason(event.reason), "participant_hung_up")
        return {
            "ReasonParticipantLeft": why,
            "ParticipantCallStatus": "completed" if event.call_ended else "in-progress",
        }

    @staticmethod
    def _end(event: ConferenceEvent) -> dict[str, str]:
        params = {
            "ReasonConferenceEnded": event.reason,
            "Reason": _END_MESSAGES.get(EndReason(event.reason), event.reason),
        }
        if event.ending is not None:
            params["CallSidEndingConference"] = event.ending.call_sid
            if event.ending.label:
                params["ParticipantLabelEndingConference"] = event.ending.label
        return params

    # --- recordings ----------------------------------------------------------------------------

    def _recording_event(self, conference: Conference, event: ConferenceEvent) -> None:
        recording = event.recording
        assert recording is not None
        if self._recording is not None:
            wanted = {recording.status}
            if recording.status == "absent":
                wanted.add("failed")  # SignalWire's name for it (seed 003)
            if wanted & self._recording_events:
                self._sender.send(self._recording.url, self._recording.method,
                                  self._recording_params(conference, recording))
        elif self._event_callback_url and recording.status == "completed":
            # eventCallbackUrl: deprecated, and silent when a recordingStatusCallback is set.
            params = {
                "EventName": "conference-record-end",
                "StatusCallbackEvent": "conference-record-end",
                "RecordingSid": recording.sid,
                "RecordingUrl": recording.url,
                "Duration": str(round(recording.duration)),
                "RecordingFileSize": str(recording.size),
            }
            self._send_status(conference, event, CallbackUrl(self._event_callback_url), params)

    def _recording_params(self, conference: Conference,
                          recording: RecordingResult) -> dict[str, str]:
        params = {
            "AccountSid": self._account_sid,
            "ConferenceSid": conference.sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": recording.url,
            "RecordingStatus": recording.status,
            "RecordingChannels": "1",
            "RecordingStartTime": rfc2822(recording.started_at),
            "RecordingSource": RECORDING_SOURCE,
            "ErrorCode": "0",
        }
        if recording.status != "in-progress":
            params["RecordingDuration"] = str(round(recording.duration))
        return params


RECORD_VERB_SOURCE = "RecordVerb"  # a recording made by the <Record> verb


def record_verb_params(account_sid: str, call_sid: str,
                       recording: RecordingResult) -> dict[str, str]:
    """A <Record> verb's recordingStatusCallback parameters (Twilio's <Record> reference)."""
    params = {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "RecordingSid": recording.sid,
        "RecordingUrl": recording.url,
        "RecordingStatus": recording.status,
        "RecordingChannels": "1",
        "RecordingStartTime": rfc2822(recording.started_at),
        "RecordingSource": RECORD_VERB_SOURCE,
        "ErrorCode": "0",
    }
    if recording.status != "in-progress":
        params["RecordingDuration"] = str(round(recording.duration))
    return params
