"""The intake on the real services: the real OpenLineage client and a real `dbt-ol` run report to it, the
real consumer turns what it published into Prometheus series, alerts and log lines.

Kafka, Prometheus (scraping the consumer and the intake, with the chart's rules), VictoriaLogs and the
consumer are the real ones; the intake runs as its own process (`ingestion-intake`).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import urllib3
from kafka import KafkaConsumer, TopicPartition
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunState
from prometheus_client.parser import text_string_to_metric_families

from devstack.consumer import ConsumerProcess
from devstack.intake import IntakeProcess
from devstack.kafka import KafkaBroker
from devstack.prometheus import PrometheusServer
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.sample import sample_logs_path
from tests.integration.lineage import PRODUCER, lineage_client, run_event
from tests.integration.support import CHART_RULES, REPO, read_topic, wait_until

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-from-a-secret"
DBT_BIN = REPO / ".venv" / "dbt" / "bin"  # `make install` puts dbt-ol there (see pyproject's intake-dbt)


# --- helpers ------------------------------------------------------------------------------------------------


def start_intake(work: Path, bootstrap: str, topic: str, *extra: str) -> IntakeProcess:
    token_file = work / "tokens"
    token_file.write_text(f"# rotated by the Secret\n{TOKEN}\n")
    intake = IntakeProcess.start(
        work / "intake.log", bootstrap, topic, extra_args=[f"--token-file={token_file}", *extra]
    )
    try:
        intake.wait_ready()
    except BaseException:
        intake.stop()
        raise
    return intake


def client(intake: IntakeProcess, **retry: Any) -> OpenLineageClient:
    """The real OpenLineage client, HttpTransport and `api_key` auth, as a job would configure it."""
    return lineage_client(intake.url, TOKEN, **retry)


def intake_metrics(intake: IntakeProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib3.PoolManager() as pool:
        text = pool.request("GET", f"{intake.url}/metrics").data.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def intake_total(intake: IntakeProcess, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in intake_metrics(intake).items() if n == name and wanted <= lbls)


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def runs_by(prometheus: PrometheusServer, source: str) -> dict[tuple[str, str], int]:
    result = prometheus.query(f'sum by (objet, etat) (ingestion_runs_total{{source="{source}"}})')
    return {(r["metric"]["objet"], r["metric"]["etat"]): int(float(r["value"][1])) for r in result}


def firing(prometheus: PrometheusServer, alert: str, source: str) -> set[str]:
    result = prometheus.query(f'ALERTS{{alertname="{alert}", alertstate="firing", source="{source}"}}')
    return {r["metric"]["objet"] for r in result}


@dataclass
class Stack:
    kafka: KafkaBroker
    logstore: VictoriaLogsServer
    topic: str
    consumer: ConsumerProcess
    prometheus: PrometheusServer
    intake: IntakeProcess

    def lines(self, source: str, etat: str) -> list[dict[str, Any]]:
        query = f'job:="{self.topic}" source:="{source}" etat:="{etat}"'
        return [orjson.loads(line) for line in self.logstore.lines(query)]


@pytest.fixture
def stack(kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path) -> Iterator[Stack]:
    """Consumer + intake on a fresh topic, Prometheus scraping both with the chart's rules."""
    with (
        ConsumerProcess.start(
            tmp_path / "consumer.log",
            kafka.bootstrap_servers,
            logstore.push_url,
            topic=topic,
            group_id=f"{topic}-group",
            extra_args=[f"--loki-job={topic}"],
        ) as consumer,
        start_intake(tmp_path, kafka.bootstrap_servers, topic) as intake,
        PrometheusServer.start(
            tmp_path / "prometheus",
            targets=[consumer.target],
            jobs={"ingestion-intake": [intake.target]},
            scrape_interval="1s",
            evaluation_interval="1s",
            rule_files=[CHART_RULES],
        ) as prometheus,
    ):
        consumer.wait_ready()
        yield Stack(kafka, logstore, topic, consumer, prometheus, intake)


# --- 1. the real client -------------------------------------------------------------------------------------


def test_openlineage_client_reports_50_successes_and_3_failures(stack: Stack) -> None:
    """Waits for the consumer side: pairing START with COMPLETE / FAIL into runs."""
    ol = client(stack.intake)
    source, now = "ol-client", datetime.now(UTC)
    runs: list[tuple[str, str, str | None]] = [(f"job-{i:02d}", str(uuid.uuid4()), None) for i in range(50)]
    runs += [(f"failing-{i}", str(uuid.uuid4()), f"API quota exceeded for failing-{i}") for i in range(3)]
    for name, run_id, _ in runs:
        ol.emit(run_event(RunState.START, source, name, run_id, now - timedelta(seconds=30)))
    for name, run_id, error in runs:
        state = RunState.COMPLETE if error is None else RunState.FAIL
        ol.emit(run_event(state, source, name, run_id, now, error))

    assert intake_total(stack.intake, "ingestion_intake_events_total", result="published") == 106
    expected = {(name, "SUCCESS" if error is None else "FAILED"): 1 for name, _, error in runs}
    wait_until(
        lambda: runs_by(stack.prometheus, source) == expected,
        timeout=60,
        what="50 SUCCESS, 3 FAILED",
        seen=lambda: runs_by(stack.prometheus, source),
    )
    wait_until(
        lambda: (
            firing(stack.prometheus, "IngestionEchecDetecte", source)
            == {"failing-0", "failing-1", "failing-2"}
        ),
        timeout=60,
        what="IngestionEchecDetecte for the 3 failures",
        seen=lambda: firing(stack.prometheus, "IngestionEchecDetecte", source),
    )
    wait_until(lambda: len(stack.lines(source, "FAILED")) == 3, timeout=30, what="3 FAILED lines")
    failed = {line["objet"]["name"]: line for line in stack.lines(source, "FAILED")}
    for name, run_id, error in runs[50:]:
        assert failed[name]["description"] == error
        assert failed[name]["objet"]["id"] == run_id
        assert failed[name]["performance"]["duree_secondes"] == pytest.approx(30, abs=0.01)
    # no resources facet: absent, not 0, in the histograms (only durations were observed)
    count = stack.prometheus.query(f'sum(ingestion_cpu_usage_seconds_count{{source="{source}"}})')
    assert not count or float(count[0]["value"][1]) == 0
    assert (
        float(
            stack.prometheus.query(f'sum(ingestion_duration_seconds_count{{source="{source}"}})')[0]["value"][
                1
            ]
        )
        == 53
    )


# --- 2. a real dbt run --------------------------------------------------------------------------------------


def write_dbt_project(root: Path) -> Path:
    """Three models: orders, customers (reads orders) and broken (reads a table that does not exist)."""
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text('name: tiny\nversion: "1.0"\nprofile: tiny\nconfig-version: 2\n')
    (root / "profiles.yml").write_text(
        "tiny:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {root / 'tiny.duckdb'}\n      threads: 1\n"
    )
    (root / "models" / "orders.sql").write_text("select 1 as id\n")
    (root / "models" / "customers.sql").write_text("select id from {{ ref('orders') }}\n")
    (root / "models" / "broken.sql").write_text("select id from missing_table\n")
    return root


def test_dbt_ol_run_reports_its_models(stack: Stack, tmp_path: Path) -> None:
    """Waits for the consumer side for the Prometheus and log-line checks (the intake checks pass now)."""
    assert (DBT_BIN / "dbt-ol").is_file(), f"{DBT_BIN / 'dbt-ol'} missing: run `make install`"
    project = write_dbt_project(tmp_path / "tiny")
    env = {
        **os.environ,
        "PATH": f"{DBT_BIN}{os.pathsep}{os.environ['PATH']}",  # dbt-ol runs `dbt`
        "OPENLINEAGE_URL": stack.intake.url,
        "OPENLINEAGE_ENDPOINT": "api/v1/lineage",
        "OPENLINEAGE_API_KEY": TOKEN,
        "OPENLINEAGE_NAMESPACE": "dbt-test",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    argv = [
        str(DBT_BIN / "dbt-ol"),
        "run",
        "--consume-structured-logs",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
    ]
    done = subprocess.run(
        argv, env=env, cwd=project, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # dbt's own exit code: one model failed
    assert "Emitted" in output and "OpenLineage events" in output, output
    events = [
        orjson.loads(m.value) for m in read_topic(stack.kafka.bootstrap_servers, stack.topic, 6, timeout=10)
    ]
    assert {e["job"]["namespace"] for e in events} == {"dbt-test"}
    assert intake_total(stack.intake, "ingestion_intake_events_total", result="invalid") == 0

    models = {
        "model.tiny.orders": "SUCCESS",
        "model.tiny.customers": "SUCCESS",
        "model.tiny.broken": "FAILED",
    }

    def model_runs() -> dict[str, str]:
        return {objet: etat for (objet, etat) in runs_by(stack.prometheus, "dbt-test") if objet in models}

    wait_until(
        lambda: model_runs() == models, timeout=60, what="2 models SUCCESS, broken FAILED", seen=model_runs
    )
    [broken] = [
        line for line in stack.lines("dbt-test", "FAILED") if line["objet"]["name"] == "model.tiny.broken"
    ]
    assert "Table with name missing_table does not exist" in broken["description"]
    wait_until(  # the dbt invocation itself: its end event may come in a later batch and scrape
        lambda: ("dbt-run-tiny", "FAILED") in runs_by(stack.prometheus, "dbt-test"),
        what="the dbt invocation FAILED",
        seen=lambda: runs_by(stack.prometheus, "dbt-test"),
    )


# --- 3. bad input -------------------------------------------------------------------------------------------


def post(
    intake: IntakeProcess, path: str, body: bytes, token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", intake.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()


def lineage_event(**changes: Any) -> dict[str, Any]:
    event = {
        "eventType": "START",
        "eventTime": datetime.now(UTC).isoformat(),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "bad-input", "name": "job"},
    }
    return {**event, **changes}


def test_bad_input_gets_its_status_and_reason(kafka: KafkaBroker, topic: str, tmp_path: Path) -> None:
    with start_intake(tmp_path, kafka.bootstrap_servers, topic) as intake:
        lineage = "/api/v1/lineage"
        status, body = post(intake, lineage, b'{"eventType": "START", "eventTime": ')
        assert (status, body["position"]) == (400, "body") and body["error"].startswith("not valid JSON")

        status, body = post(intake, lineage, orjson.dumps(lineage_event(run={"facets": {}})))
        assert status == 400 and body["published"] == 0
        assert body["items"] == [
            {"position": "body", "status": "invalid", "reason": "'run.runId' is missing"}
        ]

        status, body = post(intake, lineage, orjson.dumps([lineage_event(eventType="DONE")]))
        assert status == 400
        [item] = body["items"]
        assert item["position"] == "index 0" and item["reason"].startswith("unknown 'eventType' 'DONE'")

        status, body = post(intake, lineage, b"[" + b" " * (10 * 1024 * 1024) + b"]")
        assert status == 413 and "exceeds the 4194304-byte limit" in body["error"]

        for token in ("wrong-token", None):
            status, body = post(intake, lineage, orjson.dumps(lineage_event()), token=token)
            assert (status, body) == (401, {"error": "missing or invalid bearer token"})

        status, body = post(intake, "/api/v1/runs", b'{"Source": "PowerBI", "Objet": "w"}')
        assert status == 400 and body["items"][0]["reason"] == "'Etat' is missing"

        assert topic_size(kafka.bootstrap_servers, topic) == 0  # nothing reached the topic
        assert intake_total(intake, "ingestion_intake_requests_total", code="401") == 2
        assert intake_total(intake, "ingestion_intake_requests_total", code="413") == 1
        with urllib3.PoolManager() as pool:
            assert pool.request("GET", f"{intake.url}/healthz").status == 200
            assert pool.request("GET", f"{intake.url}/readyz").status == 200
        status, body = post(intake, lineage, orjson.dumps(lineage_event()))  # still serving
        assert (status, body["published"]) == (200, 1)
        assert topic_size(kafka.bootstrap_servers, topic) == 1


# --- 4. Kafka down during a POST ----------------------------------------------------------------------------


def test_kafka_down_gets_503_and_the_client_retry_lands_once(tmp_path: Path) -> None:
    """A broker of its own: the session's is shared by the other tests."""
    broker = KafkaBroker.start(tmp_path / "kafka")
    try:
        topic = "intake-outage"
        broker.create_topics([topic], partitions=3)
        with start_intake(
            tmp_path, broker.bootstrap_servers, topic, "--delivery-timeout=2", "--retry-after=1"
        ) as intake:
            # The client's own retry settings, as a job would set them: 503 is retried, honouring Retry-After.
            ol = client(
                intake,
                total=60,
                connect=60,
                read=60,
                backoff_factor=0.2,
                status_forcelist=[503],
                allowed_methods=["POST"],
            )
            run_id, now = str(uuid.uuid4()), datetime.now(UTC)
            ol.emit(run_event(RunState.START, "outage", "job", run_id, now - timedelta(seconds=5)))
            port = broker.port
            broker.stop()
            errors: list[BaseException] = []

            def complete() -> None:
                try:
                    ol.emit(run_event(RunState.COMPLETE, "outage", "job", run_id, now))
                except BaseException as exc:
                    errors.append(exc)

            emitter = threading.Thread(target=complete)
            emitter.start()
            wait_until(
                lambda: (
                    intake_total(
                        intake, "ingestion_intake_requests_total", handler="/api/v1/lineage", code="503"
                    )
                    >= 2
                ),
                timeout=30,
                what="the client got 503 (and retried)",
            )
            broker = KafkaBroker.start(tmp_path / "kafka", port=port)
            emitter.join(timeout=180)
            assert not emitter.is_alive() and not errors, errors
            messages = read_topic(broker.bootstrap_servers, topic, 3, timeout=10)
            events = [orjson.loads(m.value) for m in messages]
            assert [(e["eventType"], e["run"]["runId"]) for e in events] == [
                ("START", run_id),
                ("COMPLETE", run_id),
            ]
            assert intake_total(intake, "ingestion_intake_events_total", result="published") == 2
            assert intake_total(intake, "ingestion_intake_events_total", result="failed") >= 2
            log = intake.log_path.read_text()
            assert "not acknowledged by Kafka" in log
    finally:
        broker.stop()


# --- 5. stuck run -------------------------------------------------------------------------------------------


def test_stuck_run_shows_in_progress_and_fires(stack: Stack) -> None:
    """Waits for the consumer side (open runs kept, the two gauges). The limit is the chart's (6 h): the
    stuck START is stamped 6 h 5 min ago, a fresh one just now; the rule itself is unit-tested by promtool
    (tests/rules/stuck.test.yaml)."""
    ol = client(stack.intake)
    now = datetime.now(UTC)
    stuck_start = now - timedelta(hours=6, minutes=5)
    ol.emit(run_event(RunState.START, "stuck", "nightly-export", str(uuid.uuid4()), stuck_start))
    ol.emit(run_event(RunState.START, "stuck", "hourly-export", str(uuid.uuid4()), now))
    gauges = 'ingestion_runs_in_progress{source="stuck"}'
    wait_until(
        lambda: stack.consumer.total("ingestion_runs_in_progress", source="stuck") == 2,
        timeout=60,
        what="2 runs in progress",
    )
    result = stack.prometheus.wait_for(f"{gauges} == 1", timeout=30)
    assert {r["metric"]["objet"] for r in result} == {"nightly-export", "hourly-export"}
    oldest = stack.prometheus.wait_for(
        'ingestion_oldest_open_run_timestamp{source="stuck", objet="nightly-export"}'
    )
    assert float(oldest[0]["value"][1]) == pytest.approx(stuck_start.timestamp(), abs=0.001)
    wait_until(
        lambda: firing(stack.prometheus, "IngestionExecutionBloquee", "stuck") == {"nightly-export"},
        timeout=60,
        what="IngestionExecutionBloquee for nightly-export only",
        seen=lambda: firing(stack.prometheus, "IngestionExecutionBloquee", "stuck"),
    )
    assert runs_by(stack.prometheus, "stuck") == {}  # an open run is not a run yet


# --- 6. the flat endpoint -----------------------------------------------------------------------------------


def test_runs_endpoint_gives_the_producer_counts(stack: Stack) -> None:
    status, body = post(stack.intake, "/api/v1/runs", sample_logs_path().read_bytes())
    assert status == 200, body
    assert (body["published"], body["invalid"], body["failed"]) == (72, 0, 0)
    assert body["items"][12] == {"position": "index 12", "status": "published"}
    wait_until(lambda: stack.consumer.total("ingestion_runs_total") == 72, what="72 runs counted")
    stack.prometheus.wait_for("count(ingestion_runs_total) == 72", timeout=30)
    by_etat = {
        r["metric"]["etat"]: int(float(r["value"][1]))
        for r in stack.prometheus.query("sum by (etat) (ingestion_runs_total)")
    }
    assert by_etat == {"SUCCESS": 71, "FAILED": 1}
    # NDJSON, the other shape connectors write: the same records again are duplicates, counted once
    ndjson = b"\n".join(orjson.dumps(r) for r in orjson.loads(sample_logs_path().read_bytes()))
    status, body = post(stack.intake, "/api/v1/runs", ndjson)
    assert (status, body["published"], body["items"][40]["position"]) == (200, 72, "line 41")
    wait_until(
        lambda: stack.consumer.total("ingestion_consumer_messages_total", result="duplicate") == 72,
        what="72 duplicates dropped",
    )
    time.sleep(2)  # a scrape after the duplicates: still 72 / 71 / 1
    assert stack.consumer.total("ingestion_runs_total") == 72
