"""The consumer under restarts, redeliveries, poison messages and a log-store outage (crashes, scale-out and
zombies, measured in Prometheus: test_exact_counts.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devstack.consumer import ConsumerProcess
from devstack.kafka import KafkaBroker
from devstack.process import free_port
from devstack.victorialogs import VictoriaLogsServer
from tests.integration.support import (
    lag,
    produce,
    read_topic,
    runs,
    send_events,
    send_raw,
    stored_lines,
    wait_until,
    write_generated,
)

pytestmark = pytest.mark.integration

PROCESSED = "ingestion_consumer_messages_total"


def start_consumer(kafka: KafkaBroker, push_url: str, topic: str, log: Path) -> ConsumerProcess:
    consumer = ConsumerProcess.start(
        log,
        kafka.bootstrap_servers,
        push_url,
        topic=topic,
        group_id=f"{topic}-group",
        extra_args=[f"--loki-job={topic}", "--session-timeout-ms=6000"],  # restarts after SIGKILL rejoin fast
    )
    consumer.wait_ready()
    return consumer


def processed(consumer: ConsumerProcess) -> float:
    return consumer.total(PROCESSED, result="processed")


def test_stopped_consumer_catches_up_exactly(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    first = write_generated(tmp_path / "first.ndjson", 500, day=1)
    second = write_generated(tmp_path / "second.ndjson", 300, day=2)
    consumer = start_consumer(kafka, logstore.push_url, topic, tmp_path / "consumer-1.log")
    assert produce(kafka.bootstrap_servers, topic, f"--file={first}") == 0
    wait_until(lambda: processed(consumer) == 500, what="500 processed")
    assert consumer.total("ingestion_runs_total") == 500
    started = time.monotonic()
    assert consumer.stop() == 0  # SIGTERM: batch finished, committed, exit 0
    assert time.monotonic() - started < 10

    assert produce(kafka.bootstrap_servers, topic, f"--file={second}") == 0
    assert lag(kafka.bootstrap_servers, f"{topic}-group", topic) == 300

    with start_consumer(kafka, logstore.push_url, topic, tmp_path / "consumer-2.log") as restarted:
        wait_until(lambda: processed(restarted) == 300, what="the 300 produced while stopped")
        time.sleep(2)  # nothing more arrives: no redelivery of the first 500
        assert processed(restarted) == 300
        assert restarted.total(PROCESSED, result="duplicate") == 0
        assert restarted.total("ingestion_runs_total") == 800  # restored from the changelog, then +300
    assert lag(kafka.bootstrap_servers, f"{topic}-group", topic) == 0
    wait_until(
        lambda: stored_lines(logstore, topic) == 800,
        what="800 lines in the log store",
        seen=lambda: stored_lines(logstore, topic),
    )


def test_redelivered_runs_are_counted_once(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    records = list(runs(200, day=3))
    with start_consumer(kafka, logstore.push_url, topic, tmp_path / "consumer.log") as consumer:
        send_events(kafka.bootstrap_servers, topic, records)
        wait_until(lambda: processed(consumer) == 200, what="200 processed")
        send_events(kafka.bootstrap_servers, topic, records)  # the same runs again (a replay)
        wait_until(lambda: consumer.total(PROCESSED, result="duplicate") == 200, what="200 duplicates")
        assert processed(consumer) == 200
        assert consumer.total("ingestion_runs_total") == 200
        failed = sum(r["Etat"] == "FAILED" for r in records)
        assert consumer.total("ingestion_failures_total") == failed


POISON: list[bytes | None] = [
    b"not json at all",
    b'{"@version": "1", "etat": 5}',
    b"[1, 2, 3]",
    b'{"@version": "1", "etat": "SUCCESS", "source": {"name": "x"}, "objet": {"name": "y"}, "labels": {}, '
    b'"performance": {"duree_secondes": "slow"}, "debut": "2025-01-01T00:00:00Z", '
    b'"fin": "2025-01-01T00:00:01Z"}',
    b'{"Description": "' + b"x" * 200_000 + b'"}',
    None,
    b"\xff\xfe not utf-8",
]


def test_poison_messages_go_to_the_dlq(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    with start_consumer(kafka, logstore.push_url, topic, tmp_path / "consumer.log") as consumer:
        send_raw(kafka.bootstrap_servers, topic, POISON)
        wait_until(lambda: consumer.total(PROCESSED, result="invalid") == len(POISON), what="poison counted")
        assert consumer.total("ingestion_runs_total") == 0
        assert consumer.total("ingestion_consumer_dlq_writes_total") == len(POISON)
        dead = read_topic(kafka.bootstrap_servers, f"{topic}.dlq", len(POISON))
        assert sorted((m.value or b"") for m in dead) == sorted((v or b"") for v in POISON)
        errors = {dict(m.headers)["error"].decode() for m in dead}
        assert any("not valid JSON" in e or "unexpected" in e.lower() for e in errors)
        assert any("exceeds" in e for e in errors)
        assert all(dict(m.headers)["source.topic"] == topic.encode() for m in dead)
        # still healthy and still consuming
        send_events(kafka.bootstrap_servers, topic, runs(10, day=5))
        wait_until(lambda: processed(consumer) == 10, what="valid events after the poison")
        assert lag(kafka.bootstrap_servers, f"{topic}-group", topic) == 0


def test_log_store_outage_pauses_and_loses_nothing(kafka: KafkaBroker, topic: str, tmp_path: Path) -> None:
    port = free_port()
    outage_store = VictoriaLogsServer.start(tmp_path / "logstore", port)
    try:
        consumer = start_consumer(kafka, outage_store.push_url, topic, tmp_path / "consumer.log")
    except BaseException:
        outage_store.stop()
        raise
    try:
        send_events(kafka.bootstrap_servers, topic, runs(50, day=6))
        wait_until(lambda: processed(consumer) == 50, what="50 processed")
        outage_store.stop()

        send_events(kafka.bootstrap_servers, topic, runs(300, day=7))
        time.sleep(5)  # the consumer retries, paused: nothing committed, nothing counted
        assert processed(consumer) == 50
        assert lag(kafka.bootstrap_servers, f"{topic}-group", topic) == 300
        assert consumer.total("ingestion_consumer_loki_push_failures_total") > 0
        assert consumer.process.alive()

        outage_store = VictoriaLogsServer.start(tmp_path / "logstore", port)
        wait_until(lambda: processed(consumer) == 350, timeout=90, what="caught up after the store came back")
        # waited for: the transaction coordinator writes the offsets' commit markers after EndTxn returns,
        # and this reader (not read_committed) may see the previous offsets for a moment
        wait_until(
            lambda: lag(kafka.bootstrap_servers, f"{topic}-group", topic) == 0,
            what="every offset committed",
            seen=lambda: lag(kafka.bootstrap_servers, f"{topic}-group", topic),
        )
        # the store flushed the first 50 when it stopped, and kept its data directory
        wait_until(lambda: stored_lines(outage_store, topic) == 350, what="350 lines in the log store")
    finally:
        consumer.stop()
        outage_store.stop()
