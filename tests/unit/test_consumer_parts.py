from __future__ import annotations

import gzip
import json

import pytest
from prometheus_client import CollectorRegistry

from ingestion_observability.consumer.batch import StagedBatch
from ingestion_observability.consumer.cardinality import OTHER, ObjetCap
from ingestion_observability.consumer.dedupe import SeenCache
from ingestion_observability.consumer.loki import MAX_AHEAD, MAX_BEHIND, Entry, LokiBatch, entry_timestamp
from ingestion_observability.consumer.metrics import IngestionMetrics
from ingestion_observability.consumer.recovery import RecoveryTracker
from ingestion_observability.event import Run


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_seen_cache_expires_after_ttl() -> None:
    clock = FakeClock()
    cache = SeenCache(max_entries=10, ttl=60, clock=clock)
    cache.add_all([1, 2])
    assert 1 in cache and 2 in cache and 3 not in cache
    clock.now += 61
    assert 1 not in cache
    cache.add_all([3])
    assert len(cache) == 1  # expired keys are evicted on the next add


def test_seen_cache_is_bounded_oldest_first() -> None:
    clock = FakeClock()
    cache = SeenCache(max_entries=3, ttl=60, clock=clock)
    cache.add_all([1, 2, 3])
    clock.now += 1
    cache.add_all([1, 4])  # 1 is refreshed, so 2 is now the oldest
    assert len(cache) == 3
    assert 2 not in cache and 3 in cache and 1 in cache and 4 in cache


def test_recovery_from_first_failure_to_next_success() -> None:
    tracker = RecoveryTracker()
    assert tracker.observe("s", "o", failed=False, end=10) is None
    assert tracker.observe("s", "o", failed=True, end=100) is None
    assert tracker.observe("s", "o", failed=True, end=160) is None
    assert tracker.observe("s", "other", failed=False, end=200) is None
    assert tracker.observe("s", "o", failed=False, end=400) == 300
    assert tracker.observe("s", "o", failed=False, end=500) is None
    assert len(tracker) == 0


def test_objet_cap_folds_into_other_beyond_the_limit() -> None:
    cap = ObjetCap(max_per_source=2)
    assert cap.label("s", "a") == ("a", False)
    assert cap.label("s", "b") == ("b", False)
    assert cap.label("s", "c") == (OTHER, True)
    assert cap.label("s", "a") == ("a", False)
    assert cap.label("t", "c") == ("c", False)  # per source


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("event_end", "ingested", "expected"),
    [
        (NOW - 60, NOW - 1, NOW - 60),  # recent: the run's end time
        (NOW - MAX_BEHIND + 1, NOW, NOW - MAX_BEHIND + 1),
        (NOW - 2 * 3600, NOW - 5, NOW - 5),  # too far behind: ingestion time
        (NOW - 30 * 86400, NOW - 5, NOW - 5),  # older than Loki's 7 days
        (NOW + MAX_AHEAD + 60, NOW - 5, NOW - 5),  # in the future (clock skew)
        (NOW - 30 * 86400, NOW - 30 * 86400, NOW),  # replayed old topic: now
    ],
)
def test_loki_timestamp_choice(event_end: float, ingested: float, expected: float) -> None:
    assert entry_timestamp(event_end, ingested, NOW) == expected


def test_loki_batch_groups_streams_and_keeps_objet_out_of_labels() -> None:
    batch = LokiBatch("ingestion-logs")
    batch.add(("PowerBI", "SUCCESS", "akonovia", "1-Raw"), Entry(NOW - 10, NOW, '{"a":1}', "workspaces"))
    batch.add(("PowerBI", "SUCCESS", "akonovia", "1-Raw"), Entry(NOW - 5, NOW, '{"a":2}', "datasets"))
    batch.add(("Efficy", "FAILED", "", ""), Entry(NOW - 3 * 3600, NOW - 1, '{"a":3}', "Contact"))
    body = json.loads(gzip.decompress(batch.payload(NOW)))
    assert batch.count == 3
    streams = {json.dumps(s["stream"], sort_keys=True): s["values"] for s in body["streams"]}
    powerbi = streams[
        json.dumps(
            {
                "job": "ingestion-logs",
                "source": "PowerBI",
                "etat": "SUCCESS",
                "entreprise": "akonovia",
                "zone": "1-Raw",
            },
            sort_keys=True,
        )
    ]
    assert powerbi == [
        [str(int((NOW - 10) * 1e9)), '{"a":1}', {"objet": "workspaces"}],
        [str(int((NOW - 5) * 1e9)), '{"a":2}', {"objet": "datasets"}],
    ]
    # empty label values are left out (Loki refuses them); too-old entries take the ingestion time
    efficy = streams[
        json.dumps({"job": "ingestion-logs", "source": "Efficy", "etat": "FAILED"}, sort_keys=True)
    ]
    assert efficy == [[str(int((NOW - 1) * 1e9)), '{"a":3}', {"objet": "Contact"}]]


def run(objet: str, etat: str = "SUCCESS", fin: float = NOW) -> Run:
    return Run("src", objet, etat, "akonovia", "1-Raw", "2025-01-01T00:00:00.000Z", fin, 1.5, 0.2, 8 << 20)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_staged_batch_is_invisible_until_applied() -> None:
    registry = CollectorRegistry()
    metrics = IngestionMetrics(registry)
    batch = StagedBatch()
    for i, (objet, etat) in enumerate([("a", "SUCCESS"), ("a", "SUCCESS"), ("b", "FAILED")]):
        batch.add_run(run(objet, etat, NOW + i), objet, metrics.objet("src", objet), key=i)
    batch.messages, batch.invalid, batch.duplicates = 5, 1, 1
    labels = {"source": "src", "objet": "a", "entreprise": "akonovia", "zone": "1-Raw"}
    assert sample(registry, "ingestion_runs_total", etat="SUCCESS", **labels) is None
    assert sample(registry, "ingestion_duration_seconds_count", source="src", objet="a") == 0
    batch.apply(metrics)
    assert sample(registry, "ingestion_runs_total", etat="SUCCESS", **labels) == 2
    assert sample(registry, "ingestion_failures_total", source="src", objet="a") == 0
    assert sample(registry, "ingestion_failures_total", source="src", objet="b") == 1
    assert sample(registry, "ingestion_duration_seconds_count", source="src", objet="a") == 2
    assert (
        sample(registry, "ingestion_memory_usage_bytes_bucket", source="src", objet="a", le="1.048576e+07")
        == 2
    )
    assert sample(registry, "ingestion_last_run_timestamp", source="src") == NOW + 2
    assert sample(registry, "ingestion_consumer_messages_total", result="processed") == 3
    assert sample(registry, "ingestion_consumer_messages_total", result="invalid") == 1
    assert sample(registry, "ingestion_consumer_messages_total", result="duplicate") == 1


def test_last_run_gauge_never_moves_back_in_event_time() -> None:
    registry = CollectorRegistry()
    metrics = IngestionMetrics(registry)
    metrics.advance_last_run("src", NOW)
    metrics.advance_last_run("src", NOW - 100)
    assert sample(registry, "ingestion_last_run_timestamp", source="src") == NOW
