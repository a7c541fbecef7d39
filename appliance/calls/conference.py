"""Conferences as an explicit state machine (as Asterisk's ConfBridge keeps them).

A conference is *waiting* until it starts (at least two participants, one of whom has
``start_on_enter``), *started* while people talk, and *ended* once the last participant leaves or
an ``end_on_exit`` participant does. Participants who wait hear their own wait audio and are not
heard; once started, every tick mixes the room with :func:`appliance.mixer.mix_conference`: a
coach is heard only by the participant it coaches, the recorder (if any) hears the whole room.

Nothing here belongs to one dialect: what a room reports (joins, leaves, mute, speech, its
recording) goes out as :class:`ConferenceEvent` to the event sink (the bus) and to the room's
:class:`ConferenceObserver`, which the first participant brings (TwiML's statusCallback,
later Plivo's callbackUrl).

Methods that change membership run on interpreter threads; :meth:`Conference.mix` runs on the
tick thread. One lock guards the membership; mixing works on a snapshot taken under it, and
events are delivered after the lock is released.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from appliance.audio.frames import AudioFormat
from appliance.audio.media import BufferSource, MediaSource
from appliance.audio.talk import SILENCE_DBFS, TalkDetector
from appliance.audio.tones import join_beep, leave_beep
from appliance.calls.recording import ConferenceRecorder, RecordingResult, RecordingStore
from appliance.mixer import mix_conference

log = logging.getLogger(__name__)

MAX_PARTICIPANTS = 250
LEVEL_EVERY_SECONDS = 0.25  # "conference.level" at most this often per room (the live page)
LEVEL_STEP_DB = 3.0  # levels are reported rounded to this step; no event while none changes
_RECORDER = "recorder"  # the recorder's key among the mixer's listeners (never a CallSid)


class ConferenceState(enum.Enum):
    WAITING = "waiting"  # participants present, not started: each hears its wait audio
    STARTED = "started"
    ENDED = "ended"


class LeaveReason(enum.StrEnum):
    HANGUP = "participant-hung-up"  # the caller hung up
    CONFERENCE_ENDED = "conference-ended"  # an end-on-exit participant left, or the room ended
    KICKED = "participant-removed"
    HANGUP_ON_STAR = "participant-pressed-star"
    TIME_LIMIT = "time-limit-reached"


class EndReason(enum.StrEnum):
    """Why a conference ended (Twilio's ReasonConferenceEnded names)."""

    LAST_PARTICIPANT_LEFT = "last-participant-left"
    LAST_PARTICIPANT_KICKED = "last-participant-kicked"
    END_ON_EXIT_LEFT = "participant-with-end-conference-on-exit-left"
    END_ON_EXIT_KICKED = "participant-with-end-conference-on-exit-kicked"
    API = "conference-ended-via-api"
    MEMBER_ALONE = "member-alone"  # a room that may not hold one member alone (Plivo)
    TIME_LIMIT = "conference-time-limit"  # the room's own duration limit (Plivo)


class Refusal(enum.StrEnum):
    """Why a call could not join."""

    FULL = "full"
    DUPLICATE_LABEL = "duplicate-label"
    UNKNOWN_COACH = "unknown-coach"


class JoinRefused(Exception):
    """The call does not join the conference (``reason`` says why); the room is unchanged."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RecordingOptions:
    """Record the room from the moment it starts into ``store``."""

    store: RecordingStore
    trim: bool = True
    file_format: str = "wav"  # "wav" or "mp3"


@dataclass(frozen=True)
class RoomOptions:
    """Settings of the whole room: the first participant's win, later ones are ignored."""

    observer: ConferenceObserver | None = None
    record: RecordingOptions | None = None
    time_limit: float | None = None  # seconds of audio the room may last (waiting included)


@dataclass
class ParticipantOptions:
    """How one participant takes part; the TwiML and Plivo ``<Conference>`` attributes.

    ``enter_sound`` and ``exit_sound`` replace the join and leave beeps when set (``beep``
    still says whether they play). A participant with ``stay_alone`` False makes the room end
    whenever one member is left alone in it. ``observer`` receives the events about this
    participant (besides the room's observer).
    """

    muted: bool = False
    beep: str = "true"  # true | false | onEnter | onExit
    start_on_enter: bool = True
    end_on_exit: bool = False
    wait_audio: Callable[[], MediaSource | None] | None = None  # fresh wait source; None = silence
    label: str = ""
    coach: str | None = None  # CallSid of the participant this one coaches
    max_participants: int = MAX_PARTICIPANTS  # this caller does not join a room this full
    room: RoomOptions | None = None
    enter_sound: np.ndarray | None = None
    exit_sound: np.ndarray | None = None
    stay_alone: bool = True
    observer: ConferenceObserver | None = None


@dataclass(frozen=True)
class ParticipantState:
    """A participant as it was when an event happened."""

    call_sid: str
    label: str
    muted: bool
    held: bool
    coaching: str | None
    start_on_enter: bool
    end_on_exit: bool
    talking: bool
    level_dbfs: float
    member_id: int = 0
    joined_at: float = 0.0  # wall-clock seconds since the epoch

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_sid": self.call_sid,
            "member_id": self.member_id,
            "joined_at": self.joined_at,
            "label": self.label,
            "muted": self.muted,
            "held": self.held,
            "coaching": self.coaching,
            "start_on_enter": self.start_on_enter,
            "end_on_exit": self.end_on_exit,
            "talking": self.talking,
            "level_dbfs": round(self.level_dbfs, 1),
        }


@dataclass(eq=False)
class Participant:
    call_sid: str
    options: ParticipantOptions
    joined_at: float = field(default_factory=time.time)
    muted: bool = False
    held: bool = False
    coaching: str | None = None
    wait_source: MediaSource | None = None
    relayed: list[MediaSource] = field(default_factory=list)  # mixed into what it says
    left: threading.Event = field(default_factory=threading.Event)
    leave_reason: LeaveReason | None = None
    talking: bool = False  # updated every tick while the room is started
    level_dbfs: float = SILENCE_DBFS
    seconds: float = 0.0  # audio time spent in the conference (counted in ticks)
    member_id: int = 0  # 1, 2, ... in order of joining the room
    _talk: TalkDetector = field(default_factory=TalkDetector, repr=False)

    @property
    def contributes(self) -> bool:
        return not (self.muted or self.held)

    def state(self) -> ParticipantState:
        return ParticipantState(
            self.call_sid, self.options.label, self.muted, self.held, self.coaching,
            self.options.start_on_enter, self.options.end_on_exit, self.talking, self.level_dbfs,
            self.member_id, self.joined_at,
        )


class EventKind(enum.StrEnum):
    START = "start"
    END = "end"
    JOIN = "join"
    LEAVE = "leave"
    MUTE = "mute"
    UNMUTE = "unmute"
    HOLD = "hold"
    UNHOLD = "unhold"
    MODIFY = "modify"
    SPEECH_START = "speech-start"
    SPEECH_STOP = "speech-stop"
    ANNOUNCEMENT_END = "announcement-end"
    RECORDING_START = "recording-start"
    RECORDING_END = "recording-end"
    FLOOR = "floor"  # the participant now holds the floor (the loudest talker)
    DIGITS = "digits"  # the participant's keys matched a pattern (``digits``)


# The bus kind ("conference.<topic>") of each event.
_TOPICS = {
    EventKind.MUTE: "mute", EventKind.UNMUTE: "mute",
    EventKind.HOLD: "hold", EventKind.UNHOLD: "hold",
    EventKind.SPEECH_START: "speaker", EventKind.SPEECH_STOP: "speaker",
    EventKind.ANNOUNCEMENT_END: "announcement",
    EventKind.RECORDING_START: "recording", EventKind.RECORDING_END: "recording",
}


@dataclass(frozen=True)
class ConferenceEvent:
    """Something that happened in a room.

    ``participant`` is who it happened to (join, leave, mute, hold, modify, speech); for a
    leave, ``reason`` is the :class:`LeaveReason` and ``call_ended`` whether the call hung up;
    for an end, ``reason`` is the :class:`EndReason` and ``ending`` who ended it. A leave
    caused by the room ending carries the room's ``end_reason`` too.
    """

    kind: EventKind
    participant: ParticipantState | None = None
    reason: str = ""
    end_reason: str = ""
    ending: ParticipantState | None = None
    call_ended: bool = False
    recording: RecordingResult | None = None
    announce_url: str = ""
    digits: str = ""
    timestamp: float = field(default_factory=time.time)


class ConferenceObserver(Protocol):
    """Receives every event of one room, on whatever thread caused it (the tick included):
    it must return at once."""

    def conference_event(self, conference: Conference, event: ConferenceEvent) -> None: ...


EventSink = Callable[..., Any]  # (kind, **data), as EventBus.publish


@dataclass
class _Ending:
    """A room just closed: what is left to announce."""

    reason: EndReason
    ending: ParticipantState | None
    evicted: list[Participant]
    recorder: ConferenceRecorder | None


class Conference:
    """One named room."""

    def __init__(
        self,
        name: str,
        fmt: AudioFormat,
        on_event: EventSink | None = None,
        on_ended: Callable[[Conference], None] | None = None,
    ) -> None:
        self.name = name
        self.sid = "CF" + uuid.uuid4().hex
        self.fmt = fmt
        self.state = ConferenceState.WAITING
        self.created_at = time.time()
        self.end_reason: EndReason | None = None
        self.recording_sid: str | None = None
        self.recording_url: str | None = None
        self.uuid = str(uuid.UUID(hex=self.sid[2:]))
        self.seconds = 0.0  # audio time since the room was created (counted in ticks)
        self.floor: str | None = None  # CallSid of the floor holder
        self._levels_at = 0.0  # audio time of the last "conference.level" check
        self._levels: dict[str, tuple[float, bool]] = {}  # what it last reported
        self._stay_alone = True  # once a member says False, it stays False
        self._members = 0
        self._member_observers: dict[str, ConferenceObserver] = {}
        self._participants: dict[str, Participant] = {}
        self._room: RoomOptions | None = None
        self._recorder: ConferenceRecorder | None = None
        self._announcements: list[tuple[MediaSource, str]] = []
        self._lock = threading.Lock()
        self._on_event = on_event or (lambda kind, **data: None)
        self._on_ended = on_ended
        self._join_beep = join_beep(fmt.rate)
        self._leave_beep = leave_beep(fmt.rate)

    # --- membership (interpreter threads) --------------------------------------------------

    @property
    def participants(self) -> list[Participant]:
        with self._lock:
            return list(self._participants.values())

    def participant(self, call_sid: str) -> Participant | None:
        with self._lock:
            return self._participants.get(call_sid)

    def join(self, call_sid: str, options: ParticipantOptions) -> Participant:
        """Add a call; it hears wait audio until the conference starts, then the room.

        Raises :class:`JoinRefused` when the room is full for this caller, its label is
        taken or the participant it would coach is not here; ``RuntimeError`` once ended.
        """
        participant = Participant(call_sid, options, muted=options.muted, coaching=options.coach)
        events: list[ConferenceEvent] = []
        with self._lock:
            if self.state is ConferenceState.ENDED:
                raise RuntimeError(f"conference {self.name} has ended")
            refusal = self._refusal(call_sid, options)
            closed = refusal is not None and self._room is None  # nobody ever joined
            if refusal is None:
                self._admit(participant, events)
            elif closed:
                self.state = ConferenceState.ENDED
        if refusal is not None:
            if closed and self._on_ended:
                self._on_ended(self)
            raise refusal
        log.info("%s joined conference %s (%s)", call_sid, self.name, self.state.value)
        self._emit(events)
        return participant

    def leave(self, call_sid: str, reason: LeaveReason = LeaveReason.HANGUP) -> None:
        """Remove a call (idempotent); may end the conference."""
        ended: _Ending | None = None
        with self._lock:
            participant = self._participants.pop(call_sid, None)
            if participant is None:
                return
            participant.leave_reason = reason
            end_on_exit = (participant.options.end_on_exit
                           and reason is not LeaveReason.CONFERENCE_ENDED)
            alone = (not self._stay_alone and len(self._participants) == 1
                     and reason is not LeaveReason.CONFERENCE_ENDED)
            if end_on_exit or alone or not self._participants:
                kicked = reason is LeaveReason.KICKED
                if end_on_exit:
                    why = EndReason.END_ON_EXIT_KICKED if kicked else EndReason.END_ON_EXIT_LEFT
                elif self._participants:
                    why = EndReason.MEMBER_ALONE
                else:
                    why = (EndReason.LAST_PARTICIPANT_KICKED if kicked
                           else EndReason.LAST_PARTICIPANT_LEFT)
                ended = self._close(why, participant)  # at once: nobody joins a closing room
            elif participant.options.beep in ("true", "onExit") and (
                self.state is ConferenceState.STARTED
            ):
                self._announce(participant.options.exit_sound
                               if participant.options.exit_sound is not None else self._leave_beep)
            event = ConferenceEvent(EventKind.LEAVE, participant.state(), reason=reason.value,
                                    call_ended=reason is LeaveReason.HANGUP)
        log.info("%s left conference %s (%s)", call_sid, self.name, reason.value)
        self._emit([event])
        with self._lock:
            self._member_observers.pop(call_sid, None)
        participant.left.set()
        if ended is not None:
            self._finish(ended)

    def kick(self, call_sid: str) -> None:
        self.leave(call_sid, LeaveReason.KICKED)

    def end(self, reason: EndReason = EndReason.API) -> None:
        """End the conference: every participant's Dial completes."""
        with self._lock:
            if self.state is ConferenceState.ENDED:
                return
            ended = self._close(reason, None)
        self._finish(ended)

    def _close(self, reason: EndReason, ending: Participant | None) -> _Ending:
        """Mark the room ended and empty it (lock held); :meth:`_finish` tells everyone."""
        self.state = ConferenceState.ENDED
        self.end_reason = reason
        evicted = list(self._participants.values())
        self._participants.clear()
        recorder, self._recorder = self._recorder, None
        return _Ending(reason, ending.state() if ending else None, evicted, recorder)

    def _finish(self, ended: _Ending) -> None:
        events = []
        for participant in ended.evicted:
            participant.leave_reason = LeaveReason.CONFERENCE_ENDED
            events.append(ConferenceEvent(
                EventKind.LEAVE, participant.state(), reason=LeaveReason.CONFERENCE_ENDED.value,
                end_reason=ended.reason.value))
        events.append(ConferenceEvent(EventKind.END, reason=ended.reason.value,
                                      ending=ended.ending))
        log.info("conference %s ended (%s)", self.name, ended.reason.value)
        self._emit(events)
        with self._lock:
            self._member_observers.clear()
        for participant in ended.evicted:
            participant.left.set()
        if ended.recorder is not None:
            ended.recorder.stop()
        if self._on_ended:
            self._on_ended(self)

    def set_muted(self, call_sid: str, muted: bool) -> None:
        with self._lock:
            participant = self._participants[call_sid]
            if participant.muted == muted:
                return
            participant.muted = muted
            event = ConferenceEvent(EventKind.MUTE if muted else EventKind.UNMUTE,
                                    participant.state())
        self._emit([event])

    def set_held(self, call_sid: str, held: bool) -> None:
        """Hold (the participant hears its wait audio and is not heard) or take off hold."""
        with self._lock:
            participant = self._participants[call_sid]
            if participant.held == held:
                return
            participant.held = held
            options = participant.options
            if held:
                participant.wait_source = options.wait_audio() if options.wait_audio else None
            elif self.state is ConferenceState.STARTED:
                participant.wait_source = None
            event = ConferenceEvent(EventKind.HOLD if held else EventKind.UNHOLD,
                                    participant.state())
        self._emit([event])

    def modify(self, call_sid: str, *, end_on_exit: bool | None = None, beep: str | None = None,
               coach: str | None = None, stop_coaching: bool = False) -> None:
        """Change a participant's end-on-exit, beep or coaching (a "modify" event)."""
        with self._lock:
            participant = self._participants[call_sid]
            if coach is not None:
                if coach not in self._participants or coach == call_sid:
                    raise JoinRefused(Refusal.UNKNOWN_COACH, f"{coach} is not in {self.name}")
                participant.coaching = coach
            if stop_coaching:
                participant.coaching = None
            if end_on_exit is not None:
                participant.options.end_on_exit = end_on_exit
            if beep is not None:
                participant.options.beep = beep
            event = ConferenceEvent(EventKind.MODIFY, participant.state())
        self._emit([event])

    def report_digits(self, call_sid: str, digits: str) -> None:
        """The participant's keys matched the pattern ``digits`` (a "digits" event)."""
        participant = self.participant(call_sid)
        if participant is not None:
            self._emit([ConferenceEvent(EventKind.DIGITS, participant.state(), digits=digits)])

    def relay(self, call_sid: str, source: MediaSource) -> None:
        """Mix ``source`` into what ``call_sid`` says (a relayed key): the others hear it, the
        participant itself does not (mix-minus), and nobody does while it is muted."""
        with self._lock:
            participant = self._participants.get(call_sid)
            if participant is not None:
                participant.relayed.append(source)

    def announce(self, source: MediaSource, url: str = "") -> None:
        """Play ``source`` to the whole started room; an "announcement-end" event follows."""
        with self._lock:
            self._announcements.append((source, url or "announcement"))

    # --- internal (lock held) ----------------------------------------------------------------

    def _refusal(self, call_sid: str, options: ParticipantOptions) -> JoinRefused | None:
        limit = min(options.max_participants, MAX_PARTICIPANTS)
        if len(self._participants) >= limit:
            return JoinRefused(Refusal.FULL, f"conference {self.name} has {limit} participants")
        if options.label and any(p.options.label == options.label
                                 for p in self._participants.values()):
            return JoinRefused(Refusal.DUPLICATE_LABEL,
                               f'label "{options.label}" is taken in conference {self.name}')
        if options.coach is not None and (
            options.coach == call_sid or options.coach not in self._participants
        ):
            return JoinRefused(Refusal.UNKNOWN_COACH,
                               f"coach: {options.coach} is not in conference {self.name}")
        return None

    def _admit(self, participant: Participant, events: list[ConferenceEvent]) -> None:
        options = participant.options
        if self._room is None:
            self._room = options.room or RoomOptions()
        self._members += 1
        participant.member_id = self._members
        if not options.stay_alone:
            self._stay_alone = False
        if options.observer is not None:
            self._member_observers[participant.call_sid] = options.observer
        self._participants[participant.call_sid] = participant
        events.append(ConferenceEvent(EventKind.JOIN, participant.state()))
        if self.state is ConferenceState.WAITING and self._should_start():
            self._start(events)
        if self.state is ConferenceState.STARTED:
            if options.beep in ("true", "onEnter"):
                self._announce(options.enter_sound if options.enter_sound is not None
                               else self._join_beep)
        else:
            participant.wait_source = options.wait_audio() if options.wait_audio else None

    def _should_start(self) -> bool:
        return len(self._participants) >= 2 and any(
            p.options.start_on_enter for p in self._participants.values()
        )

    def _start(self, events: list[ConferenceEvent]) -> None:
        self.state = ConferenceState.STARTED
        for participant in self._participants.values():
            if not participant.held:
                participant.wait_source = None
        log.info("conference %s started", self.name)
        events.append(ConferenceEvent(EventKind.START))
        record = self._room.record if self._room else None
        if record is not None:
            recorder = ConferenceRecorder(record.store, self.fmt, record.trim,
                                          self._recording_done, record.file_format)
            recorder.start()
            self._recorder = recorder
            self.recording_sid = recorder.sid
            self.recording_url = recorder.url
            events.append(ConferenceEvent(EventKind.RECORDING_START, recording=RecordingResult(
                recorder.sid, recorder.url, recorder.path, recorder.started_at, "in-progress")))

    def _announce(self, samples: np.ndarray) -> None:
        self._announcements.append((BufferSource(samples, self.fmt), ""))

    # --- events ------------------------------------------------------------------------------

    def _recording_done(self, result: RecordingResult) -> None:
        self._emit([ConferenceEvent(EventKind.RECORDING_END, recording=result)])

    def _emit(self, events: list[ConferenceEvent]) -> None:
        """Deliver events (never with the lock held): the bus, then the room's observer."""
        if not events:
            return
        observer = self._room.observer if self._room else None
        with self._lock:
            members = dict(self._member_observers)
        roster = [p.state().as_dict() for p in self.participants]
        for event in events:
            data: dict[str, Any] = {
                "conference": self.name, "conference_sid": self.sid, "event": event.kind.value,
                "state": self.state.value, "participants": roster,
            }
            if event.participant is not None:
                data.update(event.participant.as_dict())
            if event.reason:
                data["reason"] = event.reason
            if event.digits:
                data["digits"] = event.digits
            if event.recording is not None:
                data["recording_sid"] = event.recording.sid
                data["recording_status"] = event.recording.status
                data["recording_path"] = str(event.recording.path)
                data["recording_started"] = event.recording.started_at
                data["recording_duration"] = event.recording.duration
                data["recording_size"] = event.recording.size
            try:
                self._on_event(f"conference.{_TOPICS.get(event.kind, event.kind.value)}", **data)
            except Exception:
                log.exception("conference %s: event sink failed", self.name)
            if observer is not None:
                try:
                    observer.conference_event(self, event)
                except Exception:
                    log.exception("conference %s: observer failed on %s", self.name, event.kind)
            member = members.get(event.participant.call_sid) if event.participant else None
            if member is not None and member is not observer:
                try:
                    member.conference_event(self, event)
                except Exception:
                    log.exception("conference %s: member observer failed on %s", self.name,
                                  event.kind)

    # --- audio (tick thread) -----------------------------------------------------------------

    def mix(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One tick: what each participant hears, from what each said (``inputs`` by CallSid)."""
        finished: list[str] = []
        with self._lock:
            participants = list(self._participants.values())
            started = self.state is ConferenceState.STARTED
            announcement = self._next_announcement_frame(finished) if started else None
            recorder = self._recorder
            relays = {p.call_sid: self._next_relayed_frame(p) for p in participants if p.relayed}
            self.seconds += self.fmt.period
            limit = self._room.time_limit if self._room else None
        for participant in participants:
            participant.seconds += self.fmt.period
        # Half a tick of slack: summed periods drift (250 x 0.02 s is 4.99999...).
        if limit is not None and self.seconds >= limit - self.fmt.period / 2:
            log.info("conference %s reached its time limit (%.0f s)", self.name, limit)
            self.end(EndReason.TIME_LIMIT)
            return {}
        silence = self.fmt.silence()
        if not started:
            return {p.call_sid: self._wait_frame(p, silence) for p in participants}
        frames = {p.call_sid: inputs.get(p.call_sid, silence) for p in participants}
        for call_sid, relayed in relays.items():
            mixed = frames[call_sid].astype(np.int32) + relayed
            frames[call_sid] = np.clip(mixed, -32768, 32767).astype(np.int16)
        present = set(frames)
        contributors: list[str] = []
        listeners: list[str] = []
        private: dict[str, np.ndarray] = {}
        for p in participants:
            if not p.held:
                listeners.append(p.call_sid)
            if not p.contributes:
                continue
            if p.coaching is None:
                contributors.append(p.call_sid)
            elif p.coaching in present:  # a coach: heard by the one it coaches only
                whisper = private.get(p.coaching)
                frame = frames[p.call_sid].astype(np.int32)
                private[p.coaching] = frame if whisper is None else whisper + frame
        if recorder is not None:
            listeners.append(_RECORDER)
        outputs = mix_conference(frames, contributors, listeners, private, common=announcement)
        if recorder is not None:
            recorder.write(outputs.pop(_RECORDER))
        for p in participants:
            if p.held:
                outputs[p.call_sid] = self._wait_frame(p, silence)
        events = self._detect_speech(participants, frames)
        events += self._detect_floor(participants)
        events += [ConferenceEvent(EventKind.ANNOUNCEMENT_END, announce_url=url)
                   for url in finished]
        self._emit(events)
        self._report_levels(participants)
        return outputs

    def _report_levels(self, participants: list[Participant]) -> None:
        """Publish "conference.level" (each participant's meter) a few times a second, and
        only when a rounded level changed: the live page's meters, cheap for the tick."""
        if self.seconds - self._levels_at < LEVEL_EVERY_SECONDS - self.fmt.period / 2:
            return
        self._levels_at = self.seconds
        levels = {p.call_sid: (round(p.level_dbfs / LEVEL_STEP_DB) * LEVEL_STEP_DB, p.talking)
                  for p in participants}
        quiet = (SILENCE_DBFS, False)  # what the page shows for anyone not yet reported
        if all(self._levels.get(sid, quiet) == level for sid, level in levels.items()):
            return
        self._levels = levels
        try:
            self._on_event("conference.level", conference=self.name, conference_sid=self.sid,
                           levels={sid: {"level_dbfs": level, "talking": talking}
                                   for sid, (level, talking) in levels.items()})
        except Exception:
            log.exception("conference %s: event sink failed", self.name)

    @staticmethod
    def _detect_speech(participants: list[Participant],
                       frames: Mapping[str, np.ndarray]) -> list[ConferenceEvent]:
        """Update each participant's level and talking state; events for the changes."""
        events: list[ConferenceEvent] = []
        for p in participants:
            if p.contributes:
                change = p._talk.update(frames[p.call_sid])
                p.level_dbfs = p._talk.level_dbfs
            else:
                change = False if p._talk.talking else None
                p._talk.reset()
                p.level_dbfs = SILENCE_DBFS
            if change is not None:
                p.talking = change
                kind = EventKind.SPEECH_START if change else EventKind.SPEECH_STOP
                events.append(ConferenceEvent(kind, p.state()))
        return events

    def _detect_floor(self, participants: list[Participant]) -> list[ConferenceEvent]:
        """The loudest talker holds the floor; an event when it passes to someone else."""
        talkers = [p for p in participants if p.talking and p.contributes]
        if not talkers:
            return []
        holder = max(talkers, key=lambda p: p.level_dbfs)
        if holder.call_sid == self.floor:
            return []
        self.floor = holder.call_sid
        return [ConferenceEvent(EventKind.FLOOR, holder.state())]

    def _next_relayed_frame(self, participant: Participant) -> np.ndarray:
        """The sum of this tick's frames of a participant's relayed sources (lock held)."""
        total = np.zeros(self.fmt.samples, dtype=np.int32)
        for source in participant.relayed:
            frame = source.read_frame()
            if frame is not None:
                total += frame
        participant.relayed = [source for source in participant.relayed if not source.done]
        return total

    def _next_announcement_frame(self, finished: list[str]) -> np.ndarray | None:
        """Sum of the frames of every pending announcement (beeps may overlap); the URLs of
        announcements that ended go to ``finished``."""
        if not self._announcements:
            return None
        total = np.zeros(self.fmt.samples, dtype=np.int32)
        pending = []
        for source, url in self._announcements:
            frame = source.read_frame()
            if frame is not None:
                total += frame
            if frame is None or source.done:
                if url:
                    finished.append(url)
            else:
                pending.append((source, url))
        self._announcements = pending
        return np.clip(total, -32768, 32767).astype(np.int16)

    @staticmethod
    def _wait_frame(participant: Participant, silence: np.ndarray) -> np.ndarray:
        source = participant.wait_source
        if source is None:
            return silence
        frame = source.read_frame()
        return silence if frame is None else frame


class ConferenceRegistry:
    """Conferences by name; a name is reused once its conference has ended."""

    def __init__(self, fmt: AudioFormat, on_event: EventSink | None = None) -> None:
        self._fmt = fmt
        self._on_event = on_event
        self._by_name: dict[str, Conference] = {}
        self._lock = threading.Lock()

    def get_or_create(self, name: str) -> Conference:
        with self._lock:
            conference = self._by_name.get(name)
            if conference is None or conference.state is ConferenceState.ENDED:
                conference = Conference(name, self._fmt, self._on_event, self._forget)
                self._by_name[name] = conference
            return conference

    def get(self, name: str) -> Conference | None:
        with self._lock:
            return self._by_name.get(name)

    def active(self) -> list[Conference]:
        with self._lock:
            return list(self._by_name.values())

    def _forget(self, conference: Conference) -> None:
        with self._lock:
            if self._by_name.get(conference.name) is conference:
                del self._by_name[conference.name]
