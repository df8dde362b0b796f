"""Time to recovery (MTTR source): from a FAILED run to the next SUCCESS of the same objet, event time."""

from __future__ import annotations


class RecoveryTracker:
    """Keeps the end time of the first unrecovered failure per (source, objet)."""

    def __init__(self) -> None:
        self._failed_since: dict[tuple[str, str], float] = {}

    def observe(self, source: str, objet: str, failed: bool, end: float) -> float | None:
        """Record a run; returns the recovery time in seconds when this run ends an outage."""
        key = (source, objet)
        if failed:
            # The outage started at the first failure: later failures do not move its start.
            self._failed_since.setdefault(key, end)
            return None
        since = self._failed_since.pop(key, None)
        if since is None:
            return None
        return max(0.0, end - since)

    def __len__(self) -> int:
        return len(self._failed_since)
