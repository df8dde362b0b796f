"""Restore time: a consumer taking over partitions whose changelog holds the state of N series."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import consumer as consumer_bench
from bench import producer
from devstack.consumer import ConsumerProcess
from devstack.localstack import LocalStack

SOURCES = 10
SERIES_PER_STATE = 60  # an objet with one run: runs, failures, 4 histograms (56 series), last run, status


def measure(services: LocalStack, work: Path, series: int) -> dict[str, Any]:
    """One run of each of ~series/60 objets consumed once, then a new consumer restores their states."""
    objets = max(1, -(-series // (SERIES_PER_STATE * SOURCES)))
    states = objets * SOURCES
    path = producer.cardinality_file(work / f"restore-{series}.ndjson", states, SOURCES, objets)
    topic = services.create_topic(f"bench-restore-{series}")
    producer.publish(services.kafka.bootstrap_servers, topic, path, states)
    path.unlink()
    group = f"bench-restore-{series}"
    args = [f"--max-objets-per-source={objets}"]
    first = consumer_bench.run(
        work / f"consumer-restore-{series}-1.log",
        services.kafka.bootstrap_servers,
        services.logstore.push_url,
        topic,
        states,
        group=group,
        extra_args=args,
    )
    spawned = time.perf_counter()
    with ConsumerProcess.start(
        work / f"consumer-restore-{series}-2.log",
        services.kafka.bootstrap_servers,
        services.logstore.push_url,
        topic=topic,
        group_id=group,
        extra_args=["--log-level=WARNING", f"--state-topic={topic}.{group}.state", *args],
    ) as restored:
        restored.wait_ready(timeout=600)
        ready = time.perf_counter() - spawned
        owned = restored.total("ingestion_consumer_owned_objets")
        restore_seconds = restored.total("ingestion_consumer_restore_seconds_sum")
        exported = sum(
            1
            for name, _, _ in restored.samples()
            if name.startswith("ingestion_") and not name.startswith("ingestion_consumer_")
        )
    changelog = first.metrics.get("ingestion_consumer_changelog_bytes_total", 0.0)
    return {
        "series": exported,
        "states": states,
        "owned_after_restore": int(owned),
        "restore_seconds": round(restore_seconds, 3),
        "spawn_to_ready_seconds": round(ready, 3),
        "changelog_bytes_per_state": round(changelog / states) if states else 0,
    }
