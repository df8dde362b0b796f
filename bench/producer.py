"""Producer throughput: the real `ingestion-producer` CLI (acks=all, idempotent, lz4) from an NDJSON file."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from bench.profile import summarise, wrap
from bench.report import rates
from ingestion_observability.producer.generate import generate_records

PRODUCER = [sys.executable, "-m", "ingestion_observability.producer.cli"]


@dataclass(frozen=True)
class ProducerResult:
    events: int
    seconds: float  # wall time of the whole CLI run: interpreter start, connect, publish, flush
    cpu_seconds: float  # CPU of the producer process (and its I/O thread)
    profile: dict[str, Any] | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **rates(self.events, self.seconds, self.cpu_seconds),
            "config": "acks=all, enable_idempotence=True, lz4, batch 256 KiB, linger 20 ms",
        }


def generate_file(path: Path, count: int) -> Path:
    """`ingestion-producer --generate N --output FILE`: N raw records as NDJSON."""
    _run([*PRODUCER, "--generate", str(count), "--output", str(path)], "generate")
    return path


def write_records(path: Path, records: Any) -> Path:
    """Raw records (an iterable of dicts) as NDJSON, for datasets the CLI's generator does not shape."""
    with path.open("wb") as out:
        for record in records:
            out.write(orjson.dumps(record) + b"\n")
    return path


def cardinality_file(path: Path, count: int, sources: int, objets_per_source: int) -> Path:
    return write_records(
        path, generate_records(count, sources=sources, objets_per_source=objets_per_source, seed=7)
    )


def publish(
    bootstrap: str, topic: str, path: Path, expected: int, profile: Path | None = None
) -> ProducerResult:
    """`ingestion-producer --file FILE --no-progress`, timed from spawn to exit (under py-spy with
    `profile`: a CPU profile of all its threads, written there and summarised)."""
    argv = [
        *PRODUCER,
        f"--bootstrap-servers={bootstrap}",
        f"--topic={topic}",
        f"--file={path}",
        "--no-progress",
        "--log-level=WARNING",
    ]
    started = time.perf_counter()
    usage_before = _children_cpu()
    out = _run(argv if profile is None else wrap(argv, profile), "publish")
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - usage_before
    closing = f"{expected} sent, 0 invalid, 0 failed"
    if closing not in out:
        raise RuntimeError(f"producer did not deliver every record (expected {closing!r}):\n{out[-2000:]}")
    written = topic_size(bootstrap, topic)
    if written != expected:
        raise RuntimeError(f"topic {topic} holds {written} messages, expected {expected}")
    return ProducerResult(expected, seconds, cpu, summarise(profile, thread=None) if profile else None)


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, client_id="bench-size")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return int(sum(consumer.end_offsets(partitions).values()))
    finally:
        consumer.close(autocommit=False)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(
            f"ingestion-producer ({what}) exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout + done.stderr
