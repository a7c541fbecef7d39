"""Line drivers by the name a config's ``driver`` key uses."""

from __future__ import annotations

from appliance.audio.frames import AudioFormat
from appliance.lines.base import EventHandler, LineDriver
from appliance.lines.huawei import HuaweiDriver
from appliance.lines.quectel import QuectelDriver
from appliance.lines.sim800 import Sim800Driver
from appliance.lines.simcom import SimcomDriver
from appliance.lines.v253 import V253Driver

GSM_DRIVERS: dict[str, type[LineDriver]] = {
    "simcom": SimcomDriver,
    "quectel": QuectelDriver,
    "huawei": HuaweiDriver,
    "sim800": Sim800Driver,
}
DRIVER_NAMES = (*GSM_DRIVERS, "v253")


def create_driver(
    driver: str,
    name: str,
    on_event: EventHandler,
    *,
    control: str,
    audio: str | None,
    fmt: AudioFormat,
    number: str = "",
) -> LineDriver:
    """A driver for one line; a V.253 modem carries voice on its control port (no ``audio``)."""
    if driver == "v253":
        return V253Driver(name, on_event, control=control, fmt=fmt, number=number)
    try:
        cls = GSM_DRIVERS[driver]
    except KeyError:
        raise ValueError(f"unknown driver {driver!r} (one of {', '.join(DRIVER_NAMES)})") from None
    return cls(name, on_event, control=control, audio=audio or "", fmt=fmt,  # type: ignore[call-arg]
               number=number)
