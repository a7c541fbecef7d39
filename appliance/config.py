"""Load and validate ``config.toml``.

Every problem in the file is collected and reported at once as ``key.path: reason``, with a
"did you mean" hint for misspelt keys, so one start of the daemon shows every mistake.
"""

from __future__ import annotations

import datetime
import difflib
import re
import tomllib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from appliance.audio.frames import AudioFormat

DRIVERS = ("simcom", "quectel", "huawei", "sim800", "v253", "sim")
# Drivers whose voice travels on a separate audio device ("serial:…" or "alsa:…").
AUDIO_DRIVERS = ("simcom", "quectel", "huawei", "sim800")
RATES = (8000, 16000)
FRAME_MS = (10, 20, 30, 40)
METHODS = ("GET", "POST")
URL_SCHEMES = ("http", "https", "file")
MAX_SIM_SPEED = 20.0
MAX_DRIFT_PPM = 1000.0
# The modem a ``driver = "sim"`` line emulates (its ``model`` key); the real driver of that
# family runs against it.
SIM_MODELS = ("simcom", "quectel", "huawei", "sim800", "v253-usr", "v253-conexant")

DEFAULT_NAME = "Home conference line"
DEFAULT_DATA_DIR = "/var/lib/appliance"
DEFAULT_LISTEN = "0.0.0.0:80"

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_LINE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PHONE_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` holds one ``key.path: reason`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(self.errors)


@dataclass(frozen=True)
class ApplianceSection:
    """The appliance's name and its state folder (absolute)."""

    name: str
    data_dir: Path


@dataclass(frozen=True)
class AudioSection:
    """The internal audio format: mixing rate and frame length."""

    rate: int = 16000
    frame_ms: int = 20

    @property
    def format(self) -> AudioFormat:
        return AudioFormat(self.rate, self.frame_ms)


@dataclass(frozen=True)
class WebSection:
    """Where the web page and REST API listen (from ``listen = "host:port"``)."""

    host: str
    port: int


@dataclass(frozen=True)
class ApiSection:
    """Credentials of the Twilio-compatible API; None until generated on first start."""

    account_sid: str | None = None
    auth_token: str | None = None


@dataclass(frozen=True)
class SimSection:
    """How fast the emulator's clock runs for ``driver = "sim"`` lines (1.0 = real time)."""

    speed: float = 1.0


@dataclass(frozen=True)
class LineConfig:
    """One phone line: its modem driver, devices, number and call rules."""

    name: str
    driver: str
    control: str | None
    audio: str | None
    number: str
    voice_url: str
    voice_method: str = "POST"
    fallback_url: str = ""
    drift_ppm: float = 0.0
    model: str = "simcom"  # driver = "sim" only: which modem family the emulator is


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; ``path`` is the file it came from (absolute)."""

    appliance: ApplianceSection
    audio: AudioSection
    web: WebSection
    api: ApiSection
    sim: SimSection
    lines: tuple[LineConfig, ...]
    path: Path | None = None


# --- reading tables -------------------------------------------------------------------------

T = TypeVar("T")


def _describe(value: Any) -> str:
    """A TOML value as a user would recognise it: ``string "20"``, ``boolean true``."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return f"date/time {value}"
    return type(value).__name__


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


class _Table:
    """Reads typed keys from one TOML table, reporting problems under ``prefix``."""

    def __init__(self, table: dict[str, Any], prefix: str, errors: list[str]) -> None:
        self._table = table
        self._prefix = prefix
        self._errors = errors
        self._known: set[str] = set()

    def error(self, key: str, message: str) -> None:
        self._errors.append(f"{self._prefix}.{key}: {message}")

    def has(self, key: str) -> bool:
        self._known.add(key)
        return key in self._table

    def _get(
        self, key: str, accept: Callable[[Any], bool], expected: str, default: T, required: bool
    ) -> Any:
        self._known.add(key)
        if key not in self._table:
            if required:
                self.error(key, "required")
            return default
        value = self._table[key]
        if not accept(value):
            self.error(key, f"expected {expected}, got {_describe(value)}")
            return default
        return value

    def string(self, key: str, default: str = "", required: bool = False) -> str:
        return self._get(key, lambda v: isinstance(v, str), "a string", default, required)

    def optional_string(self, key: str) -> str | None:
        return self._get(key, lambda v: isinstance(v, str), "a string", None, False)

    def integer(self, key: str, default: int) -> int:
        def accept(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        return self._get(key, accept, "an integer", default, False)

    def number(self, key: str, default: float) -> float:
        def accept(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        return float(self._get(key, accept, "a number", default, False))

    def finish(self) -> None:
        """Report keys nobody asked for."""
        for key in self._table:
            if key not in self._known:
                self.error(key, f"unknown key{_suggest(key, self._known)}")


def _section(document: dict[str, Any], name: str, errors: list[str]) -> _Table:
    value = document.get(name, {})
    if not isinstance(value, dict):
        errors.append(f"{name}: expected a table ([{name}]), got {_describe(value)}")
        value = {}
    return _Table(value, name, errors)


# --- sections -------------------------------------------------------------------------------


def _read_appliance(table: _Table, base: Path) -> ApplianceSection:
    name = table.string("name", DEFAULT_NAME)
    if not name.strip():
        table.error("name", "must not be empty")
    data_dir = table.string("data_dir", DEFAULT_DATA_DIR)
    if not data_dir.strip():
        table.error("data_dir", "must not be empty")
        data_dir = DEFAULT_DATA_DIR
    table.finish()
    return ApplianceSection(name=name, data_dir=base / Path(data_dir).expanduser())


def _read_audio(table: _Table) -> AudioSection:
    rate = table.integer("rate", 16000)
    if rate not in RATES:
        table.error("rate", f"must be {_alternatives(RATES)}, not {rate}")
        rate = 16000
    frame_ms = table.integer("frame_ms", 20)
    if frame_ms not in FRAME_MS:
        table.error("frame_ms", f"must be {_alternatives(FRAME_MS)}, not {frame_ms}")
        frame_ms = 20
    table.finish()
    return AudioSection(rate=rate, frame_ms=frame_ms)


def _read_web(table: _Table) -> WebSection:
    listen = table.string("listen", DEFAULT_LISTEN)
    table.finish()
    host, _, port_text = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # "[::]:80"
    if not host or not port_text.isdigit():
        table.error("listen", f'expected "host:port", got "{listen}"')
        return WebSection("0.0.0.0", 80)
    port = int(port_text)
    if not 1 <= port <= 65535:
        table.error("listen", f"port must be 1 to 65535, not {port}")
        return WebSection(host, 80)
    return WebSection(host, port)


def _read_api(table: _Table) -> ApiSection:
    account_sid = table.optional_string("account_sid")
    if account_sid is not None and not _ACCOUNT_SID.fullmatch(account_sid):
        table.error("account_sid", f'must be "AC" and 32 hex digits, not "{account_sid}"')
        account_sid = None
    auth_token = table.optional_string("auth_token")
    if auth_token is not None and not auth_token.strip():
        table.error("auth_token", "must not be empty (remove the key to generate one)")
        auth_token = None
    table.finish()
    return ApiSection(account_sid=account_sid, auth_token=auth_token)


def _read_sim(table: _Table) -> SimSection:
    speed = table.number("speed", 1.0)
    if not 0 < speed <= MAX_SIM_SPEED:
        table.error("speed", f"must be more than 0 and at most {MAX_SIM_SPEED:g}, not {speed:g}")
        speed = 1.0
    table.finish()
    return SimSection(speed=speed)


def _check_url(table: _Table, key: str, value: str) -> None:
    scheme = value.partition(":")[0].lower() if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", value) else ""
    if scheme and scheme not in URL_SCHEMES:
        table.error(key, f'must be a path or a file:, http: or https: URL, not "{value}"')


def _read_line(table: _Table) -> LineConfig:
    name = table.string("name", required=True)
    if name and not _LINE_NAME.fullmatch(name):
        table.error("name", f'must be letters, digits, "-" or "_", not "{name}"')

    driver = table.string("driver", required=True)
    if table.has("driver") and driver not in DRIVERS:
        hint = _suggest(driver, DRIVERS)
        table.error("driver", f'must be one of {" | ".join(DRIVERS)}, not "{driver}"{hint}')
        driver = ""

    control = table.optional_string("control")
    if driver == "sim":
        if control is not None:
            table.error("control", 'not used with driver "sim" (the emulator makes its own port)')
    elif driver and control is None and not table.has("control"):
        table.error("control", f'required for driver "{driver}"')
    elif control is not None and not control.strip():
        table.error("control", "must be a serial device path")

    audio = table.optional_string("audio")
    if driver in AUDIO_DRIVERS:
        if audio is None and not table.has("audio"):
            table.error("audio", f'required for driver "{driver}"')
        elif audio is not None and not re.match(r"(serial|alsa):.", audio):
            table.error("audio", 'must start with "serial:" or "alsa:"')
    elif audio is not None and driver:
        carrier = "the control port" if driver == "v253" else "the emulator"
        table.error("audio", f'not used with driver "{driver}" ({carrier} carries the voice)')

    number = table.string("number", required=True)
    if number and not _PHONE_NUMBER.fullmatch(number):
        table.error("number", f'must be a phone number such as "+15551230000", not "{number}"')

    voice_url = table.string("voice_url", required=True)
    if table.has("voice_url") and not voice_url.strip():
        table.error("voice_url", 'must not be empty (use "rooms" for the built-in rooms)')
    _check_url(table, "voice_url", voice_url)

    voice_method = table.string("voice_method", "POST")
    if voice_method.upper() not in METHODS:
        table.error("voice_method", f'must be "GET" or "POST", not "{voice_method}"')
    voice_method = voice_method.upper() if voice_method.upper() in METHODS else "POST"

    fallback_url = table.string("fallback_url", "")
    _check_url(table, "fallback_url", fallback_url)

    drift_ppm = table.number("drift_ppm", 0.0)
    if table.has("drift_ppm") and driver and driver != "sim":
        table.error("drift_ppm", 'only allowed for driver "sim"')
        drift_ppm = 0.0
    elif abs(drift_ppm) > MAX_DRIFT_PPM:
        table.error("drift_ppm", f"must be between -{MAX_DRIFT_PPM:g} and {MAX_DRIFT_PPM:g}")
        drift_ppm = 0.0

    model = table.string("model", "simcom")
    if table.has("model") and driver and driver != "sim":
        table.error("model", f'only allowed for driver "sim" (driver "{driver}" is the model)')
        model = "simcom"
    elif model not in SIM_MODELS:
        hint = _suggest(model, SIM_MODELS)
        table.error("model", f'must be one of {" | ".join(SIM_MODELS)}, not "{model}"{hint}')
        model = "simcom"

    table.finish()
    return LineConfig(
        name=name,
        driver=driver,
        control=control,
        audio=audio,
        number=number,
        voice_url=voice_url,
        voice_method=voice_method,
        fallback_url=fallback_url,
        drift_ppm=drift_ppm,
        model=model,
    )


def _read_lines(document: dict[str, Any], errors: list[str]) -> tuple[LineConfig, ...]:
    raw = document.get("line", [])
    if not isinstance(raw, list):
        errors.append(f"line: expected an array of tables ([[line]]), got {_describe(raw)}")
        return ()
    lines: list[LineConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        prefix = f"line[{index}]"
        if not isinstance(entry, dict):
            errors.append(f"{prefix}: expected a table, got {_describe(entry)}")
            continue
        line = _read_line(_Table(entry, prefix, errors))
        if line.name in seen:
            errors.append(
                f'{prefix}.name: "{line.name}" is already used by line[{seen[line.name]}]'
            )
        elif line.name:
            seen[line.name] = index
        lines.append(line)
    return tuple(lines)


def _alternatives(values: Collection[object]) -> str:
    items = [str(value) for value in values]
    return ", ".join(items[:-1]) + " or " + items[-1]


SECTIONS = ("appliance", "audio", "web", "api", "sim", "line")


def parse_config(text: str, path: Path | None = None) -> Config:
    """Validate a config document; a relative ``data_dir`` resolves against ``path``'s folder.

    ``Config.path`` is kept absolute, so relative rule paths can be resolved against it later.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.match(message)
        if match:
            reason, line, column = match.groups()
            raise ConfigError(
                [f"line {line}, column {column}: TOML syntax error: {reason}"]
            ) from None
        raise ConfigError([f"TOML syntax error: {message}"]) from None

    path = Path(path).absolute() if path is not None else None
    errors: list[str] = []
    for key in document:
        if key not in SECTIONS:
            errors.append(f"{key}: unknown section{_suggest(key, SECTIONS)}")
    base = path.parent if path is not None else Path.cwd()
    config = Config(
        appliance=_read_appliance(_section(document, "appliance", errors), base),
        audio=_read_audio(_section(document, "audio", errors)),
        web=_read_web(_section(document, "web", errors)),
        api=_read_api(_section(document, "api", errors)),
        sim=_read_sim(_section(document, "sim", errors)),
        lines=_read_lines(document, errors),
        path=path,
    )
    if errors:
        raise ConfigError(errors)
    return config


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return parse_config(text, Path(path))
