"""What Prometheus sees is exact through graceful stops, SIGKILLs, scale-out, a broker restart and a zombie.

Real Kafka, a real Prometheus scraping every second with the chart's relabelings (business series keep no
instance), the real log store. Expected values are computed from the produced records, never from what a
consumer exposed.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.kafka import KafkaBroker
from devstack.prometheus import PrometheusServer
from devstack.stackcheck import scalar
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.producer.generate import generate_records
from ingestion_observability.sample import sample_logs_path
from tests.integration.fleet import Fleet
from tests.integration.support import (
    Aggregates,
    lag,
    runs,
    send_events,
    send_keyed,
    wait_until,
)

pytestmark = pytest.mark.integration


def firing(prometheus: PrometheusServer, alert: str) -> list[dict[str, Any]]:
    return [
        a["labels"]
        for a in prometheus.api("alerts")["alerts"]
        if a["state"] == "firing" and a["labels"]["alertname"] == alert
    ]


def test_a_stop_before_the_next_scrape_loses_nothing(fleet: Fleet) -> None:
    sample = json.loads(sample_logs_path().read_text())
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, sample)
    consumer = fleet.start("a")
    wait_until(lambda: consumer.total("ingestion_runs_total") == 72, what="the sample counted")
    fleet.wait_exact(Aggregates.of(sample))
    new = list(generate_records(20, seed=20, sources=1, objets_per_source=20, failure_ratio=0.0))
    new[7]["Etat"] = "FAILED"
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, new)
    wait_until(lambda: consumer.total("ingestion_runs_total") == 92, timeout=30, what="the 20 new runs")
    fleet.kill("a", signal.SIGTERM)  # right after /metrics shows them: most likely before the next scrape
    fleet.start("b")
    fleet.wait_exact(Aggregates.of(sample + new))
    failed = {(new[7]["Source"].lower(), new[7]["Objet"])}

    def alerted() -> set[tuple[str, str]]:
        return {(a["source"].lower(), a["objet"]) for a in firing(fleet.prometheus, "IngestionEchecDetecte")}

    wait_until(lambda: failed <= alerted(), timeout=60, what="the new failure alerted", seen=alerted)
    assert ("sharepoint_graph", "EventFactureApplication") in alerted()  # the sample's is still there
    # 71 + 19: the last run of every objet (waited for: the totals above may still be the stopped member's
    # last scrape, whose series go stale before the new member's first scrape)
    wait_until(
        lambda: scalar(fleet.prometheus.url, "count(ingestion_last_run_status == 1)") == 90,
        what="90 objets whose last run succeeded",
        seen=lambda: scalar(fleet.prometheus.url, "count(ingestion_last_run_status == 1)"),
    )


def test_sigkills_while_producing_are_exact(fleet: Fleet) -> None:
    total, chunk = 100_000, 1_000
    records = list(runs(total, day=40))
    expected = Aggregates.of(records)
    kills_done = threading.Event()

    def stream() -> None:  # paced while the consumer is killed again and again, then the rest at once
        for start in range(0, total, chunk):
            send_events(fleet.kafka.bootstrap_servers, fleet.topic, records[start : start + chunk])
            if not kills_done.is_set():
                time.sleep(0.8)

    producer = threading.Thread(target=stream, daemon=True)
    producer.start()
    rng = random.Random(20)
    for _ in range(20):
        fleet.start("a", ready=False)
        time.sleep(rng.uniform(0.5, 3.0))  # a different point each time: starting, restoring, mid-batch
        assert producer.is_alive(), "killed after the stream ended: not mid-stream"
        fleet.kill("a")
    kills_done.set()
    producer.join(300)
    fleet.start("a")
    fleet.wait_exact(expected, timeout=300)
    assert lag(fleet.kafka.bootstrap_servers, f"{fleet.topic}-group", fleet.topic) == 0


def test_scale_out_and_a_lost_member_are_exact(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, tmp_path: Path
) -> None:
    topic = "scale-out"
    kafka.create_topics([topic, f"{topic}.dlq"], partitions=6)
    fleet = Fleet(kafka, logstore, topic, tmp_path)
    try:
        records = list(runs(100_000, day=50))
        for name in ("a", "b", "c"):
            fleet.start(name)
        half = len(records) // 2
        send_events(kafka.bootstrap_servers, topic, records[:half])
        fleet.kill("b")  # lost mid-stream
        fleet.start("d")  # and another one added
        send_events(kafka.bootstrap_servers, topic, records[half:])
        fleet.wait_exact(Aggregates.of(records), timeout=300)
        # each series has one owner: no (source, objet) exported by two members
        owners: dict[tuple[str, str], list[str]] = {}
        for name, consumer in fleet.members.items():
            for sample, labels, _ in consumer.samples():
                if sample == "ingestion_failures_total":
                    owners.setdefault((labels["source"], labels["objet"]), []).append(name)
        assert owners and all(len(names) == 1 for names in owners.values())
        assert len({name for names in owners.values() for name in names}) == 3
        assert fleet.counter_resets() == 0
    finally:
        fleet.close()


def test_a_broker_restart_mid_stream_is_exact(logstore: VictoriaLogsServer, tmp_path: Path) -> None:
    broker = KafkaBroker.start(tmp_path / "kafka")
    topic = "broker-restart"
    broker.create_topics([topic, f"{topic}.dlq"], partitions=3)
    fleet = Fleet(broker, logstore, topic, tmp_path)
    try:
        records = list(runs(20_000, day=60))
        fleet.start("a")
        send_events(broker.bootstrap_servers, topic, records[:10_000])
        wait_until(lambda: fleet.members["a"].total("ingestion_runs_total") > 0, what="consumption started")
        port = broker.port
        broker.stop()
        time.sleep(3)
        broker = fleet.kafka = KafkaBroker.start(tmp_path / "kafka", port)
        send_events(broker.bootstrap_servers, topic, records[10_000:])
        fleet.wait_exact(Aggregates.of(records), timeout=300)
    finally:
        fleet.close()
        broker.stop()


def test_a_frozen_zombie_is_fenced(fleet: Fleet) -> None:
    records = list(runs(20_000, day=70))
    zombie = fleet.start("a")
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, records[:10_000])
    wait_until(lambda: zombie.total("ingestion_runs_total") > 0, what="consumption started")
    zombie.process.signal(signal.SIGSTOP)  # frozen mid-stream, past its session timeout
    heir = fleet.start("b")
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, records[10_000:])
    wait_until(lambda: heir.total("ingestion_consumer_owned_objets") > 0, what="the heir owns the partitions")
    zombie.process.signal(signal.SIGCONT)  # it wakes up with a batch it believes is its own
    fleet.wait_exact(Aggregates.of(records), timeout=180)
    time.sleep(3)  # whatever the zombie still tries, it is fenced: nothing is counted twice
    fleet.wait_exact(Aggregates.of(records), timeout=30)


def test_a_replay_after_a_restart_is_all_duplicates(fleet: Fleet) -> None:
    records = list(runs(500, day=80))
    consumer = fleet.start("a")
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, records)
    fleet.wait_exact(Aggregates.of(records))
    fleet.kill("a", signal.SIGTERM)
    again = fleet.start("a")
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, records)  # the same file published again
    wait_until(
        lambda: again.total("ingestion_consumer_messages_total", result="duplicate") == 500,
        what="500 duplicates",
        seen=lambda: again.total("ingestion_consumer_messages_total", result="duplicate"),
    )
    assert again.total("ingestion_consumer_messages_total", result="processed") == 0
    fleet.wait_exact(Aggregates.of(records))
    assert consumer.process.proc.returncode == 0


def test_a_corrupted_state_record_is_refused_loudly(fleet: Fleet) -> None:
    records = list(runs(600, day=90))
    first = fleet.start("a")
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, records)
    fleet.wait_exact(Aggregates.of(records))
    before = {
        (labels["source"], labels["objet"]): value
        for name, labels, value in first.samples()
        if name == "ingestion_failures_total"
    }
    fleet.kill("a", signal.SIGTERM)
    # a record of an unknown schema version on partition 1 of the changelog
    send_keyed(
        fleet.kafka.bootstrap_servers,
        f"{fleet.topic}.state",
        [(b"zz/corrupt", b'{"v": 99}')],
        partition=1,
    )
    consumer = fleet.start("a", ready=False)
    wait_until(
        lambda: consumer.total("ingestion_consumer_state_errors_total", partition="1") == 1,
        what="the refused partition counted",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{consumer.url}/readyz", timeout=5)
    reason = refused.value.read().decode()
    assert refused.value.code == 503 and "partition 1" in reason and "version 99" in reason
    exported = {
        (labels["source"], labels["objet"]): value
        for name, labels, value in consumer.samples()
        if name == "ingestion_failures_total"
    }
    # partitions 0 and 2 are served at their values; partition 1's series are absent, never 0
    assert exported and set(exported) < set(before)
    assert all(value == before[key] for key, value in exported.items())

    # the documented recovery: recount the partitions from the topic's start, then run as usual
    fleet.kill("a", signal.SIGTERM)
    fleet.start("a", args=("--rebuild-state",))
    fleet.wait_exact(Aggregates.of(records))
    fleet.kill("a", signal.SIGTERM)
    fleet.start("a")  # the changelog holds the rebuilt state: no tombstoned or corrupted record is left
    fleet.wait_exact(Aggregates.of(records))
