"""The rooms pages: list, create, edit (with the TwiML the room is served as), delete."""

from __future__ import annotations

import logging
from typing import Any

import bottle
from bottle import request, response

from appliance.store.errors import NotFoundError, ValidationError
from appliance.store.rooms import WAIT_MUSIC_DEFAULT, WAIT_MUSIC_NONE, Room
from appliance.web import room_form, room_twiml
from appliance.web.access import current_session
from appliance.web.context import WebContext
from appliance.web.render import render
from appliance.web.room_media import MediaRefused
from appliance.web.room_services import RoomServices
from appliance.web.sessions import Session

log = logging.getLogger(__name__)

UPLOAD_SLACK = 256 * 1024  # the other fields of a form that carries a file
STYLES = ["rooms.css"]


def install(app: bottle.Bottle, ctx: WebContext, services: RoomServices) -> None:
    """Add /rooms and its forms to ``app``."""

    def session_of_request() -> Session:
        session = current_session(request)
        assert session is not None, "the access guard admits only sessions here"
        return session

    def room_or_404(room_id: int) -> Room:
        try:
            return services.rooms.get(room_id)
        except NotFoundError:
            raise bottle.HTTPError(404, "no such room") from None

    def form_page(form: room_form.RoomForm, room: Room | None, status: int = 200) -> str:
        response.status = status
        music = [(WAIT_MUSIC_DEFAULT, "The bundled hold music"),
                 (WAIT_MUSIC_NONE, "None (silence)")]
        music += [(name, name) for name in services.media.names()]
        if form.wait_music not in {value for value, _ in music} | {room_form.UPLOAD}:
            music.append((form.wait_music, form.wait_music))
        music.append((room_form.UPLOAD, "Upload a new file…"))
        twiml = []
        if room is not None:
            twiml.append(("Callers", f"/voice/room/{room.id}", room_twiml.room_document(room)))
            if room.moderator_pin:
                twiml.append(("The moderator", f"/voice/room/{room.id}/moderator",
                              room_twiml.room_document(room, moderator=True)))
        return render("room_form", ctx=ctx, session=session_of_request(), styles=STYLES,
                      form=form, room=room,
                      music=music, beeps=room_form.BEEPS, day_names=room_form.DAYS,
                      upload=room_form.UPLOAD, twiml=twiml,
                      max_mb=services.media.max_bytes // 1024 // 1024)

    def submitted() -> tuple[room_form.RoomForm, Room | None]:
        """The posted form, its upload saved; the Room, or None with the form's errors set."""
        forms = request.forms.decode()
        form = room_form.from_post(forms, forms.getall)
        if form.wait_music == room_form.UPLOAD:
            name, problem = save_upload()
            if problem:
                form.errors["wait_music"] = problem
                form.wait_music = WAIT_MUSIC_DEFAULT
                return form, None
            form.wait_music = name
        room, errors = room_form.to_room(form)
        form.errors.update(errors)
        return form, room

    def save_upload() -> tuple[str, str]:
        """(the saved file's name, "") or ("", why it was refused)."""
        if (request.content_length or 0) > services.media.max_bytes + UPLOAD_SLACK:
            return "", (f"The file is too big: at most "
                        f"{services.media.max_bytes // 1024 // 1024} MB.")
        upload = request.files.get("wait_file")
        if upload is None:
            return "", "Choose an audio file to upload, or another kind of wait music."
        raw_name = upload.raw_filename
        if isinstance(raw_name, bytes):  # pragma: no cover - bottle gives str on Python 3
            raw_name = raw_name.decode("utf-8", "replace")
        try:
            name = services.media.save(raw_name, upload.file)
        except MediaRefused as exc:
            log.info("rooms: upload %r refused: %s", raw_name, exc)
            return "", str(exc)
        log.info("rooms: wait music %r uploaded", name)
        return name, ""

    def refused(form: room_form.RoomForm, room: Room | None, exc: ValidationError) -> str:
        form.errors.update(room_form.field_errors(form, exc.errors))
        return form_page(form, room, 400)

    @app.get("/rooms")
    def rooms_list() -> str:
        return render("rooms", ctx=ctx, session=session_of_request(), styles=STYLES,
                      rooms=services.rooms.list(), beeps=dict(room_form.BEEPS))

    @app.get("/rooms/new")
    def new_room() -> str:
        return form_page(room_form.RoomForm(), None)

    @app.post("/rooms")
    def create_room() -> Any:
        form, room = submitted()
        if room is None:
            return form_page(form, None, 400)
        try:
            created = services.rooms.create(room)
        except ValidationError as exc:
            return refused(form, None, exc)
        log.info("rooms: room %r created", created.name)
        session_of_request().flash("ok", f"Room “{created.name}” is ready.")
        bottle.redirect(f"/rooms/{created.id}", 303)

    @app.get("/rooms/<room_id:int>")
    def edit_room(room_id: int) -> str:
        return form_page(room_form.from_room(room_or_404(room_id)), room_or_404(room_id))

    @app.post("/rooms/<room_id:int>")
    def update_room(room_id: int) -> Any:
        current = room_or_404(room_id)
        form, room = submitted()
        if room is None:
            return form_page(form, current, 400)
        changes = {name: getattr(room, name) for name in room.to_document()}
        try:
            updated = services.rooms.update(room_id, **changes)
        except NotFoundError:
            raise bottle.HTTPError(404, "no such room") from None
        except ValidationError as exc:
            return refused(form, current, exc)
        log.info("rooms: room %r saved", updated.name)
        session_of_request().flash("ok", f"Room “{updated.name}” is saved.")
        bottle.redirect(f"/rooms/{room_id}", 303)

    @app.get("/rooms/<room_id:int>/delete")
    def confirm_delete(room_id: int) -> str:
        return render("room_delete", ctx=ctx, session=session_of_request(), styles=STYLES,
                      room=room_or_404(room_id))

    @app.post("/rooms/<room_id:int>/delete")
    def delete_room(room_id: int) -> Any:
        room = room_or_404(room_id)
        try:
            services.rooms.delete(room_id)
        except NotFoundError:
            raise bottle.HTTPError(404, "no such room") from None
        log.info("rooms: room %r deleted", room.name)
        session_of_request().flash("ok", f"Room “{room.name}” is deleted.")
        bottle.redirect("/rooms", 303)
