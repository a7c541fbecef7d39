"""The rule files page: list, upload, create and edit (checked by the call parser), delete,
and each line's choice of call rules."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any
from urllib.parse import quote

import bottle
from bottle import request, response

from appliance.twiml.parse import TwimlError
from appliance.web.access import current_session
from appliance.web.context import WebContext
from appliance.web.line_rules import CONFIG, ROOMS, RULE_PREFIX, URL, LineRules, stored_value
from appliance.web.render import render
from appliance.web.rule_files import (
    RuleFiles,
    RuleRefused,
    name_problem,
    normalise,
    problems_of,
)
from appliance.web.sessions import Session

log = logging.getLogger(__name__)

STYLES = ["rooms.css", "rules.css"]
SCRIPTS = ["confirm.js"]
FORM_SLACK = 64 * 1024  # the other fields of a form that carries a file
NEW_DOCUMENT = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                "<Response>\n  <Say>Hello.</Say>\n</Response>\n")
MISSING = "There is no such rule file (it may have been deleted)."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def install(app: bottle.Bottle, ctx: WebContext, files: RuleFiles, lines: LineRules) -> None:
    """Add /rules, its editor, upload, delete and the lines' choices to ``app``."""

    def session_of_request() -> Session:
        session = current_session(request)
        assert session is not None, "the access guard admits only sessions here"
        return session

    def list_page(status: int = 200, *, upload_error: str = "",
                  upload_problems: list[TwimlError] | None = None,
                  line_errors: dict[str, str] | None = None,
                  typed: dict[str, tuple[str, str]] | None = None, error: str = "") -> str:
        response.status = status
        rows = lines.rows()
        if typed:  # a refused lines form shows what was chosen, not what is stored
            rows = [dataclasses.replace(row, choice=typed[row.name][0], url=typed[row.name][1])
                    if row.name in typed else row for row in rows]
        names = files.names()
        users = {name: lines.users_of(name) for name in names}
        return render("rules", ctx=ctx, session=session_of_request(), styles=STYLES,
                      scripts=SCRIPTS, title="Rule files", names=names, users=users,
                      rows=rows, line_errors=line_errors or {}, upload_error=upload_error,
                      upload_problems=upload_problems or [], error=error,
                      max_kb=files.max_bytes // 1024, CONFIG=CONFIG, ROOMS=ROOMS, URL=URL,
                      RULE_PREFIX=RULE_PREFIX)

    def editor(name: str, text: str, *, new: bool, problems: list[TwimlError],
               message: str = "", status: int = 200) -> str:
        response.status = status
        text = normalise(text)  # as it would be saved: line numbers match the problems
        return render("rule_form", ctx=ctx, session=session_of_request(), styles=STYLES,
                      title=name or "New rule file", name=name, text=text, new=new,
                      problems=problems, message=message, max_kb=files.max_bytes // 1024,
                      users=lines.users_of(name) if not new else [])

    def saved(name: str, warnings: list[TwimlError], verb: str) -> Any:
        note = f" with {_plural(len(warnings), 'warning')}" if warnings else ""
        session_of_request().flash("ok", f"Rule file “{name}” {verb}{note}.")
        log.info("rules: %s %s%s", name, verb, note)
        bottle.redirect("/rules/" + quote(name), 303)

    @app.get("/rules")
    def rules_list() -> str:
        return list_page()

    @app.get("/rules/new")
    def new_rule() -> str:
        return editor("", NEW_DOCUMENT, new=True, problems=[])

    @app.post("/rules/upload")
    def upload_rule() -> Any:
        if (request.content_length or 0) > files.max_bytes + FORM_SLACK:
            return list_page(413, upload_error=f"The file is too big: at most "
                                               f"{files.max_bytes // 1024} KB.")
        upload = request.files.get("rule_file")
        if upload is None or not upload.raw_filename:
            return list_page(400, upload_error="Choose a TwiML or Plivo XML file to upload.")
        raw_name = upload.raw_filename
        if isinstance(raw_name, bytes):  # pragma: no cover - bottle gives str on Python 3
            raw_name = raw_name.decode("utf-8", "replace")
        try:
            with lines.lock:
                warnings = files.save_upload(raw_name, upload.file)
        except RuleRefused as exc:
            log.info("rules: upload %r refused: %s", raw_name, exc)
            return list_page(400, upload_error=str(exc), upload_problems=exc.problems)
        return saved(raw_name, warnings, "uploaded")

    @app.post("/rules/lines")
    def choose_lines() -> Any:
        forms = request.forms.decode()
        values: dict[str, str | None] = {}
        errors: dict[str, str] = {}
        typed: dict[str, tuple[str, str]] = {}
        with lines.lock:
            for index, row in enumerate(lines.rows()):
                choice = forms.get(f"choice_{index}", CONFIG)
                url = forms.get(f"url_{index}", "")
                typed[row.name] = (choice, url)
                value, problem = stored_value(choice, url, files)
                if problem:
                    errors[row.name] = problem
                else:
                    values[row.name] = value
            if errors:
                return list_page(400, line_errors=errors, typed=typed)
            lines.replace(values)
        log.info("rules: line choices saved: %s",
                 {line: value or "config.toml" for line, value in values.items()})
        session_of_request().flash("ok", "The lines' call rules are saved; the next call on "
                                         "each line follows them.")
        bottle.redirect("/rules", 303)

    @app.post("/rules")
    def create_rule() -> Any:
        forms = request.forms.decode()
        name, text = forms.get("name", "").strip(), forms.get("text", "")
        try:
            with lines.lock:
                warnings = files.save(name, text, new=True)
        except RuleRefused as exc:
            return editor(name, text, new=True, problems=exc.problems, message=str(exc),
                          status=400)
        return saved(name, warnings, "created")

    @app.get("/rules/<name>")
    def edit_rule(name: str) -> Any:
        if files.path(name) is None:
            raise bottle.HTTPError(404, MISSING)
        text = files.read(name)
        # What the parser says of it now: its warnings, or errors from an edit made elsewhere.
        return editor(name, text, new=False, problems=problems_of(text))

    @app.post("/rules/<name>")
    def update_rule(name: str) -> Any:
        if files.path(name) is None:
            raise bottle.HTTPError(404, MISSING)
        text = request.forms.decode().get("text", "")
        try:
            with lines.lock:
                warnings = files.save(name, text, new=False)
        except FileNotFoundError:
            raise bottle.HTTPError(404, MISSING) from None
        except RuleRefused as exc:
            return editor(name, text, new=False, problems=exc.problems, message=str(exc),
                          status=400)
        return saved(name, warnings, "saved")

    @app.post("/rules/<name>/delete")
    def delete_rule(name: str) -> Any:
        with lines.lock:
            if name_problem(name) is not None or files.path(name) is None:
                raise bottle.HTTPError(404, MISSING)
            users = lines.users_of(name)
            if users:
                return list_page(409, error=(
                    f"“{name}” was not deleted: line{'s' if len(users) > 1 else ''} "
                    f"{', '.join(users)} run{'' if len(users) > 1 else 's'} it. Choose other "
                    "call rules for them first."))
            files.delete(name)
        log.info("rules: %s deleted", name)
        session_of_request().flash("ok", f"Rule file “{name}” is deleted.")
        bottle.redirect("/rules", 303)

