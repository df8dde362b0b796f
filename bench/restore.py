"""Restore time: a consumer taking over partitions whose changelog holds N objet states (one per series)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import consumer as consumer_bench
from bench import producer
from bench.services import Services
from devstack.consumer import ConsumerProcess

SOURCES = 10


def measure(services: Services, work: Path, states: int) -> dict[str, Any]:
    """N runs of N distinct objets consumed once, then a new consumer restores their N states."""
    objets = states // SOURCES
    path = producer.cardinality_file(work / f"restore-{states}.ndjson", states, SOURCES, objets)
    topic = services.topic(f"bench-restore-{states}")
    producer.publish(services.kafka.bootstrap_servers, topic, path, states)
    path.unlink()
    group = f"bench-restore-{states}"
    args = [f"--max-objets-per-source={objets}"]
    first = consumer_bench.run(
        work / f"consumer-restore-{states}-1.log",
        services.kafka.bootstrap_servers,
        services.logstore.push_url,
        topic,
        states,
        group=group,
        extra_args=args,
    )
    spawned = time.perf_counter()
    with ConsumerProcess.start(
        work / f"consumer-restore-{states}-2.log",
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
    changelog = first.metrics.get("ingestion_consumer_changelog_bytes_total", 0.0)
    return {
        "states": states,
        "owned_after_restore": int(owned),
        "restore_seconds": round(restore_seconds, 3),
        "spawn_to_ready_seconds": round(ready, 3),
        "changelog_bytes_per_state": round(changelog / states) if states else 0,
    }
