"""A call's own recordings: the <Record> verb's take of the caller and Plivo's recordSession,
from start to the signed status callback.

The interpreter thread starts a take and waits for its end (a key, or the tick's verdict on
silence and length, or the hang-up); the file is written by the recorder's thread, which
also queues the status callback (Twilio's recordingStatusCallback with RecordingSource
``RecordVerb``, or Plivo's callbackUrl) on the :class:`~appliance.webhooks.WebhookSender`.
"""

from __future__ import annotations

import logging
import queue

from appliance.calls.call import KEY_POLL_SECONDS, Call
from appliance.calls.caller_recording import HANGUP, CallerRecording, SessionRecording
from appliance.calls.plivo_callbacks import record_callback_params
from appliance.calls.recording import Recorder, RecordingResult, RecordingStore, writable_format
from appliance.calls.twilio_callbacks import record_verb_params
from appliance.twiml.record import (
    RecordOutcome,
    RecordRequest,
    SessionRecordingStarted,
    StatusCallback,
)
from appliance.webhooks import WebhookSender

log = logging.getLogger(__name__)

WRITER_TIMEOUT = 30.0  # the writer finishes a file within this once the take has ended


class CallRecordings:
    """Records ``call`` into ``store``; callbacks go out through ``webhooks``."""

    def __init__(self, call: Call, store: RecordingStore, account_sid: str,
                 webhooks: WebhookSender | None) -> None:
        self._call = call
        self._store = store
        self._account_sid = account_sid
        self._webhooks = webhooks

    def record(self, request: RecordRequest) -> RecordOutcome | None:
        """Record what the caller says until a key of ``finish_on_key``, the silence timeout,
        the maximum length or the hang-up; None if the call has no audio or the file could
        not be finished."""
        port = self._call.port
        if port is None:
            return None
        callback = request.callback
        # The take ends on the call's audio clock: its start plus the audio taken.
        recorder = Recorder(self._store, port.fmt, request.trim,
                            lambda result: self._report(callback, result,
                                                        result.started_at + take.seconds),
                            writable_format(request.file_format), drop_silent=request.drop_silent)
        take = CallerRecording(recorder, port.fmt.rate, request.max_seconds,
                               request.silence_seconds)
        self._call.discard_keys()  # a key pressed during the prompt does not end the take
        recorder.start()
        self._in_progress(callback, recorder)
        self._call.add_tap(take)
        try:
            while not take.finished.is_set():
                if self._call.hung_up.is_set():
                    take.stop(HANGUP)
                    break
                try:
                    key = self._call.keys.get(timeout=KEY_POLL_SECONDS)
                except queue.Empty:
                    continue
                if key in request.finish_on_key:
                    take.stop(key, drop_tail=True)
        finally:
            self._call.remove_tap(take)
        result = recorder.wait(WRITER_TIMEOUT)
        if result is None:
            log.error("call %s: recording %s was not finished in time", self._call.sid,
                      recorder.sid)
            return None
        log.info("call %s: <Record> %s ended by %s after %.1f s", self._call.sid, result.sid,
                 take.reason, take.seconds)
        return RecordOutcome(result.sid, result.url, result.duration, take.reason or HANGUP,
                             result.started_at, result.started_at + take.seconds,
                             empty=result.status == "absent")

    def record_session(self, file_format: str, stereo: bool, max_seconds: float | None,
                       callback: StatusCallback | None) -> SessionRecordingStarted | None:
        """Record both directions from now until the call ends (Plivo's recordSession)."""
        port = self._call.port
        if port is None:
            return None
        recorder = Recorder(self._store, port.fmt, False,
                            lambda result: self._report(callback, result,
                                                        result.started_at + result.duration),
                            writable_format(file_format), channels=2 if stereo else 1)
        recorder.start()
        if not self._call.add_tap(SessionRecording(recorder, port.fmt.rate, max_seconds,
                                                   stereo)):
            return None
        log.info("call %s: recording the session as %s", self._call.sid, recorder.sid)
        return SessionRecordingStarted(recorder.sid, recorder.url, recorder.started_at)

    # --- callbacks (the recorder's thread, or the interpreter's for in-progress) -------------

    def _in_progress(self, callback: StatusCallback | None, recorder: Recorder) -> None:
        if callback is None or callback.dialect == "plivo" or "in-progress" not in callback.events:
            return
        started = RecordingResult(recorder.sid, recorder.url, recorder.path, recorder.started_at,
                                  "in-progress")
        self._send(callback, record_verb_params(self._account_sid, self._call.sid, started))

    def _report(self, callback: StatusCallback | None, result: RecordingResult,
                ended_at: float) -> None:
        if callback is None:
            return
        if callback.dialect == "plivo":
            if result.status == "completed":
                params = record_callback_params(result, ended_at)
                self._send(callback, {**params, "CallUUID": self._call.sid})
            return
        wanted = {result.status} | ({"failed"} if result.status == "absent" else set())
        if wanted & set(callback.events):
            self._send(callback, record_verb_params(self._account_sid, self._call.sid, result))

    def _send(self, callback: StatusCallback, params: dict[str, str]) -> None:
        if self._webhooks is None:
            log.warning("call %s: no webhook sender; %s not notified", self._call.sid,
                        callback.url)
            return
        self._webhooks.send(callback.url, callback.method, params)
