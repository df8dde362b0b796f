"""The consumer's self-metrics (per process: they keep `pod` and `instance`). The business series are
exported from the owned state by consumer/export.py."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingestion_observability import catalog
from ingestion_observability.consumer.health import HealthState

BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)
RESTORE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120)
P = catalog.SELF_PREFIX


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        ready = catalog.CONSUMER_READY
        self.ready = Gauge(ready.name, ready.help, registry=registry)
        lag = catalog.KAFKA_LAG
        self.lag = Gauge(lag.name, lag.help, lag.labels, registry=registry)
        self.messages = Counter(
            f"{P}messages",
            "Kafka messages handled, by result (processed, invalid, duplicate)",
            ["result"],
            registry=registry,
        )
        self.dlq_writes = Counter(
            f"{P}dlq_writes", "Messages written to the dead-letter topic", registry=registry
        )
        self.folded = Counter(
            f"{P}objets_folded",
            "Runs whose objet was counted as the partition's 'other' (cardinality cap reached)",
            ["source"],
            registry=registry,
        )
        self.loki_push = Histogram(
            f"{P}loki_push_seconds", "Duration of accepted Loki pushes", registry=registry
        )
        self.loki_failures = Counter(
            f"{P}loki_push_failures", "Failed Loki push attempts, by reason", ["reason"], registry=registry
        )
        self.loki_entries = Counter(f"{P}loki_entries", "Log lines accepted by Loki", registry=registry)
        self.batch_size = Histogram(
            f"{P}batch_size", "Messages per committed batch", buckets=BATCH_BUCKETS, registry=registry
        )
        self.transactions = Counter(
            f"{P}transactions",
            "Kafka transactions, by result (committed, aborted, lost: refused for want of a membership, "
            "reset: outcome unknown)",
            ["result"],
            registry=registry,
        )
        self.transaction_seconds = Histogram(
            f"{P}transaction_seconds",
            "Duration of committed transactions: dead letters, state records, offsets, commit",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.changelog_bytes = Counter(
            f"{P}changelog_bytes", "Bytes of state records written to the changelog topic", registry=registry
        )
        self.state_errors = Counter(
            f"{P}state_errors",
            "Partitions refused at restore: a changelog record this consumer cannot read",
            ["partition"],
            registry=registry,
        )
        self.restore_seconds = Histogram(
            f"{P}restore_seconds",
            "Time to restore newly assigned partitions from the changelog",
            buckets=RESTORE_BUCKETS,
            registry=registry,
        )
        self.owned_objets = Gauge(
            f"{P}owned_objets", "(source, objet) states this process owns and exports", registry=registry
        )
        self._results = {r: self.messages.labels(r) for r in ("processed", "invalid", "duplicate")}
        self.ownership = Counter(
            f"{P}ownership_events",
            "Partition ownership events: assigned, revoked (by a rebalance), lost (membership gone)",
            ["event"],
            registry=registry,
        )
        for result in ("committed", "aborted", "lost", "reset"):
            self.transactions.labels(result)
        for event in ("assigned", "revoked", "lost"):
            self.ownership.labels(event)

    def watch(self, health: HealthState) -> None:
        """`ingestion_consumer_ready` reads the readiness at each scrape."""
        self.ready.set_function(lambda: float(health.ready()[0]))

    def result(self, result: str) -> Counter:
        return self._results[result]
