"""The physical limit on this machine: a bare kafka-python poll loop (no decoding, no processing)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from bench.report import rates
from ingestion_observability.event import normalise
from ingestion_observability.producer.publisher import Publisher, event_key


@dataclass(frozen=True)
class RawResult:
    events: int  # counted between the first non-empty poll and the last
    seconds: float
    cpu_seconds: float
    total_seconds: float  # from before the first poll: connect, metadata, first fetch included

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **rates(self.events, self.seconds, self.cpu_seconds),
            "total_seconds": round(self.total_seconds, 3),
        }


def poll_loop(
    bootstrap: str, topic: str, expected: int, config: Mapping[str, Any], timeout: float = 600.0
) -> RawResult:
    """Read `expected` messages of `topic` from the beginning with `config` (the consumer's fetch settings).

    Timed like the consumer: from the first batch returned to the last message, so connection and group
    set-up are left out of the rate (they are in `total_seconds`).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        client_id="bench-raw",
        **config,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        count, first = 0, 0
        started, cpu_started = time.perf_counter(), time.process_time()
        deadline = started + timeout
        t0 = cpu0 = 0.0
        while count < expected:
            records = consumer.poll(timeout_ms=500)
            batch = sum(len(messages) for messages in records.values())
            if batch and not count:
                t0, cpu0, first = time.perf_counter(), time.process_time(), batch
            count += batch
            if time.perf_counter() > deadline:
                raise TimeoutError(f"raw poll loop read {count} of {expected} messages in {timeout:.0f}s")
        end, cpu = time.perf_counter(), time.process_time()
    finally:
        consumer.close(autocommit=False)
    if count == first:  # everything came in the first batch (a tiny smoke run): time the whole loop
        return RawResult(count, end - started, cpu - cpu_started, end - started)
    return RawResult(count - first, end - t0, cpu - cpu0, end - started)


def produce_loop(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> RawResult:
    """The producer's limit: the CLI's own KafkaProducer (the Publisher's: acks=all, idempotence, lz4,
    batching) sending pre-encoded (key, value) pairs, no reading, no validation; every send confirmed."""
    publisher = Publisher(bootstrap, topic)
    producer = publisher._producer  # the very producer the CLI sends with, same settings
    started, cpu_started = time.perf_counter(), time.process_time()
    futures = [producer.send(topic, key=key, value=value) for key, value in records]
    delivery = publisher.close(timeout=600)
    end, cpu = time.perf_counter(), time.process_time()
    failed = sum(1 for future in futures if not future.succeeded())
    if failed or delivery.failed:
        raise RuntimeError(f"raw producer: {failed} of {len(records)} sends failed")
    return RawResult(len(records), end - started, cpu - cpu_started, end - started)


def encoded_events(path: Path) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record of an NDJSON file, as the producer publishes them."""
    out = []
    with path.open("rb") as lines:
        for line in lines:
            event = normalise(orjson.loads(line))
            out.append((event_key(event), orjson.dumps(event)))
    return out
