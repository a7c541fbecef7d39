"""The calls layer's side of the interpreter's :class:`CallSession` protocol."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from appliance.audio.media import BufferSource, MediaSource, SilenceSource
from appliance.audio.tones import dtmf
from appliance.calls.call import KEY_POLL_SECONDS, Call
from appliance.calls.call_recordings import CallRecordings
from appliance.calls.conference import (
    Conference as Room,
)
from appliance.calls.conference import (
    ConferenceRegistry,
    JoinRefused,
    LeaveReason,
    Participant,
    ParticipantOptions,
    RecordingOptions,
    Refusal,
    RoomOptions,
)
from appliance.calls.dial import (
    DialOptions,
    DialRecordingCallbacks,
    DialResult,
    NumberDialer,
    Target,
)
from appliance.calls.plivo_callbacks import PlivoConferenceCallbacks
from appliance.calls.recording import RecordingStore
from appliance.calls.twilio_callbacks import CallbackUrl, TwilioConferenceCallbacks
from appliance.twiml.record import (
    RecordOutcome,
    RecordRequest,
    SessionRecordingStarted,
    StatusCallback,
)
from appliance.twiml.verbs import Conference, Dial, Number, PlivoConference
from appliance.webhooks import WebhookSender

log = logging.getLogger(__name__)
# The last words of a prompt are still in the port's buffers and the modem when the prompt
# "ends"; playing this much silence first lets them reach the caller before the hang-up.
HANGUP_DRAIN_SECONDS = 0.2
OVERLAY_WAIT_SECONDS = 60.0  # an overlay still playing at the hang-up plays to its end first

# Twilio's jitterBufferSize values as buffer targets (DESIGN: small 20, medium 40, large 60 ms).
JITTER_TARGET_MS = {"small": 20, "medium": 40, "large": 60, "off": 0}

# Twilio error codes of a <Conference> that cannot be joined.
DUPLICATE_LABEL = 16025  # the label is taken: the call goes on with the next verb
UNKNOWN_COACH = 13240  # coach is not a call in the conference: the Dial fails to its action

RELAY_DTMF_MS = 100  # a relayed key's tone in the room, then a gap as long

_region_noted = threading.Event()
_caller_id_noted = threading.Event()


@dataclass(frozen=True)
class ConferenceExit:
    """How a call left a Plivo conference: ``status`` as :meth:`join_conference` returns it,
    ``params`` the action URL's conference parameters."""

    status: str
    params: dict[str, str] = field(default_factory=dict)


def _note_region(noun: Conference) -> None:
    """``region`` picks Twilio's mixing data centre; here the Pi mixes (logged once)."""
    if noun.region and not _region_noted.is_set():
        _region_noted.set()
        log.info('<Conference region="%s"> ignored: conferences are mixed on this appliance',
                 noun.region)


class LiveCallSession:
    """Binds one :class:`Call` to the conferences and to the line that can hang it up."""

    def __init__(
        self,
        call: Call,
        conferences: ConferenceRegistry,
        hangup: Callable[[Call], None],
        account_sid: str,
        webhooks: WebhookSender | None = None,
        recordings: RecordingStore | None = None,
        *,
        answer: Callable[[Call], bool] | None = None,
        reject: Callable[[Call, str], None] | None = None,
        dialer: NumberDialer | None = None,
    ) -> None:
        """``answer`` and ``reject`` act on the ringing call (the manager's); without them
        the call counts as answered already. ``dialer`` places <Dial><Number> calls."""
        self.call = call
        self.sid = call.sid
        self._conferences = conferences
        self._hangup = hangup
        self._account_sid = account_sid
        self._webhooks = webhooks
        self._recordings = recordings
        self._answer = answer
        self._reject = reject
        self._dialer = dialer

    @property
    def ended(self) -> bool:
        return self.call.hung_up.is_set()

    def params(self) -> dict[str, str]:
        return self.call.params(self._account_sid)

    # --- answering: the rules decide while the phone rings ------------------------------------

    @property
    def answered(self) -> bool:
        return self._answer is None or self.call.connected.is_set()

    def answer(self) -> bool:
        """Pick up the ringing call; False when the caller hung up first (or it failed)."""
        return self._answer is None or self._answer(self.call)

    def reject(self, reason: str) -> None:
        """Refuse the ringing call without answering it (<Reject>, Plivo's Hangup reason)."""
        if self._reject is None:
            self.hangup()
        else:
            self._reject(self.call, reason)

    # --- <Dial><Number> ------------------------------------------------------------------------

    def dial_numbers(self, dial: Dial, numbers: Sequence[Number]) -> DialResult:
        """Ring ``numbers`` (URLs in ``dial`` absolute) and bridge the first to answer; blocks
        until the bridge ends. The result's ``status`` and ``params()`` are Twilio's."""
        if self._dialer is None:
            log.error("call %s: this appliance has no dialer; <Dial><Number> fails", self.sid)
            return DialResult("failed")
        if dial.caller_id and not _caller_id_noted.is_set():
            _caller_id_noted.set()
            log.info('<Dial callerId="%s"> ignored: a SIM or analog line always presents its '
                     "own number", dial.caller_id)
        for number in numbers:
            if number.url:
                log.warning("call %s: <Number url> (a whisper to %s) is not run on this "
                            "appliance; the call is bridged at once", self.sid, number.number)
        options = DialOptions(
            timeout=float(dial.timeout),
            time_limit=float(dial.time_limit),
            hangup_on_star=dial.hangup_on_star,
            ring_tone=dial.ring_tone,
            ringback=self.call.port is not None,
            record=self._dial_recording(dial),
            observer=self._dial_recording_callbacks(dial),
        )
        targets = [Target(number.number, number.send_digits) for number in numbers]
        return self._dialer.dial(self.call, targets, options)

    def _dial_recording(self, dial: Dial) -> RecordingOptions | None:
        if dial.record == "do-not-record":
            return None
        if self._recordings is None:
            log.warning("call %s: no recording folder; the <Dial> is not recorded", self.sid)
            return None
        if dial.record != "record-from-answer":
            log.info('call %s: <Dial record="%s"> records from the answer, in one channel',
                     self.sid, dial.record)
        return RecordingOptions(self._recordings, trim=dial.trim == "trim-silence")

    def _dial_recording_callbacks(self, dial: Dial) -> DialRecordingCallbacks | None:
        if not dial.recording_status_callback or self._webhooks is None:
            return None
        return DialRecordingCallbacks(
            self._webhooks, self._account_sid, self.sid,
            CallbackUrl(dial.recording_status_callback, dial.recording_status_callback_method),
            dial.recording_status_callback_event)

    def play(self, source: MediaSource) -> bool:
        return self.call.play(source)

    def discard_keys(self) -> None:
        self.call.discard_keys()

    def play_until_key(self, source: MediaSource) -> str | None:
        return self.call.play_until_key(source)

    def collect_digits(
        self, num_digits: int | None, timeout: float, finish_on_key: str,
        first_key: str | None = None, digit_timeout: float | None = None,
        valid_keys: str | None = None,
    ) -> str:
        """The caller's keys for a <Gather> or <GetDigits>; ``timeout`` counts the call's
        audio time (the modem's clock) from now, ``digit_timeout`` (default ``timeout``) from
        each key. A key outside ``valid_keys`` ends the input and is the last one returned."""
        digits = ""
        pending = first_key
        last = self.call.audio_time
        while not self.call.hung_up.is_set():
            if num_digits is not None and len(digits) >= num_digits:
                break
            key, pending = pending, None
            if key is None:
                wait = timeout if not digits or digit_timeout is None else digit_timeout
                if self.call.audio_time - last >= wait:
                    break
                try:
                    key = self.call.keys.get(timeout=KEY_POLL_SECONDS)
                except queue.Empty:
                    continue
            if finish_on_key and key == finish_on_key:
                break
            digits += key
            if valid_keys is not None and key not in valid_keys:
                break
            last = self.call.audio_time
        return digits

    def play_over(self, source: MediaSource) -> None:
        """Play ``source`` on top of whatever the caller hears next, without waiting."""
        self.call.start_overlay(source)

    def record(self, request: RecordRequest) -> RecordOutcome | None:
        """A <Record> take of the caller's voice (see ``calls.call_recordings``)."""
        recordings = self._call_recordings()
        return recordings.record(request) if recordings is not None else None

    def record_session(self, file_format: str, stereo: bool, max_seconds: float | None,
                       callback: StatusCallback | None) -> SessionRecordingStarted | None:
        """Plivo's recordSession: both directions, in the background, until the hang-up."""
        recordings = self._call_recordings()
        if recordings is None:
            return None
        return recordings.record_session(file_format, stereo, max_seconds, callback)

    def _call_recordings(self) -> CallRecordings | None:
        if self._recordings is None:
            log.error("call %s: no recording folder; nothing is recorded", self.sid)
            return None
        return CallRecordings(self.call, self._recordings, self._account_sid, self._webhooks)

    def hangup(self) -> None:
        """Hang up once what the caller is hearing has left the buffers, not cut off mid-word."""
        if not self.call.hung_up.is_set() and self.call.port is not None:
            self.call.wait_overlay(OVERLAY_WAIT_SECONDS)  # tones of an asynchronous <DTMF>
            fmt = self.call.port.fmt
            self.call.play(SilenceSource(fmt.frames_for(HANGUP_DRAIN_SECONDS), fmt))
        self._hangup(self.call)

    def join_conference(
        self, noun: Conference, dial: Dial, wait_audio: Callable[[], MediaSource | None] | None
    ) -> str:
        _note_region(noun)
        options = ParticipantOptions(
            muted=noun.muted,
            beep=noun.beep,
            start_on_enter=noun.start_conference_on_enter,
            end_on_exit=noun.end_conference_on_exit,
            wait_audio=wait_audio,
            label=noun.participant_label or "",
            coach=noun.coach,
            max_participants=noun.max_participants,
            room=self._room_options(noun),
        )
        entered = self._enter(noun.name, options)
        if isinstance(entered, str):
            return entered
        conference, participant = entered
        self.call.conference = noun.name
        if self.call.port is not None:
            self.call.port.set_jitter_target(JITTER_TARGET_MS[noun.jitter_buffer_size])
        try:
            while not participant.left.is_set():
                if self.call.hung_up.is_set():
                    conference.leave(self.call.sid, LeaveReason.HANGUP)
                    return "hangup"
                # Audio time, the ticks counted; half a tick of slack for the summed periods.
                if participant.seconds >= dial.time_limit - conference.fmt.period / 2:
                    conference.leave(self.call.sid, LeaveReason.TIME_LIMIT)
                    continue
                try:
                    key = self.call.keys.get(timeout=0.05)
                except queue.Empty:
                    continue
                if key == "*" and dial.hangup_on_star:
                    conference.leave(self.call.sid, LeaveReason.HANGUP_ON_STAR)
            return "hangup" if self.call.hung_up.is_set() else "completed"
        finally:
            self.call.conference = None

    def join_plivo_conference(
        self,
        verb: PlivoConference,
        wait_audio: Callable[[], MediaSource | None] | None,
        enter_sound: np.ndarray | None,
        exit_sound: np.ndarray | None,
    ) -> ConferenceExit:
        """Block while the caller is in Plivo's <Conference> (``verb``, URLs absolute)."""
        observer = None
        if (verb.callback_url or verb.transcription_url) and self._webhooks is not None:
            observer = PlivoConferenceCallbacks(
                self._webhooks, self.sid,
                callback=(CallbackUrl(verb.callback_url, verb.callback_method)
                          if verb.callback_url else None),
                floor_event=verb.floor_event,
                transcription=(CallbackUrl(verb.transcription_url, verb.transcription_method)
                               if verb.transcription_url and verb.record else None),
            )
        record = None
        if verb.record:
            if self._recordings is None:
                log.warning("call %s: no recording folder; conference %s is not recorded",
                            self.sid, verb.name)
            else:
                record = RecordingOptions(self._recordings, trim=False,
                                          file_format=verb.record_file_format)
        beep = {(True, True): "true", (True, False): "onEnter", (False, True): "onExit",
                (False, False): "false"}[(enter_sound is not None, exit_sound is not None)]
        options = ParticipantOptions(
            muted=verb.muted,
            beep=beep,
            start_on_enter=verb.start_conference_on_enter,
            end_on_exit=verb.end_conference_on_exit,
            wait_audio=wait_audio,
            max_participants=verb.max_members,
            room=RoomOptions(observer=observer, record=record,
                             time_limit=float(verb.time_limit) if verb.time_limit else None),
            enter_sound=enter_sound,
            exit_sound=exit_sound,
            stay_alone=verb.stay_alone,
            observer=observer,
        )
        entered = self._enter(verb.name, options)
        if isinstance(entered, str):
            return ConferenceExit(entered)
        conference, participant = entered
        self.call.conference = verb.name
        try:
            status = self._take_part(conference, participant, verb)
        finally:
            self.call.conference = None
        params = {
            "ConferenceName": conference.name,
            "ConferenceUUID": conference.uuid,
            "ConferenceMemberID": str(participant.member_id),
        }
        if conference.recording_sid and conference.recording_url:
            params["RecordUrl"] = conference.recording_url
            params["RecordingID"] = conference.recording_sid
            params["RecordFile"] = conference.recording_url
        return ConferenceExit(status, params)

    def _take_part(self, conference: Room, participant: Participant,
                   verb: PlivoConference) -> str:
        """The member's keys while in the room: ``*``, digitsMatch and relayDTMF."""
        pending = ""  # keys that may be the start of a digitsMatch pattern
        while not participant.left.is_set():
            if self.call.hung_up.is_set():
                conference.leave(self.call.sid, LeaveReason.HANGUP)
                return "hangup"
            try:
                key = self.call.keys.get(timeout=0.05)
            except queue.Empty:
                continue
            if key == "*" and verb.hangup_on_star:
                conference.leave(self.call.sid, LeaveReason.HANGUP_ON_STAR)
                continue
            pending += key
            matched = next((p for p in verb.digits_match if pending.endswith(p)), None)
            if matched is not None:
                conference.report_digits(self.call.sid, matched)
                pending = ""
                continue
            if not any(p.startswith(pending[i:]) for p in verb.digits_match
                       for i in range(len(pending))):
                pending = ""
                if verb.relay_dtmf:
                    tone = dtmf(key, RELAY_DTMF_MS, conference.fmt.rate)
                    gap = np.zeros(len(tone), dtype=np.int16)
                    conference.relay(self.call.sid,
                                     BufferSource(np.concatenate([tone, gap]), conference.fmt))
        return "hangup" if self.call.hung_up.is_set() else "completed"

    def _enter(self, name: str, options: ParticipantOptions) -> tuple[Room, Participant] | str:
        """Join the room ``name``; on refusal the status :meth:`_refused` gives."""
        for _attempt in range(3):  # the room may end between lookup and join; take the new one
            conference = self._conferences.get_or_create(name)
            try:
                return conference, conference.join(self.call.sid, options)
            except RuntimeError:
                continue
            except JoinRefused as exc:
                return self._refused(exc)
        return "failed"

    def _room_options(self, noun: Conference) -> RoomOptions:
        """The room's settings, should this call be the first in it."""
        observer = None
        wanted = noun.status_callback or noun.recording_status_callback or noun.event_callback_url
        if wanted and self._webhooks is not None:
            observer = TwilioConferenceCallbacks(
                self._webhooks,
                self._account_sid,
                status_callback=(CallbackUrl(noun.status_callback, noun.status_callback_method)
                                 if noun.status_callback else None),
                status_events=noun.status_callback_event,
                recording_callback=(
                    CallbackUrl(noun.recording_status_callback,
                                noun.recording_status_callback_method)
                    if noun.recording_status_callback else None),
                recording_events=noun.recording_status_callback_event,
                event_callback_url=noun.event_callback_url,
            )
        record = None
        if noun.record == "record-from-start":
            if self._recordings is None:
                log.warning("call %s: no recording folder; conference %s is not recorded",
                            self.sid, noun.name)
            else:
                record = RecordingOptions(self._recordings, trim=noun.trim == "trim-silence")
        return RoomOptions(observer=observer, record=record)

    def _refused(self, refusal: JoinRefused) -> str:
        """Log why the call did not join; its DialCallStatus, or "refused" for the next verb."""
        if refusal.reason is Refusal.UNKNOWN_COACH:
            log.error("call %s: error %d: %s", self.sid, UNKNOWN_COACH, refusal)
            return "failed"
        if refusal.reason is Refusal.DUPLICATE_LABEL:
            log.error("call %s: error %d: %s", self.sid, DUPLICATE_LABEL, refusal)
        else:
            log.warning("call %s: not joining: %s", self.sid, refusal)
        return "refused"
