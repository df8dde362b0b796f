"""The consumer's state: per input partition, one `ObjetState` per (source, objet), and its changelog codec.

The Kafka key `source/objet` puts every run of an objet in one partition, so each series has one owner: the
consumer holding that partition. Its whole state travels as one record of the compacted changelog topic
`<topic>.state` (same partition number), written in the transaction that commits the input offsets: what
a restore reads is exactly the state as of the committed offsets.

A committed `ObjetState` is never changed in place: staging copies it (`evolve`), the copy replaces it once
its batch is committed. Readers (the /metrics thread) therefore always see whole, committed states.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingestion_observability import catalog

STATE_VERSION = 1
HISTOGRAMS = tuple(f.name for f in catalog.HISTOGRAMS)
BOUNDS = {f.name: f.buckets for f in catalog.HISTOGRAMS}


class StateError(ValueError):
    """A changelog record that cannot be read: never taken for an empty state."""


@dataclass(slots=True)
class Histogram:
    counts: list[int]  # per bucket, not cumulative; the last one is +Inf
    total: float = 0.0

    @classmethod
    def empty(cls, name: str) -> Histogram:
        return cls([0] * (len(BOUNDS[name]) + 1))

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect_left(bounds, value)] += 1  # the first bucket with value <= bound
        self.total += value


@dataclass(slots=True)
class ObjetState:
    source: str
    objet: str  # the label value (the objet, or the partition's `other` when the cap is reached)
    runs: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (etat, entreprise, zone)
    failures: int = 0
    histograms: dict[str, Histogram] = field(default_factory=dict)
    last_end: float = float("-inf")
    last_etat: str = ""
    failed_since: float | None = None  # end of the first failure not yet followed by a success (MTTR)
    last_failure: tuple[float, str] | None = None  # the newest failure by event time: end, description
    recent: dict[str, None] = field(default_factory=dict)  # run keys (debut), oldest first: dedupe
    # OpenLineage runs started and not ended: runId -> START time; None for an objet never reported so
    open_runs: dict[str, float] | None = None
    # rows written by the runs that reported them; None until one does (unknown, never 0)
    rows_total: int | None = None
    last_rows: tuple[float, int] | None = None  # the newest run by event time that reported rows: end, rows
    # its /metrics lines per family, made on the first scrape after its commit (export.py); never encoded
    exposition: dict[str, str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def new(cls, source: str, objet: str) -> ObjetState:
        return cls(source, objet, histograms={name: Histogram.empty(name) for name in HISTOGRAMS})

    def evolve(self) -> ObjetState:
        """A copy to stage a batch on (the committed state stays as it is until the commit)."""
        return ObjetState(
            self.source,
            self.objet,
            dict(self.runs),
            self.failures,
            {name: Histogram(list(h.counts), h.total) for name, h in self.histograms.items()},
            self.last_end,
            self.last_etat,
            self.failed_since,
            self.last_failure,
            dict(self.recent),
            None if self.open_runs is None else dict(self.open_runs),
            self.rows_total,
            self.last_rows,
        )

    @property
    def key(self) -> bytes:
        return f"{self.source}/{self.objet}".encode()


def encode(state: ObjetState, group: str = "") -> bytes:
    """The changelog record value: the whole state, versioned, with the consumer group it belongs to."""
    return orjson.dumps(
        {
            "v": STATE_VERSION,
            "group": group,
            "source": state.source,
            "objet": state.objet,
            "runs": [[*labels, count] for labels, count in state.runs.items()],
            "failures": state.failures,
            "histograms": {name: [h.counts, h.total] for name, h in state.histograms.items()},
            "last": [state.last_end, state.last_etat] if state.last_etat else None,
            "failed_since": state.failed_since,
            "last_failure": state.last_failure,
            "recent": list(state.recent),
            "open": state.open_runs,
            "rows_total": state.rows_total,
            "last_rows": state.last_rows,
        }
    )


def decode(value: bytes | None, group: str | None = None) -> ObjetState:
    """A state from its changelog record; StateError for anything but a well-formed current version (of
    `group`'s state, when given: two groups sharing a changelog would count each other's runs)."""
    try:
        doc: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise StateError(f"undecodable state record: {exc}") from None
    if not isinstance(doc, dict):
        raise StateError("state record is not a JSON object")
    if doc.get("v") != STATE_VERSION:
        raise StateError(
            f"unknown state schema version {doc.get('v')!r} (this consumer reads {STATE_VERSION})"
        )
    if group is not None and doc.get("group") != group:
        raise StateError(
            f"state of consumer group {doc.get('group')!r}, not {group!r}: one state topic per group"
        )
    try:
        histograms = {
            name: Histogram([int(c) for c in counts], float(total))
            for name, (counts, total) in doc["histograms"].items()
        }
        if set(histograms) != set(HISTOGRAMS) or any(
            len(h.counts) != len(BOUNDS[name]) + 1 for name, h in histograms.items()
        ):
            raise StateError(f"histograms do not match this consumer's buckets: {sorted(histograms)}")
        # absent from older records: unknown
        last, last_failure, last_rows = doc["last"], doc.get("last_failure"), doc.get("last_rows")
        rows_total = doc.get("rows_total")
        return ObjetState(
            source=str(doc["source"]),
            objet=str(doc["objet"]),
            runs={(str(e), str(ent), str(z)): int(n) for e, ent, z, n in doc["runs"]},
            failures=int(doc["failures"]),
            histograms=histograms,
            last_end=float(last[0]) if last else float("-inf"),
            last_etat=str(last[1]) if last else "",
            failed_since=None if doc["failed_since"] is None else float(doc["failed_since"]),
            last_failure=None if last_failure is None else (float(last_failure[0]), str(last_failure[1])),
            recent=dict.fromkeys(str(k) for k in doc["recent"]),
            open_runs=None if doc["open"] is None else {str(k): float(v) for k, v in doc["open"].items()},
            rows_total=None if rows_total is None else _count(rows_total),
            last_rows=None if last_rows is None else (float(last_rows[0]), _count(last_rows[1])),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateError):
            raise
        raise StateError(f"malformed state record: {exc!r}") from None


def _count(value: object) -> int:
    """A row count as encoded (an int: orjson writes ints as such); anything else is a malformed record."""
    if type(value) is not int or value < 0:
        raise ValueError(f"a row count must be an integer >= 0, got {value!r}")
    return value


class PartitionState:
    """The objets of one input partition: committed states, and the staged ones of batches in flight."""

    def __init__(self, partition: int, states: dict[tuple[str, str], ObjetState] | None = None) -> None:
        self.partition = partition
        self.committed: dict[tuple[str, str], ObjetState] = states or {}
        self.staged: dict[tuple[str, str], ObjetState] = {}  # newest uncommitted version of each objet
        self._per_source: dict[str, int] = {}
        self._recount()

    @property
    def other(self) -> str:
        """The objet label of runs past the cap: per partition, so each series still has one owner."""
        return f"other-p{self.partition}"

    def label(self, source: str, objet: str, cap: int) -> tuple[str, bool]:
        """The objet label for a run, and whether it was folded (the cap counts this partition's objets)."""
        key = (source, objet)
        if key in self.staged or key in self.committed:
            return objet, False
        if self._per_source.get(source, 0) < cap:
            self._per_source[source] = self._per_source.get(source, 0) + 1
            return objet, False
        return self.other, True

    def latest(self, key: tuple[str, str]) -> ObjetState | None:
        return self.staged.get(key) or self.committed.get(key)

    def commit(self, states: dict[tuple[str, str], ObjetState]) -> None:
        """A batch's states are committed: they become what is exported."""
        for key, state in states.items():
            self.committed[key] = state
            if self.staged.get(key) is state:
                del self.staged[key]

    def discard_staged(self) -> None:
        """Batches in flight were abandoned (Kafka redelivers them): back to the committed states."""
        self.staged.clear()
        self._recount()

    def _recount(self) -> None:
        self._per_source = {}
        for source, objet in self.committed:
            if objet != self.other:
                self._per_source[source] = self._per_source.get(source, 0) + 1
