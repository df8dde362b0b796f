"""Caps the distinct `objet` label values per source: beyond the cap, objets are folded into `other`."""

from __future__ import annotations

OTHER = "other"


class ObjetCap:
    def __init__(self, max_per_source: int) -> None:
        if max_per_source < 1:
            raise ValueError("max_per_source must be >= 1")
        self.max_per_source = max_per_source
        self._known: dict[str, set[str]] = {}

    def label(self, source: str, objet: str) -> tuple[str, bool]:
        """The label value to use for `objet`, and whether it was folded."""
        known = self._known.setdefault(source, set())
        if objet in known:
            return objet, False
        if len(known) < self.max_per_source:
            known.add(objet)
            return objet, False
        return OTHER, True
