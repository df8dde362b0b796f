"""Rows written (issue 17) on the real services.

Connector records with `Lignes` go through the real producer CLI; OpenLineage runs with `outputStatistics`
are sent by the real openlineage-python client to the real intake (`ingestion-intake`, its own process).
A real Prometheus scraping the real consumer shows `ingestion_rows_total` and `ingestion_last_run_rows`
exactly, also after the consumer was stopped, more runs published and a new consumer started. Expected
values are computed from what was published, never from what a consumer exposed. Bad values are refused
by the producer and by the intake (400) with their reason, and dead-lettered by the consumer when they
reach the topic anyway.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import output_statistics_output_dataset, sql_job
from openlineage.client.serde import Serde

from devstack.consumer import ConsumerProcess
from devstack.intake import IntakeProcess
from devstack.kafka import KafkaBroker
from devstack.prometheus import CONSUMER_JOB, PrometheusServer
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.event import normalise, parse_event
from tests.integration.lineage import PRODUCER
from tests.integration.support import produce, read_topic, send_raw, wait_until
from tests.integration.test_intake import client, intake_total, post, start_intake

pytestmark = pytest.mark.integration

CONNECTOR, LINEAGE = "rows-connector", "rows-lineage"
ROWS, LAST_ROWS = "ingestion_rows_total", "ingestion_last_run_rows"
Key = tuple[str, str]  # (source, objet)


# --- what was published, and what Prometheus must therefore show ------------------------------------------


@dataclass
class Published:
    """Every run published, by its run key (a run published twice is one run), with its end and its rows."""

    runs: dict[tuple[str, str, str], tuple[float, int | None]] = field(default_factory=dict)

    def connector(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            run = parse_event(normalise(record))
            self.runs.setdefault(run.key, (run.fin, run.rows))

    def lineage(self, objet: str, run_id: str, end: datetime, rows: int | None) -> None:
        self.runs.setdefault((LINEAGE, objet, run_id), (end.timestamp(), rows))

    def expected(self) -> tuple[dict[Key, int], dict[Key, int]]:
        """(rows total, rows of the newest run reporting rows) per objet; objets without rows absent."""
        totals: dict[Key, int] = {}
        newest: dict[Key, tuple[float, int]] = {}
        for (source, objet, _), (fin, rows) in self.runs.items():
            if rows is None:
                continue
            key = (source, objet)
            totals[key] = totals.get(key, 0) + rows
            if key not in newest or fin > newest[key][0]:
                newest[key] = (fin, rows)
        return totals, {key: rows for key, (_, rows) in newest.items()}


def shown(prometheus: PrometheusServer, metric: str) -> dict[Key, int]:
    result = prometheus.query(f'{metric}{{source=~"{CONNECTOR}|{LINEAGE}"}}')
    return {(r["metric"]["source"], r["metric"]["objet"]): int(float(r["value"][1])) for r in result}


def wait_exact(prometheus: PrometheusServer, published: Published, timeout: float = 90.0) -> None:
    totals, last = published.expected()

    def seen() -> tuple[dict[Key, int], dict[Key, int]]:
        return shown(prometheus, ROWS), shown(prometheus, LAST_ROWS)

    wait_until(lambda: seen() == (totals, last), timeout, f"rows {totals}, last {last}", seen)


# --- connector records ---------------------------------------------------------------------------------


def record(objet: str, at: datetime, lignes: Any = ..., etat: str = "SUCCESS") -> dict[str, Any]:
    """A connector's raw record of a 2 s run of CONNECTOR/objet started `at` (`Lignes` left out when ...)."""
    fields = {
        "ID": f"{objet}-{at.timestamp():.0f}",
        "Source": CONNECTOR,
        "Objet": objet,
        "Etat": etat,
        "Debut": at.isoformat(timespec="milliseconds"),
        "Fin": (at + timedelta(seconds=2)).isoformat(timespec="milliseconds"),
        "cpu_time": 0.2,
        "memory_used": 8 << 20,
        "Lignes": lignes,
    }
    return {k: v for k, v in fields.items() if v is not ...}


def write_ndjson(path: Path, lines: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def run_producer(kafka: KafkaBroker, topic: str, path: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = produce(kafka.bootstrap_servers, topic, f"--file={path}")
    return code, out.getvalue()


# --- OpenLineage runs ----------------------------------------------------------------------------------


def outputs(*row_counts: Any) -> list[OutputDataset]:
    """One output per count, with the standard outputStatistics facet (None: an output without a rowCount)."""
    statistics = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
    return [
        OutputDataset(
            namespace="s3://lake",
            name=f"table_{i}",
            outputFacets={"outputStatistics": statistics(rowCount=rows, size=1024)},
        )
        for i, rows in enumerate(row_counts)
    ]


def lineage_run(
    ol: OpenLineageClient,
    published: Published,
    objet: str,
    at: datetime,
    *row_counts: Any,
    job_facets: dict[str, Any] | None = None,
) -> str:
    """A START and its COMPLETE 10 s later, whose outputs report `row_counts`; returns the runId."""
    run_id = str(uuid.uuid4())
    job = Job(namespace=LINEAGE, name=objet, facets=job_facets or {})
    ol.emit(
        RunEvent(
            eventType=RunState.START,
            eventTime=at.isoformat(),
            run=Run(runId=run_id),
            job=job,
            producer=PRODUCER,
        )
    )
    end = at + timedelta(seconds=10)
    ol.emit(complete(run_id, objet, end, *row_counts, job=job))
    reported = [rows for rows in row_counts if rows is not None]
    published.lineage(objet, run_id, end, sum(reported) if reported else None)
    return run_id


def complete(run_id: str, objet: str, end: datetime, *row_counts: Any, job: Job | None = None) -> RunEvent:
    return RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=end.isoformat(),
        run=Run(runId=run_id),
        job=job or Job(namespace=LINEAGE, name=objet),
        producer=PRODUCER,
        outputs=outputs(*row_counts),
    )


# --- the stack -----------------------------------------------------------------------------------------


@dataclass
class Stack:
    kafka: KafkaBroker
    logstore: VictoriaLogsServer
    topic: str
    work: Path
    intake: IntakeProcess
    prometheus: PrometheusServer
    consumer: ConsumerProcess | None = None
    started: int = 0

    def start_consumer(self) -> ConsumerProcess:
        self.started += 1
        self.consumer = ConsumerProcess.start(
            self.work / f"consumer-{self.started}.log",
            self.kafka.bootstrap_servers,
            self.logstore.push_url,
            topic=self.topic,
            group_id=f"{self.topic}-group",
            extra_args=[f"--loki-job={self.topic}", "--session-timeout-ms=6000"],
        )
        self.prometheus.reload(jobs={CONSUMER_JOB: [self.consumer.target]})
        self.consumer.wait_ready()
        return self.consumer

    def lines(self, source: str) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.logstore.lines(f'job:="{self.topic}" source:="{source}"')]


@pytest.fixture
def stack(kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path) -> Iterator[Stack]:
    with (
        start_intake(tmp_path, kafka.bootstrap_servers, topic) as intake,
        PrometheusServer.start(
            tmp_path / "prometheus", jobs={}, scrape_interval="1s", evaluation_interval="1s"
        ) as prometheus,
    ):
        stack = Stack(kafka, logstore, topic, tmp_path, intake, prometheus)
        try:
            yield stack
        finally:
            if stack.consumer is not None:
                stack.consumer.stop()


# --- the tests -----------------------------------------------------------------------------------------


def test_rows_are_exact_in_prometheus_through_a_consumer_restart(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = stack.start_consumer()
    published = Published()
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    m = timedelta(minutes=1)

    # 1. connector records through the producer CLI, with the bad ones it must refuse
    good = [
        record("factures", t, 100),
        record("factures", t + 2 * m, 250),
        record("factures", t + m, 7, etat="FAILED"),  # late and older: counted, not the last run's rows
        record("clients", t, 12.0),  # a whole float: 12
        record("clients", t + m, 0),  # a real 0 is the newest
        record("contacts", t),  # never reports rows: no series
        record("contacts", t + m, None),
        record("mixte", t, 40),
        record("mixte", t + m),  # newer, without rows: the last rows stay 40
    ]
    bad = [
        (record("factures", t + 3 * m, -1), "'Lignes' must be >= 0, got -1"),
        (record("factures", t + 4 * m, 1.5), "'Lignes' must be a whole number of rows, got 1.5"),
        (record("factures", t + 5 * m, "beaucoup"), "'Lignes' must be an integer (rows written), got str"),
        (record("factures", t + 6 * m, True), "'Lignes' must be an integer (rows written), got bool"),
    ]
    code, out = run_producer(
        stack.kafka, stack.topic, write_ndjson(stack.work / "first.ndjson", [*good, *(r for r, _ in bad)])
    )
    assert code == 0 and "9 sent, 4 invalid, 0 failed" in out, out
    warnings = [r.getMessage() for r in caplog.records if "invalid record" in r.getMessage()]
    for line, (_, reason) in enumerate(bad, start=len(good) + 1):
        assert any(f"line {line} " in w and reason in w for w in warnings), (reason, warnings)
    published.connector(good)

    # 2. OpenLineage runs through the intake, sent by the real client
    ol = client(stack.intake)
    lineage_run(ol, published, "orders", t, 3864, 136, None)  # 4000: the output without a rowCount adds 0
    retried = lineage_run(ol, published, "orders", t + m, 500)
    lineage_run(ol, published, "nostats", t, None, None)  # outputs without rowCount: unknown
    big_sql = sql_job.SQLJobFacet(query="select 1 -- " + "x" * 70_000)  # past the 64 KiB message limit
    lineage_run(ol, published, "trimmed", t, 42, job_facets={"sql": big_sql})
    assert intake_total(stack.intake, "ingestion_intake_events_trimmed_total") == 2  # START and COMPLETE
    wait_exact(stack.prometheus, published)
    totals, last = published.expected()
    assert totals == {
        (CONNECTOR, "factures"): 357,
        (CONNECTOR, "clients"): 12,
        (CONNECTOR, "mixte"): 40,
        (LINEAGE, "orders"): 4500,
        (LINEAGE, "trimmed"): 42,
    }
    assert last == {
        (CONNECTOR, "factures"): 250,
        (CONNECTOR, "clients"): 0,
        (CONNECTOR, "mixte"): 40,
        (LINEAGE, "orders"): 500,
        (LINEAGE, "trimmed"): 42,
    }
    # the log lines carry the rows, null when unknown
    wait_until(lambda: len(stack.lines(CONNECTOR)) == len(good), what="the connector's log lines")
    logged = {
        (line["objet"]["name"], line["debut"]): line["performance"]["lignes"]
        for line in stack.lines(CONNECTOR)
    }
    assert logged == {
        (r["Objet"], normalise(r)["debut"]): normalise(r)["performance"]["lignes"] for r in good
    }  # 12.0 logged as 12; no Lignes: null
    assert [
        logged[("clients", normalise(good[3])["debut"])],
        logged[("contacts", normalise(good[5])["debut"])],
    ] == [12, None]
    wait_until(lambda: len(stack.lines(LINEAGE)) == 4, what="the lineage log lines")
    assert sorted(
        (line["objet"]["name"], line["performance"]["lignes"] or 0) for line in stack.lines(LINEAGE)
    ) == [
        ("nostats", 0),
        ("orders", 500),
        ("orders", 4000),
        ("trimmed", 42),
    ]
    assert [
        line["performance"]["lignes"] for line in stack.lines(LINEAGE) if line["objet"]["name"] == "nostats"
    ] == [None]

    # 3. stop the consumer; publish more (new rows, a replayed record, a retried COMPLETE); a new consumer
    assert consumer.stop() == 0
    more = [
        record("factures", t + 10 * m, 1000),
        record("factures", t, 100),  # the same run again: a duplicate, not counted twice
        record("contacts", t + 10 * m, 5),  # now reports rows: its series appear
    ]
    code, out = run_producer(stack.kafka, stack.topic, write_ndjson(stack.work / "second.ndjson", more))
    assert code == 0 and "3 sent, 0 invalid, 0 failed" in out, out
    published.connector(more)
    ol.emit(complete(retried, "orders", t + m + timedelta(seconds=10), 500))  # a retry: counted once
    lineage_run(ol, published, "orders", t + 10 * m, 10)
    consumer = stack.start_consumer()
    wait_until(
        lambda: consumer.total("ingestion_consumer_messages_total", result="duplicate") == 2,
        what="the replayed record and the retried COMPLETE dropped as duplicates",
    )
    wait_exact(stack.prometheus, published)
    totals, last = published.expected()
    assert (totals[(CONNECTOR, "factures")], last[(CONNECTOR, "factures")]) == (1357, 1000)
    assert (totals[(CONNECTOR, "contacts")], last[(CONNECTOR, "contacts")]) == (5, 5)
    assert (totals[(LINEAGE, "orders")], last[(LINEAGE, "orders")]) == (4510, 10)
    # restored from the changelog, not restarted from 0: Prometheus saw no counter reset
    resets = stack.prometheus.query(f'sum(resets({ROWS}{{source=~"{CONNECTOR}|{LINEAGE}"}}[1h]))')
    assert float(resets[0]["value"][1]) == 0


def test_bad_row_counts_are_refused_by_the_intake_and_dead_lettered_by_the_consumer(stack: Stack) -> None:
    consumer = stack.start_consumer()
    now = datetime.now(UTC)
    stats = "'outputs[0].outputFacets.outputStatistics.rowCount'"

    # the real client's events: the intake answers 400 with the reason, nothing is published
    ol = client(stack.intake)
    for count, reason in (
        (-1, f"{stats} must be >= 0, got -1"),
        (2.5, f"{stats} must be a whole number of rows, got 2.5"),
        ("many", f"{stats} must be an integer (rows written), got str"),
    ):
        with pytest.raises(requests.HTTPError) as refused:
            ol.emit(complete(str(uuid.uuid4()), "bad", now, count))
        assert refused.value.response is not None and refused.value.response.status_code == 400
        assert refused.value.response.json()["items"] == [
            {"position": "body", "status": "invalid", "reason": reason}
        ]
    # an array: the valid event is published, the bad one refused with its position and reason
    good = _json(complete(str(uuid.uuid4()), "good", now, 3))
    bad = _json(complete(str(uuid.uuid4()), "bad", now, -7))
    status, body = post(stack.intake, "/api/v1/lineage", orjson.dumps([good, bad]))
    assert (status, body["published"], body["invalid"]) == (400, 1, 1)
    assert body["items"][1] == {
        "position": "index 1",
        "status": "invalid",
        "reason": f"{stats} must be >= 0, got -7",
    }
    # connector records on /api/v1/runs: the producer's validation
    status, body = post(stack.intake, "/api/v1/runs", orjson.dumps(record("bad", now, -3)))
    assert status == 400 and body["items"][0]["reason"] == "'Lignes' must be >= 0, got -3"

    # the same values written straight to the topic: dead-lettered with the reason
    poison = {
        orjson.dumps(record("bad", now, -1)): "'Lignes' must be >= 0, got -1",
        orjson.dumps(_with_lignes(normalise(record("bad", now)), 1.5)): (
            "'performance.lignes' must be a whole number of rows, got 1.5"
        ),
        orjson.dumps(_json(complete(str(uuid.uuid4()), "bad", now, "many"))): (
            f"{stats} must be an integer (rows written), got str"
        ),
    }
    send_raw(stack.kafka.bootstrap_servers, stack.topic, list(poison))
    wait_until(
        lambda: consumer.total("ingestion_consumer_messages_total", result="invalid") == len(poison),
        what="the bad values dead-lettered",
    )
    dead = read_topic(stack.kafka.bootstrap_servers, f"{stack.topic}.dlq", len(poison))
    assert {m.value: dict(m.headers)["error"].decode() for m in dead} == poison
    # only the valid event of the array counted: 3 rows
    wait_until(lambda: consumer.total(ROWS) == 3, what="the one valid event's rows")
    assert consumer.total(ROWS, source=LINEAGE, objet="good") == 3
    bad_series = [(name, lbls) for name, lbls, _ in consumer.samples() if lbls.get("objet") == "bad"]
    assert bad_series == []  # nothing of the refused runs was counted


def _json(event: RunEvent) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(Serde.to_json(event))
    return parsed


def _with_lignes(event: dict[str, Any], lignes: object) -> dict[str, Any]:
    event["performance"]["lignes"] = lignes
    return event
