"""Decoded audio by URL, kept in memory so a loop or a repeated prompt is decoded once."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from appliance.audio.media import load_audio
from appliance.twiml.fetch import Fetcher


class MediaCache:
    """Decoded audio by URL (small LRU): a wait-music loop is decoded once, not per caller."""

    def __init__(self, fetcher: Fetcher, rate: int, size: int = 32) -> None:
        self._fetcher = fetcher
        self._rate = rate
        self._size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> np.ndarray:
        with self._lock:
            if url in self._items:
                self._items.move_to_end(url)
                return self._items[url]
        samples = load_audio(self._fetcher.fetch_bytes(url), self._rate)
        self._keep(url, samples)
        return samples

    def decode(self, url: str, data: bytes) -> np.ndarray:
        """Audio already fetched from ``url`` (a waitUrl's answer), decoded once per content."""
        key = f"{url}#{hashlib.sha1(data).hexdigest()}"
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        samples = load_audio(data, self._rate)
        self._keep(key, samples)
        return samples

    def _keep(self, key: str, samples: np.ndarray) -> None:
        with self._lock:
            self._items[key] = samples
            while len(self._items) > self._size:
                self._items.popitem(last=False)
