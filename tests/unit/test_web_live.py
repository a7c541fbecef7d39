"""The live view over real HTTP: the page, the snapshot and events with participants, and the
owner's mute, hold, kick and end acting on a real ConferenceRegistry."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.media import BufferSource
from appliance.calls.conference import ConferenceState, ParticipantOptions
from appliance.events import EventBus
from appliance.web import MemorySettings, create_app
from tests.web_live_harness import FMT, WAIT, running_live, sse_events

A, B = "CA" + "a" * 32, "CA" + "b" * 32


@pytest.fixture
def web(tmp_path):
    with running_live(tmp_path) as harness:
        yield harness


def family(web, *, held_music=None):
    """Grandma and her son in the room "family" (their calls rang on the lines)."""
    web.callers.update({A: "+15557654321", B: "+15551112222"})
    room = web.conferences.get_or_create("family")
    room.join(A, ParticipantOptions(label="grandma", wait_audio=held_music))
    room.join(B, ParticipantOptions())
    return room


def test_live_page_needs_a_session_and_loads_its_script(web):
    assert web.browser().get(web.url + "/live", allow_redirects=False).status_code == 303
    page = web.login().get(web.url + "/live")
    assert page.status_code == 200
    assert '<script src="/static/live.js" defer></script>' in page.text
    assert 'id="conferences"' in page.text and 'aria-current="page">Live' in page.text


def test_api_live_lists_rooms_with_participants_callers_and_join_times(web):
    room = family(web)
    room.set_muted(B, True)
    data = web.login().get(web.url + "/api/live", headers={"Accept": "application/json"}).json()
    [conference] = data["conferences"]
    assert conference["name"] == "family" and conference["sid"] == room.sid
    assert conference["state"] == "started"
    grandma, son = conference["participants"]
    assert (grandma["call_sid"], grandma["caller"], grandma["label"]) == (A, "+15557654321",
                                                                          "grandma")
    assert son["muted"] is True and grandma["muted"] is False
    assert abs(grandma["joined_at"] - data["now"]) < 60
    assert data["callers"] == {A: "+15557654321", B: "+15551112222"}


def test_event_stream_snapshot_and_join_events_carry_the_participants(web):
    room = web.conferences.get_or_create("family")
    web.callers[A] = "+15557654321"
    room.join(A, ParticipantOptions(label="grandma"))
    client = web.login()
    with client.get(web.url + "/events", stream=True, timeout=WAIT,
                    headers={"Accept": "text/event-stream"}) as reply:
        events = sse_events(reply)
        kind, snapshot = next(events)
        assert kind == "snapshot"
        assert [p["caller"] for p in snapshot["conferences"][0]["participants"]] == [
            "+15557654321"]
        assert snapshot["conferences"][0]["state"] == "waiting"
        room.join(B, ParticipantOptions())
        kinds = {}
        while "conference.start" not in kinds:
            kind, data = next(events)
            kinds[kind] = data
        join = kinds["conference.join"]
        assert join["call_sid"] == B and join["conference_sid"] == room.sid
        assert [p["call_sid"] for p in join["participants"]] == [A, B]
        assert join["joined_at"] > 0


def test_mute_unmute_hold_unhold_change_the_conference_and_answer_json(web):
    music = np.full(FMT.samples, 1234, dtype=np.int16)

    def hold_music():
        return BufferSource(np.tile(music, 50), FMT, loop=0)

    room = family(web, held_music=hold_music)
    client = web.login()
    token = web.token(client)
    base = f"/api/live/{room.sid}/{A}"

    reply = web.act(client, base + "/mute", token)
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"] == "+15557654321 muted."
    assert room.participant(A).muted is True
    assert reply.json()["conference"]["participants"][0]["muted"] is True
    web.act(client, base + "/unmute", token).raise_for_status()
    assert room.participant(A).muted is False

    web.act(client, base + "/hold", token).raise_for_status()
    assert room.participant(A).held is True
    heard = room.mix({A: FMT.silence(), B: FMT.silence()})
    assert np.array_equal(heard[A], music), "a held participant hears the hold music"
    web.act(client, base + "/unhold", token).raise_for_status()
    assert room.participant(A).held is False


def test_kick_removes_the_participant_and_end_ends_the_conference(web):
    room = family(web)
    client = web.login()
    token = web.token(client)
    reply = web.act(client, f"/api/live/{room.sid}/{B}/kick", token)
    assert reply.status_code == 200 and reply.json()["message"] == "+15551112222 removed."
    assert [p.call_sid for p in room.participants] == [A]
    reply = web.act(client, f"/api/live/{room.sid}/end", token)
    assert reply.status_code == 200
    assert room.state is ConferenceState.ENDED
    assert web.conferences.active() == []


def test_acting_on_someone_who_left_or_a_room_that_ended_is_a_clear_404(web):
    room = family(web)
    client = web.login()
    token = web.token(client)
    room.leave(B)
    reply = web.act(client, f"/api/live/{room.sid}/{B}/mute", token)
    assert reply.status_code == 404
    assert reply.json()["error"] == "+15551112222 has already left the conference."
    reply = web.act(client, f"/api/live/{room.sid}/{A}/dance", token)
    assert reply.status_code == 404 and "no action" in reply.json()["error"]
    room.end()
    reply = web.act(client, f"/api/live/{room.sid}/{A}/mute", token)
    assert reply.status_code == 404 and reply.json()["error"] == "That conference has ended."
    reply = web.act(client, f"/api/live/{room.sid}/end", token)
    assert reply.status_code == 404


def test_actions_without_the_csrf_header_are_refused_and_change_nothing(web):
    room = family(web)
    client = web.login()
    reply = web.act(client, f"/api/live/{room.sid}/{A}/mute")
    assert reply.status_code == 403
    assert room.participant(A).muted is False
    reply = web.act(client, f"/api/live/{room.sid}/{A}/mute", "not-the-token")
    assert reply.status_code == 403
    assert room.participant(A).muted is False


def test_a_new_room_with_an_old_name_is_not_touched_by_the_old_rooms_buttons(web):
    old = family(web)
    old.end()
    new = web.conferences.get_or_create("family")
    new.join(A, ParticipantOptions())
    client = web.login()
    reply = web.act(client, f"/api/live/{old.sid}/end", web.token(client))
    assert reply.status_code == 404
    assert new.state is ConferenceState.WAITING


def test_without_a_registry_the_snapshot_has_only_the_lines():
    app = create_app(MemorySettings(), EventBus())
    assert app.ctx.streams.snapshot() == {"lines": {}}
