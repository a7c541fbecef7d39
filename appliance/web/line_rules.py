"""Each line's call rules as chosen on the page, kept in the settings' ``line_voice_urls``.

A line with no entry runs ``config.toml``'s ``voice_url``. An entry is one of:

- ``rooms``: the built-in room entry (as ``voice_url = "rooms"`` in the config);
- ``rule:<name>``: a rule file in ``data_dir/rules`` (run from its ``file:`` URL);
- an ``http://`` or ``https://`` URL.

The daemon reads the entry when a call arrives (:func:`voice_url_for`), so a change applies to
the next call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from appliance.web.rule_files import RuleFiles, name_problem
from appliance.web.settings import SettingsStore

log = logging.getLogger(__name__)

SETTING = "line_voice_urls"
CONFIG = "config"  # the form's value for "no entry": config.toml decides
ROOMS = "rooms"
URL = "url"  # the form's value for "the URL typed beside it"
RULE_PREFIX = "rule:"
MAX_URL = 2048

Lines = Callable[[], list[tuple[str, str]]]  # [(line name, config.toml's voice_url)]


def no_lines() -> list[tuple[str, str]]:
    return []


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a line's voice URL, or None."""
    if not url:
        return "Type the URL of the TwiML or Plivo XML document."
    if len(url) > MAX_URL:
        return f"The URL is too long (at most {MAX_URL} characters)."
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "The URL must not contain spaces or control characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "That is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "The URL must start with http:// or https://."
    if not parts.hostname:
        return "The URL must name a host, e.g. https://example.com/voice.xml."
    if parts.username or parts.password:
        return "Leave user names and passwords out of the URL."
    return None


def voice_url_for(choice: str | None, rules: RuleFiles) -> str | None:
    """The voice_url a stored choice stands for (``rooms``, a file: URL, an http(s) URL), or
    None when the line follows config.toml (no choice, or one that is not valid)."""
    if not choice:
        return None
    if choice == ROOMS:
        return ROOMS
    if choice.startswith(RULE_PREFIX):
        name = choice[len(RULE_PREFIX):]
        if name_problem(name) is None:
            if rules.path(name) is None:  # fetching it fails: the caller hears the apology
                log.warning("rule file %s is missing from %s", name, rules.folder)
            return rules.url(name)
    elif url_problem(choice) is None:
        return choice
    log.warning("stored voice_url choice %r is not valid; using config.toml's", choice)
    return None


@dataclass(frozen=True)
class LineChoice:
    """One line's row on the page."""

    name: str
    config_url: str
    choice: str  # CONFIG, ROOMS, URL or RULE_PREFIX + name
    url: str  # the typed URL when ``choice`` is URL

    @property
    def rule(self) -> str:
        return self.choice[len(RULE_PREFIX):] if self.choice.startswith(RULE_PREFIX) else ""


def stored_value(choice: str, url: str, rules: RuleFiles) -> tuple[str | None, str | None]:
    """(the value to store, None for "follow config.toml"), or (None, why it is refused)."""
    if choice == CONFIG:
        return None, None
    if choice == ROOMS:
        return ROOMS, None
    if choice == URL:
        problem = url_problem(url.strip())
        return (None, problem) if problem else (url.strip(), None)
    if choice.startswith(RULE_PREFIX) and rules.path(choice[len(RULE_PREFIX):]) is not None:
        return choice, None
    return None, "Choose one of the offered rule files."


class LineRules:
    """Reads and changes the lines' choices in the settings.

    Hold ``lock`` around a check and the change it allows (a rule file is deleted only while
    no line chooses it, and chosen only while it exists).
    """

    def __init__(self, settings: SettingsStore, lines: Lines) -> None:
        self.settings = settings
        self.lines = lines
        self.lock = threading.RLock()

    def stored(self) -> dict[str, str]:
        return dict(self.settings.get(SETTING) or {})

    def rows(self) -> list[LineChoice]:
        """Every configured line with its current choice."""
        stored = self.stored()
        rows = []
        for name, config_url in self.lines():
            value = stored.get(name, "")
            if not value:
                choice, url = CONFIG, ""
            elif value == ROOMS or value.startswith(RULE_PREFIX):
                choice, url = value, ""
            else:
                choice, url = URL, value
            rows.append(LineChoice(name, config_url, choice, url))
        return rows

    def users_of(self, rule_name: str) -> list[str]:
        """The lines whose calls run the rule file ``rule_name``."""
        configured = {name for name, _ in self.lines()}
        return sorted(line for line, value in self.stored().items()
                      if value == RULE_PREFIX + rule_name and line in configured)

    def replace(self, values: dict[str, str | None]) -> None:
        """Set the given lines' choices (None: follow config.toml); other entries are kept."""
        with self.lock:
            stored = self.stored()
            for line, value in values.items():
                if value is None:
                    stored.pop(line, None)
                else:
                    stored[line] = value
            self.settings.set(SETTING, stored)
