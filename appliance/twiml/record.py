"""What the interpreter asks of a call for <Record>, what it gets back, and the parameters each
dialect sends for it to the ``action`` URL.

TwiML (Twilio's <Record> reference): RecordingUrl, RecordingDuration, RecordingSid and Digits
(the key that ended it, or "hangup"). Plivo (Plivo's <Record> reference): RecordUrl,
RecordingID, RecordingDuration, RecordingDurationMs, RecordingStartMs, RecordingEndMs and
Digits. A recording that ended on silence or at its maximum length sends an empty Digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.audio.tones import tone_sequence
from appliance.twiml.verbs import Record

UNLIMITED_SESSION = -1  # Plivo's duration of a recordSession still under way at the action
TWILIO_BEEP = [(1000.0, 500.0)]  # Twilio's <Record> beep lasts half a second
# The Plivo framework's beep before <Record> and after <GetDigits> prompts:
# FreeSWITCH's tone_stream://%(300,200,700), 300 ms of 700 Hz then 200 ms of silence.
PLIVO_BEEP = [(700.0, 300.0), (0.0, 200.0)]


def beep(rate: int, dialect: str) -> np.ndarray:
    """The beep before a recording (or after <GetDigits> prompts) in ``dialect``."""
    return tone_sequence(PLIVO_BEEP if dialect == "plivo" else TWILIO_BEEP, rate)


@dataclass(frozen=True)
class StatusCallback:
    """Where the finished recording is announced: Twilio's recordingStatusCallback (with its
    ``events``) or Plivo's callbackUrl (``dialect`` "plivo")."""

    url: str
    method: str = "POST"
    events: tuple[str, ...] = ("completed",)
    dialect: str = "twiml"


@dataclass(frozen=True)
class RecordRequest:
    """One take of the caller's voice; limits in seconds of the call's audio."""

    max_seconds: float
    silence_seconds: float = 0.0  # 0: no silence timeout
    finish_on_key: str = ""  # any of these keys ends it ("" for none)
    trim: bool = False
    file_format: str = "wav"
    drop_silent: bool = False  # TwiML: a recording with no sound is no recording
    callback: StatusCallback | None = None

    @classmethod
    def for_verb(cls, verb: Record, dialect: str,
                 callback: StatusCallback | None = None) -> RecordRequest:
        """The request for ``verb`` in a document of ``dialect``."""
        twiml = dialect != "plivo"
        return cls(
            max_seconds=float(verb.max_length),
            silence_seconds=float(verb.timeout),
            finish_on_key=verb.finish_on_key,
            trim=verb.trim == "trim-silence",
            file_format=verb.file_format,
            drop_silent=twiml,
            callback=callback,
        )


@dataclass(frozen=True)
class RecordOutcome:
    """A finished take: ``ended_by`` is the key pressed, "hangup", "timeout" or "max-length";
    ``empty`` when nothing was heard (TwiML drops such a recording). Times are epoch seconds."""

    sid: str
    url: str
    duration: float  # seconds in the file
    ended_by: str
    started_at: float
    ended_at: float
    empty: bool = False

    @property
    def digits(self) -> str:
        """Digits for the action: the key, "hangup", or "" (silence, maximum length)."""
        return "" if self.ended_by in ("timeout", "max-length") else self.ended_by

    def twilio_params(self) -> dict[str, str]:
        return {
            "RecordingUrl": self.url,
            "RecordingDuration": str(round(self.duration)),
            "RecordingSid": self.sid,
            "Digits": self.digits,
        }

    def plivo_params(self) -> dict[str, str]:
        return {
            "RecordUrl": self.url,
            "RecordingID": self.sid,
            "RecordingDuration": str(round(self.duration)),
            "RecordingDurationMs": str(round(self.duration * 1000)),
            "RecordingStartMs": str(round(self.started_at * 1000)),
            "RecordingEndMs": str(round(self.ended_at * 1000)),
            "Digits": self.digits,
        }


@dataclass(frozen=True)
class SessionRecordingStarted:
    """Plivo's recordSession: the recording runs on in the background until the call ends."""

    sid: str
    url: str
    started_at: float

    def plivo_params(self) -> dict[str, str]:
        """The action's parameters: no duration yet (the Plivo framework sends -1 too)."""
        return {
            "RecordUrl": self.url,
            "RecordingID": self.sid,
            "RecordingDuration": str(UNLIMITED_SESSION),
            "RecordingDurationMs": str(UNLIMITED_SESSION),
            "RecordingStartMs": str(round(self.started_at * 1000)),
            "RecordingEndMs": str(UNLIMITED_SESSION),
            "Digits": "",
        }
