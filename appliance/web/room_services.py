"""What the rooms pages and the ``/voice/…`` routes share: the rooms, the media, the lock-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from appliance.store.rooms import RoomStore
from appliance.web.pin_lockout import LockoutPolicy, PinLockout
from appliance.web.room_media import MediaLibrary

MEDIA_FOLDER = "media"  # inside data_dir


def local_now() -> datetime:
    """The appliance's local time, naive (opening hours are in local time)."""
    return datetime.now()


@dataclass
class RoomServices:
    """``rooms``: the store's rooms; ``media``: uploaded wait music; ``lockout``: wrong PINs
    per caller ID; ``now``: the local wall clock, for opening hours."""

    rooms: RoomStore
    media: MediaLibrary
    lockout: PinLockout = field(default_factory=PinLockout)
    now: Callable[[], datetime] = local_now

    @classmethod
    def in_data_dir(cls, rooms: RoomStore, data_dir: Path, *,
                    policy: LockoutPolicy | None = None,
                    clock: Callable[[], float] = time.monotonic,
                    now: Callable[[], datetime] = local_now) -> RoomServices:
        """The services of an appliance whose files live in ``data_dir``."""
        return cls(rooms, MediaLibrary(Path(data_dir) / MEDIA_FOLDER),
                   PinLockout(policy, clock), now)
