"""Conferences as an explicit state machine (as Asterisk's ConfBridge keeps them).

A conference is *waiting* until it starts (at least two participants, one of whom has
``start_on_enter``), *started* while people talk, and *ended* once the last participant leaves or
an ``end_on_exit`` participant does. Participants who wait hear their own wait audio and are not
heard; once started, every tick mixes the room with :func:`appliance.mixer.mix_conference`.

Methods that change membership run on interpreter threads; :meth:`Conference.mix` runs on the
tick thread. One lock guards the membership; mixing works on a snapshot taken under it.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from appliance.audio.frames import AudioFormat
from appliance.audio.media import BufferSource, MediaSource
from appliance.audio.tones import join_beep, leave_beep
from appliance.mixer import mix_conference

log = logging.getLogger(__name__)


class ConferenceState(enum.Enum):
    WAITING = "waiting"  # participants present, not started: each hears its wait audio
    STARTED = "started"
    ENDED = "ended"


class LeaveReason(enum.StrEnum):
    HANGUP = "participant-hung-up"  # the caller hung up
    CONFERENCE_ENDED = "conference-ended"  # an end-on-exit participant left, or the room ended
    KICKED = "participant-removed"
    HANGUP_ON_STAR = "participant-pressed-star"


@dataclass
class ParticipantOptions:
    """How one participant takes part; mirrors the TwiML ``<Conference>`` attributes."""

    muted: bool = False
    beep: str = "true"  # true | false | onEnter | onExit
    start_on_enter: bool = True
    end_on_exit: bool = False
    wait_audio: Callable[[], MediaSource | None] | None = None  # fresh wait source; None = silence
    label: str = ""


@dataclass(eq=False)
class Participant:
    call_sid: str
    options: ParticipantOptions
    joined_at: float = field(default_factory=time.time)
    muted: bool = False
    held: bool = False
    wait_source: MediaSource | None = None
    left: threading.Event = field(default_factory=threading.Event)
    leave_reason: LeaveReason | None = None

    @property
    def contributes(self) -> bool:
        return not (self.muted or self.held)


EventSink = Callable[..., None]  # (kind, **data)


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
        self._participants: dict[str, Participant] = {}
        self._announcements: list[MediaSource] = []
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

    def join(self, call_sid: str, options: ParticipantOptions) -> Participant:
        """Add a call; it hears wait audio until the conference starts, then the room."""
        participant = Participant(call_sid, options, muted=options.muted)
        with self._lock:
            if self.state is ConferenceState.ENDED:
                raise RuntimeError(f"conference {self.name} has ended")
            self._participants[call_sid] = participant
            if self.state is ConferenceState.WAITING and self._should_start():
                self._start()
            if self.state is ConferenceState.STARTED:
                if options.beep in ("true", "onEnter"):
                    self._announce(self._join_beep)
            else:
                participant.wait_source = options.wait_audio() if options.wait_audio else None
        self._on_event("conference.join", conference=self.name, call_sid=call_sid)
        log.info("%s joined conference %s (%s)", call_sid, self.name, self.state.value)
        return participant

    def leave(self, call_sid: str, reason: LeaveReason = LeaveReason.HANGUP) -> None:
        """Remove a call (idempotent); may end the conference."""
        with self._lock:
            participant = self._participants.pop(call_sid, None)
            if participant is None:
                return
            participant.leave_reason = reason
            participant.left.set()
            remaining = bool(self._participants)
            end = not remaining or (
                participant.options.end_on_exit and reason is not LeaveReason.CONFERENCE_ENDED
            )
            beeps = participant.options.beep in ("true", "onExit")
            if not end and beeps and self.state is ConferenceState.STARTED:
                self._announce(self._leave_beep)
        self._on_event("conference.leave", conference=self.name, call_sid=call_sid,
                       reason=reason.value)
        log.info("%s left conference %s (%s)", call_sid, self.name, reason.value)
        if end:
            self.end()

    def end(self) -> None:
        """End the conference: every participant's Dial completes."""
        with self._lock:
            if self.state is ConferenceState.ENDED:
                return
            self.state = ConferenceState.ENDED
            evicted = list(self._participants.values())
            self._participants.clear()
        for participant in evicted:
            participant.leave_reason = LeaveReason.CONFERENCE_ENDED
            participant.left.set()
            self._on_event("conference.leave", conference=self.name,
                           call_sid=participant.call_sid,
                           reason=LeaveReason.CONFERENCE_ENDED.value)
        self._on_event("conference.end", conference=self.name)
        log.info("conference %s ended", self.name)
        if self._on_ended:
            self._on_ended(self)

    def set_muted(self, call_sid: str, muted: bool) -> None:
        with self._lock:
            self._participants[call_sid].muted = muted
        self._on_event("conference.mute", conference=self.name, call_sid=call_sid, muted=muted)

    # --- internal (lock held) ----------------------------------------------------------------

    def _should_start(self) -> bool:
        return len(self._participants) >= 2 and any(
            p.options.start_on_enter for p in self._participants.values()
        )

    def _start(self) -> None:
        self.state = ConferenceState.STARTED
        for participant in self._participants.values():
            participant.wait_source = None
        log.info("conference %s started", self.name)
        self._on_event("conference.start", conference=self.name)

    def _announce(self, samples: np.ndarray) -> None:
        self._announcements.append(BufferSource(samples, self.fmt))

    # --- audio (tick thread) -----------------------------------------------------------------

    def mix(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One tick: what each participant hears, from what each said (``inputs`` by CallSid)."""
        with self._lock:
            participants = list(self._participants.values())
            started = self.state is ConferenceState.STARTED
            announcement = self._next_announcement_frame() if started else None
        silence = self.fmt.silence()
        if not started:
            return {p.call_sid: self._wait_frame(p, silence) for p in participants}
        frames = {p.call_sid: inputs.get(p.call_sid, silence) for p in participants}
        contributors = [p.call_sid for p in participants if p.contributes]
        listeners = [p.call_sid for p in participants if not p.held]
        outputs = mix_conference(frames, contributors, listeners, common=announcement)
        for p in participants:
            if p.held:
                outputs[p.call_sid] = self._wait_frame(p, silence)
        return outputs

    def _next_announcement_frame(self) -> np.ndarray | None:
        """Sum of the frames of every pending announcement (beeps may overlap)."""
        if not self._announcements:
            return None
        total = np.zeros(self.fmt.samples, dtype=np.int32)
        for source in self._announcements:
            frame = source.read_frame()
            if frame is not None:
                total += frame
        self._announcements = [s for s in self._announcements if not s.done]
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
        self._counter = itertools.count(1)

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
