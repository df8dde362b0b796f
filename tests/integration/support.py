"""What the integration tests check on Kafka, the log store and the producer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.event import normalise
from ingestion_observability.producer import cli as producer_cli
from ingestion_observability.producer.generate import generate_records


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout:.0f}s")
        time.sleep(0.25)


def produce(bootstrap: str, topic: str, *args: str) -> int:
    """Run the real producer CLI in-process; returns its exit code."""
    return producer_cli.main([f"--bootstrap-servers={bootstrap}", f"--topic={topic}", "--no-progress", *args])


def runs(count: int, day: int) -> Iterator[dict[str, Any]]:
    """Generated raw records starting on their own day: run keys never collide across `day`s."""
    return generate_records(count, seed=day, start=datetime(2025, 9, 1, tzinfo=UTC) + timedelta(days=day))


def write_generated(path: Path, count: int, day: int) -> Path:
    with path.open("wb") as out:
        for record in runs(count, day):
            out.write(orjson.dumps(record) + b"\n")
    return path


def send_raw(bootstrap: str, topic: str, values: Iterable[bytes | None]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    try:
        for value in values:
            producer.send(topic, value=value, key=b"poison")
        producer.flush(timeout=30)
    finally:
        producer.close()


def send_events(bootstrap: str, topic: str, records: Iterable[dict[str, Any]]) -> None:
    send_raw(bootstrap, topic, (orjson.dumps(normalise(r)) for r in records))


def _offsets(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(committed by `group`, end) of `topic`, summed over partitions, read without joining the group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions)
        return sum(consumer.committed(tp) or 0 for tp in partitions), sum(ends.values())
    finally:
        consumer.close(autocommit=False)


def committed(bootstrap: str, group: str, topic: str) -> int:
    return _offsets(bootstrap, group, topic)[0]


def lag(bootstrap: str, group: str, topic: str) -> int:
    """Messages of `topic` not yet committed by `group`."""
    done, end = _offsets(bootstrap, group, topic)
    return end - done


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(timeout * 1000),
    )
    messages: list[Any] = []
    try:
        for message in consumer:
            messages.append(message)
            if len(messages) >= expected:
                break
    finally:
        consumer.close()
    return messages


def stored_lines(logstore: VictoriaLogsServer, job: str) -> int:
    """Distinct lines of `job` in the log store: what Loki holds (it stores an identical re-push once)."""
    return logstore.count_distinct(f'job:="{job}"')
