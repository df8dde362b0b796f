"""What the integration tests check on Kafka, the log store and the producer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from devstack.prometheus import instant_query
from devstack.stackcheck import scalar
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.event import normalise, parse_event
from ingestion_observability.producer import cli as producer_cli
from ingestion_observability.producer.generate import generate_records
from ingestion_observability.producer.publisher import event_key

REPO = Path(__file__).resolve().parents[2]
# The committed, generated rules the chart ships: the live tests prove this very file.
CHART_RULES = REPO / "charts" / "ingestion-observability" / "files" / "rules" / "ingestion-rules.yaml"


def wait_until(
    check: Callable[[], object],
    timeout: float = 60.0,
    what: str = "condition",
    seen: Callable[[], object] | None = None,
) -> None:
    """Until `check()` is true; the timeout error reports the last value `seen()` gave (or check's)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            if check():
                return
            last = seen() if seen else "false"
        except Exception as exc:  # a service briefly unavailable: keep waiting, report it if it lasts
            last = repr(exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout:.0f}s; last seen: {last}")
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


def send_keyed(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes | None]], partition: int | None = None
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    try:
        for key, value in messages:
            producer.send(topic, value=value, key=key, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


def send_raw(bootstrap: str, topic: str, values: Iterable[bytes | None]) -> None:
    send_keyed(bootstrap, topic, ((b"poison", value) for value in values))


def send_events(bootstrap: str, topic: str, records: Iterable[dict[str, Any]]) -> None:
    """Enriched events keyed as the producer keys them (source/objet: one partition per objet)."""
    events = (normalise(r) for r in records)
    send_keyed(bootstrap, topic, ((event_key(e), orjson.dumps(e)) for e in events))


@dataclass(frozen=True)
class Aggregates:
    """What Prometheus must show for a set of runs, each distinct run counted once."""

    runs: dict[str, int]  # by etat
    failures: int
    count: int  # every histogram's _count
    duration_sum: float
    cpu_sum: float
    memory_sum: float
    rows: int  # ingestion_rows_total: the runs that report rows

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> Aggregates:
        distinct = {run.key: run for run in (parse_event(normalise(r)) for r in records)}
        runs = list(distinct.values())
        by_etat: dict[str, int] = {}
        for run in runs:
            by_etat[run.etat] = by_etat.get(run.etat, 0) + 1
        return cls(
            by_etat,
            by_etat.get("FAILED", 0),
            len(runs),
            math.fsum(r.duree for r in runs),
            math.fsum(r.cpu for r in runs if r.cpu is not None),
            math.fsum(r.memory for r in runs if r.memory is not None),
            sum(r.rows for r in runs if r.rows is not None),
        )

    def exactly(self, other: Aggregates) -> bool:
        """Counts equal, sums equal to 1e-9 relative (float additions in another order)."""
        sums = ("duration_sum", "cpu_sum", "memory_sum")
        counts = (self.runs, self.failures, self.count, self.rows)
        return counts == (other.runs, other.failures, other.count, other.rows) and all(
            math.isclose(getattr(self, name), getattr(other, name), rel_tol=1e-9) for name in sums
        )


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


def prometheus_aggregates(prometheus_url: str) -> Aggregates:
    """The same aggregates as the Prometheus at `prometheus_url` sees them now, summed over every target."""

    def one(expr: str) -> float:
        return scalar(prometheus_url, expr) or 0.0

    by_etat = {
        r["metric"]["etat"]: int(float(r["value"][1]))
        for r in instant_query(prometheus_url, "sum by (etat) (ingestion_runs_total)")
    }
    return Aggregates(
        by_etat,
        int(one("sum(ingestion_failures_total)")),
        int(one("sum(ingestion_duration_seconds_count)")),
        one("sum(ingestion_duration_seconds_sum)"),
        one("sum(ingestion_cpu_usage_seconds_sum)"),
        one("sum(ingestion_memory_usage_bytes_sum)"),
        int(one("sum(ingestion_rows_total)")),
    )
