"""The metrics the consumer exports (names and labels are the seed's: dashboards and alerts query them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MIB = 1024 * 1024
# Fitted to the sample (1-3 s, 0.1-0.5 s cpu, 5-20 MB) with room for the alert thresholds (60 s, 150 MB).
DURATION_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 600)
CPU_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
MEMORY_BUCKETS = tuple(n * MIB for n in (1, 2, 5, 10, 20, 50, 100, 150, 250, 500, 1024))
RECOVERY_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)


class ObjetSeries:
    """The children of one (source, objet), resolved once: `.labels()` is the costly part of an update."""

    __slots__ = ("cpu", "duration", "failures", "memory", "recovery")

    def __init__(self, metrics: IngestionMetrics, source: str, objet: str) -> None:
        self.duration = metrics.duration.labels(source, objet)
        self.cpu = metrics.cpu.labels(source, objet)
        self.memory = metrics.memory.labels(source, objet)
        self.failures = metrics.failures.labels(source, objet)
        self.recovery = metrics.recovery.labels(source, objet)


class IngestionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        objet_labels = ["source", "objet"]
        self.runs = Counter(
            "ingestion_runs",
            "Ingestion job runs, by outcome (etat SUCCESS/FAILED)",
            ["source", "etat", "objet", "entreprise", "zone"],
            registry=registry,
        )
        self.failures = Counter(
            "ingestion_failures", "FAILED ingestion runs", objet_labels, registry=registry
        )
        self.duration = Histogram(
            "ingestion_duration_seconds",
            "Run duration (Duree secondes)",
            objet_labels,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.cpu = Histogram(
            "ingestion_cpu_usage_seconds",
            "CPU time of a run (cpu_time)",
            objet_labels,
            buckets=CPU_BUCKETS,
            registry=registry,
        )
        self.memory = Histogram(
            "ingestion_memory_usage_bytes",
            "Memory used by a run (memory_used)",
            objet_labels,
            buckets=MEMORY_BUCKETS,
            registry=registry,
        )
        self.recovery = Histogram(
            "ingestion_recovery_seconds",
            "Time from a FAILED run to the next SUCCESS of the same objet, event time (MTTR)",
            objet_labels,
            buckets=RECOVERY_BUCKETS,
            registry=registry,
        )
        self.last_run = Gauge(
            "ingestion_last_run_timestamp",
            "End time of the newest run of a source, epoch seconds (event time)",
            ["source"],
            registry=registry,
        )
        self.lag = Gauge(
            "kafka_consumer_lag",
            "Messages between the consumer's position and the end of the partition",
            ["topic", "partition"],
            registry=registry,
        )
        self.messages = Counter(
            "ingestion_consumer_messages",
            "Kafka messages handled, by result (processed, invalid, duplicate)",
            ["result"],
            registry=registry,
        )
        self.dlq_writes = Counter(
            "ingestion_consumer_dlq_writes", "Messages written to the dead-letter topic", registry=registry
        )
        self.folded = Counter(
            "ingestion_consumer_objets_folded",
            "Runs whose objet was counted as 'other' (cardinality cap reached)",
            ["source"],
            registry=registry,
        )
        self.loki_push = Histogram(
            "ingestion_consumer_loki_push_seconds", "Duration of accepted Loki pushes", registry=registry
        )
        self.loki_failures = Counter(
            "ingestion_consumer_loki_push_failures",
            "Failed Loki push attempts, by reason",
            ["reason"],
            registry=registry,
        )
        self.loki_entries = Counter(
            "ingestion_consumer_loki_entries", "Log lines accepted by Loki", registry=registry
        )
        self.batch_size = Histogram(
            "ingestion_consumer_batch_size",
            "Messages per committed batch",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.dedupe_size = Gauge(
            "ingestion_consumer_dedupe_cache_entries", "Run keys remembered for dedupe", registry=registry
        )
        self._objets: dict[tuple[str, str], ObjetSeries] = {}
        self._runs: dict[tuple[str, str, str, str, str], Counter] = {}
        self._last_run: dict[str, float] = {}
        self._results = {r: self.messages.labels(r) for r in ("processed", "invalid", "duplicate")}

    def objet(self, source: str, objet: str) -> ObjetSeries:
        series = self._objets.get((source, objet))
        if series is None:
            series = self._objets[(source, objet)] = ObjetSeries(self, source, objet)
            series.failures.inc(0)  # exported at 0 from the first run, so rates see the first failure
        return series

    def runs_child(self, labels: tuple[str, str, str, str, str]) -> Counter:
        child = self._runs.get(labels)
        if child is None:
            child = self._runs[labels] = self.runs.labels(*labels)
        return child

    def advance_last_run(self, source: str, end: float) -> None:
        """The gauge follows the newest run in event time: a late, older run does not move it back."""
        if end > self._last_run.get(source, float("-inf")):
            self._last_run[source] = end
            self.last_run.labels(source).set(end)

    def result(self, result: str) -> Counter:
        return self._results[result]
