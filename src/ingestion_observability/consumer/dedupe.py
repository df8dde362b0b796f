"""Bounded TTL memory of run keys already counted, so redeliveries are not counted twice."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class SeenCache:
    """Remembers up to `max_entries` keys for `ttl` seconds; the oldest go first (memory stays bounded)."""

    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1 or ttl <= 0:
            raise ValueError("max_entries must be >= 1 and ttl > 0")
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, key: Hashable) -> bool:
        expiry = self._expiry.get(key)
        return expiry is not None and expiry > self._clock()

    def add_all(self, keys: list[Hashable]) -> None:
        now = self._clock()
        expiry = now + self.ttl
        entries = self._expiry
        for key in keys:
            entries[key] = expiry
            entries.move_to_end(key)
        while entries and (len(entries) > self.max_entries or next(iter(entries.values())) <= now):
            entries.popitem(last=False)
