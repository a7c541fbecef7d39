"""Every emulated modem family by its ``model`` name, paired with the driver that runs it.

A ``driver = "sim"`` line names a ``model``; :func:`make_emulator` builds that family's
emulator on fresh ptys (and, for the SIM800, its emulated sound card) and says which real
driver to connect to it, with which ``control`` and ``audio`` keys, exactly as a config line
for the real modem would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MODELS = ("simcom", "quectel", "huawei", "sim800", "v253-usr", "v253-conexant")


class SimulatedModem(Protocol):
    """What the control socket and the tests use of any emulator (the caller's side)."""

    name: str
    number: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ring(self, caller_id: str, name: str = "") -> None: ...
    def hangup(self) -> None: ...
    def press(self, key: str, *, inband: bool = False, ms: int = 100) -> None: ...
    def play(self, audio: np.ndarray | str | Path) -> int: ...
    def heard(self) -> np.ndarray: ...
    def stats(self) -> dict[str, int]: ...

    @property
    def state(self) -> str: ...
    @property
    def caller_id(self) -> str: ...
    @property
    def audio_active(self) -> bool: ...
    @property
    def sample_clock(self) -> int: ...


@dataclass
class EmulatedLine:
    """An emulator and the config keys of the real driver that talks to it."""

    model: str
    modem: Any  # a SimulatedModem; Any keeps each family's own extras (commands, far end)
    driver: str  # the registry name of the real driver
    control: str
    audio: str | None  # "serial:…" or "alsa:…"; None for a V.253 modem (voice on control)

    def config_keys(self) -> str:
        """The ``driver``/``control``/``audio`` lines of a config for this emulator (TOML)."""
        keys = f"driver = {json.dumps(self.driver)}\ncontrol = {json.dumps(self.control)}\n"
        if self.audio is not None:
            keys += f"audio = {json.dumps(self.audio)}\n"
        return keys


def make_emulator(model: str, *, name: str, number: str = "+15550000001", speed: float = 1.0,
                  drift_ppm: float = 0.0, **options: Any) -> EmulatedLine:
    """A new (not yet started) emulator of ``model``; ``options`` go to its constructor
    (``silent``/``garbage`` for the Quectel, Huawei and SIM800 families)."""
    common: dict[str, Any] = dict(name=name, number=number, speed=speed, drift_ppm=drift_ppm,
                                  **options)
    if model == "simcom":
        from appliance.sim.simcom import SimcomModem

        modem: Any = SimcomModem(**common)
        return EmulatedLine(model, modem, "simcom", modem.control_path,
                            "serial:" + modem.audio_path)
    if model == "quectel":
        from appliance.sim.quectel import QuectelModem

        modem = QuectelModem(**common)
        return EmulatedLine(model, modem, "quectel", modem.control_path,
                            "serial:" + modem.audio_path)
    if model == "huawei":
        from appliance.sim.huawei import HuaweiModem

        modem = HuaweiModem(**common)
        return EmulatedLine(model, modem, "huawei", modem.control_path,
                            "serial:" + modem.audio_path)
    if model == "sim800":
        from appliance.sim.sim800 import Sim800Modem

        modem = Sim800Modem(**common)  # needs install_alsa_config() in the driver's process
        return EmulatedLine(model, modem, "sim800", modem.control_path,
                            "alsa:" + modem.alsa_device)
    if model in ("v253-usr", "v253-conexant"):
        from appliance.sim.v253 import V253Modem

        modem = V253Modem(variant=model.removeprefix("v253-"), **common)
        return EmulatedLine(model, modem, "v253", modem.control_path, None)
    raise ValueError(f"unknown sim model {model!r} (one of {', '.join(MODELS)})")
