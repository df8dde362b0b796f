"""End to end on the real services: sample logs.json → producer → Kafka → consumer → Prometheus, log store."""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from devstack.consumer import ConsumerProcess
from devstack.kafka import KafkaBroker
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.producer.generate import generate_records
from tests.integration.conftest import Pipeline
from tests.integration.support import send_events, wait_until

pytestmark = pytest.mark.integration

TOPIC = "ingestion-logs"


def test_producer_publishes_the_sample(pipeline: Pipeline) -> None:
    assert pipeline.producer_exit == 0
    assert "72 sent, 0 invalid, 0 failed" in pipeline.producer_output


def test_prometheus_counts_the_seed_values(pipeline: Pipeline) -> None:
    prom = pipeline.prometheus
    assert prom.query("count(ingestion_runs_total)")[0]["value"][1] == "72"
    by_etat = {r["metric"]["etat"]: r["value"][1] for r in prom.query("sum by (etat) (ingestion_runs_total)")}
    assert by_etat == {"SUCCESS": "71", "FAILED": "1"}
    failures = prom.query(
        'ingestion_failures_total{source="sharepoint_graph",objet="EventFactureApplication"}'
    )
    assert [r["value"][1] for r in failures] == ["1"]
    assert prom.query("sum(ingestion_failures_total)")[0]["value"][1] == "1"
    # one histogram series per (source, objet), the seed's step 4
    assert len(prom.query("ingestion_duration_seconds_sum")) == 72
    assert prom.query("count(ingestion_last_run_timestamp)")[0]["value"][1] == "72"  # one per objet
    assert prom.query("count(max by (source) (ingestion_last_run_timestamp))")[0]["value"][1] == "5"


def test_last_run_timestamp_is_event_time(pipeline: Pipeline) -> None:
    # rebased: the newest run of the sample ends "now", at producer start; never in the future
    newest = float(pipeline.prometheus.query("max(ingestion_last_run_timestamp)")[0]["value"][1])
    age = float(pipeline.prometheus.query("time() - max(ingestion_last_run_timestamp)")[0]["value"][1])
    assert newest > 0 and 0 <= age < 300


def test_log_store_holds_the_failed_run(pipeline: Pipeline) -> None:
    store = pipeline.logstore
    [row] = store.query('job:="ingestion-logs" etat:="FAILED"')
    event = orjson.loads(row["_msg"])
    assert (event["source"]["name"], event["objet"]["name"], event["etat"]) == (
        "sharepoint_graph",
        "EventFactureApplication",
        "FAILED",
    )
    assert "Timeout" in event["description"]
    # Loki stream labels (low cardinality) and objet as structured metadata, as the dashboards select them
    assert set(re.findall(r'(\w+)="', row["_stream"])) == {"job", "source", "etat", "entreprise", "zone"}
    assert row["objet"] == "EventFactureApplication"
    assert store.count('job:="ingestion-logs"') == 72
    assert store.rows_dropped() == 0


def test_consumer_endpoints(pipeline: Pipeline) -> None:
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(pipeline.consumer.url + path, timeout=5) as resp:
            assert resp.status == 200
    assert pipeline.consumer.total("ingestion_consumer_messages_total", result="processed") == 72
    assert pipeline.consumer.total("ingestion_consumer_messages_total", result="invalid") == 0
    wait_until(lambda: pipeline.consumer.total("kafka_consumer_lag", topic=TOPIC) == 0, what="lag back to 0")
    lag_series = [s for s in pipeline.consumer.samples() if s[0] == "kafka_consumer_lag"]
    assert {labels["partition"] for _, labels, _ in lag_series} == {"0", "1", "2"}


def test_no_line_dropped_for_its_age(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    """Runs that ended 30 days ago: older than the store (and Loki) accept, yet every line is kept."""
    month_ago = datetime.now(UTC) - timedelta(days=30)
    records = list(generate_records(200, seed=30, start=month_ago))
    with ConsumerProcess.start(
        tmp_path / "consumer.log",
        kafka.bootstrap_servers,
        logstore.push_url,
        topic=topic,
        group_id=f"{topic}-group",
        extra_args=[f"--loki-job={topic}"],
    ) as consumer:
        consumer.wait_ready()
        send_events(kafka.bootstrap_servers, topic, records)
        wait_until(lambda: consumer.total("ingestion_runs_total") == 200, what="200 runs counted")
        wait_until(lambda: logstore.count(f'job:="{topic}"') == 200, what="200 lines stored")
    assert logstore.rows_dropped() == 0
