"""A batch of consumed messages, staged: nothing is visible in /metrics until its offsets are committed.

That ordering is what makes the counters exact in effect: a crash before the commit leaves no trace of
the batch (Kafka redelivers it and it is counted once, by the next process); a redelivery to a live
process after the commit is caught by the run-key cache, which is also updated only on apply.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class StagedBatch:
    runs: Tally[tuple[str, str, str, str, str]] = field(default_factory=Tally)
    # (series, duration, cpu, memory, failed) per run
    observations: list[tuple[ObjetSeries, float, float, float, bool]] = field(default_factory=list)
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
        self.observations.append((series, run.duree, run.cpu, run.memory, run.failed))
        if run.fin > self.last_run.get(run.source, 0.0):
            self.last_run[run.source] = run.fin
        self.keys.append(key)
        self.key_set.add(key)

    def apply(self, metrics: IngestionMetrics) -> None:
        """Publish the batch's effect on the metrics (after its commit)."""
        for labels, count in self.runs.items():
            metrics.runs_child(labels).inc(count)
        for series, duration, cpu, memory, failed in self.observations:
            series.duration.observe(duration)
            series.cpu.observe(cpu)
            series.memory.observe(memory)
            if failed:
                series.failures.inc()
        for series, seconds in self.recoveries:
            series.recovery.observe(seconds)
        for source, end in self.last_run.items():
            metrics.advance_last_run(source, end)
        for source, count in self.folded.items():
            metrics.folded.labels(source).inc(count)
        metrics.result("processed").inc(len(self.observations))
        metrics.result("invalid").inc(self.invalid)
        metrics.result("duplicate").inc(self.duplicates)
        metrics.dlq_writes.inc(len(self.dead_letters))
        metrics.batch_size.observe(self.messages)
