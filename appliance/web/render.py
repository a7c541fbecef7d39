"""Pages from bottle SimpleTemplate files (``templates/*.tpl``; ``{{ }}`` escapes HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import bottle

if TYPE_CHECKING:
    from appliance.web.context import WebContext
    from appliance.web.sessions import Session

TEMPLATE_DIR = Path(__file__).with_name("templates")
# One list for the process: bottle caches compiled templates by the lookup list's id.
_LOOKUP = [str(TEMPLATE_DIR)]
FALLBACK_NAME = "Conference line"


def render(template: str, *, ctx: WebContext | None, session: Session | None,
           **values: Any) -> str:
    """``template`` in the site layout; a session's flash messages are shown (and spent)."""
    values.setdefault("csrf_token", session.csrf_token if session else "")
    values.setdefault("page", template)
    values.setdefault("scripts", [])
    return bottle.template(
        template,
        template_lookup=_LOOKUP,
        appliance_name=ctx.appliance_name() if ctx else FALLBACK_NAME,
        logged_in=session is not None,
        flashes=session.take_flashes() if session else [],
        **values,
    )
