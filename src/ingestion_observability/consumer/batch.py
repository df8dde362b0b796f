"""A batch of consumed messages, staged: nothing is visible in /metrics until its offsets are committed.

That ordering is what makes the counters exact in effect: a crash before the commit leaves no trace of
the batch (Kafka redelivers it and it is counted once, by the next process); a redelivery to a live
process after the commit is caught by the run-key cache, which is also updated only on apply.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram

from ingestion_observability.consumer.metrics import IngestionMetrics, ObjetSeries
from ingestion_observability.event import Run


@dataclass(slots=True)
class DeadLetter:
    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    error: str
    sent: bool = False

    def record(self) -> dict[str, Any]:
        """Keyword arguments of KafkaProducer.send: the original bytes, the error in headers."""
        headers = [
            ("error", self.error.encode()),
            ("source.topic", self.topic.encode()),
            ("source.partition", str(self.partition).encode()),
            ("source.offset", str(self.offset).encode()),
        ]
        return {"value": self.value, "key": self.key, "headers": headers}


class HistogramTally:
    """Observations of one histogram child, counted per bucket: the batch applies them in one go.

    `Histogram.observe` takes a lock and walks the buckets for every value; a batch of thousands of runs
    over a few hundred series adds each bucket's count once instead. Buckets and counts come out the same
    (`_sum` may differ in its last bits: floating-point additions in another order). This writes the
    child's `_upper_bounds`, `_buckets` and `_sum`, internals of prometheus-client (pinned).
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, child: Histogram) -> None:
        self.bounds: list[float] = child._upper_bounds  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # the first bucket with amount <= bound
        self.total += amount

    def apply(self, child: Histogram) -> None:
        buckets = child._buckets
        for index, count in enumerate(self.counts):
            if count:
                buckets[index].inc(count)
        child._sum.inc(self.total)


class SeriesTally:
    """What a batch adds to the histograms and failure counter of one (source, objet)."""

    __slots__ = ("cpu", "duration", "failures", "memory", "series")

    def __init__(self, series: ObjetSeries) -> None:
        self.series = series
        self.duration = HistogramTally(series.duration)
        self.cpu = HistogramTally(series.cpu)
        self.memory = HistogramTally(series.memory)
        self.failures = 0

    def apply(self) -> None:
        series = self.series
        self.duration.apply(series.duration)
        self.cpu.apply(series.cpu)
        self.memory.apply(series.memory)
        if self.failures:
            series.failures.inc(self.failures)


@dataclass
class StagedBatch:
    runs: Tally[tuple[str, str, str, str, str]] = field(default_factory=Tally)
    # per (source, objet) series: the batch's histogram observations and failures, counted per bucket
    tallies: dict[ObjetSeries, SeriesTally] = field(default_factory=dict)
    processed: int = 0
    recoveries: list[tuple[ObjetSeries, float]] = field(default_factory=list)
    last_run: dict[str, float] = field(default_factory=dict)
    folded: Tally[str] = field(default_factory=Tally)
    keys: list[int] = field(default_factory=list)
    key_set: set[int] = field(default_factory=set)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    invalid: int = 0
    # next offset to commit per (topic, partition)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0

    def add_run(self, run: Run, objet: str, series: ObjetSeries, key: int) -> None:
        self.runs[(run.source, run.etat, objet, run.entreprise, run.zone)] += 1
        tally = self.tallies.get(series)
        if tally is None:
            tally = self.tallies[series] = SeriesTally(series)
        tally.duration.observe(run.duree)
        tally.cpu.observe(run.cpu)
        tally.memory.observe(run.memory)
        if run.etat == "FAILED":
            tally.failures += 1
        self.processed += 1
        if run.fin > self.last_run.get(run.source, 0.0):
            self.last_run[run.source] = run.fin
        self.keys.append(key)
        self.key_set.add(key)

    def apply(self, metrics: IngestionMetrics) -> None:
        """Publish the batch's effect on the metrics (after its commit)."""
        for labels, count in self.runs.items():
            metrics.runs_child(labels).inc(count)
        for tally in self.tallies.values():
            tally.apply()
        for series, seconds in self.recoveries:
            series.recovery.observe(seconds)
        for source, end in self.last_run.items():
            metrics.advance_last_run(source, end)
        for source, count in self.folded.items():
            metrics.folded.labels(source).inc(count)
        metrics.result("processed").inc(self.processed)
        metrics.result("invalid").inc(self.invalid)
        metrics.result("duplicate").inc(self.duplicates)
        metrics.dlq_writes.inc(len(self.dead_letters))
        metrics.batch_size.observe(self.messages)
