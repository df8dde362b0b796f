"""Time handling of a replay: rebasing to now and pacing with the original spacing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def rebase_shift(newest_end: datetime, now: datetime | None = None) -> timedelta:
    """The shift that makes the newest run end now (dashboards and freshness alerts then mean something)."""
    return (now or datetime.now(UTC)) - newest_end


class Pacer:
    """Sleeps so that events go out with their original spacing, divided by `speed`."""

    def __init__(self, speed: float, sleep: Callable[[float], None] = time.sleep) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._sleep = sleep
        self._previous: float | None = None

    def wait(self, event_time: float) -> None:
        if self._previous is not None and event_time > self._previous:
            self._sleep((event_time - self._previous) / self.speed)
        self._previous = event_time if self._previous is None else max(self._previous, event_time)
