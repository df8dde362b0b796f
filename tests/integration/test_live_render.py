"""The generated rules and dashboard, run against the real Prometheus and Loki fed with the sample."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.queries import Query, dashboard_queries, rule_queries, substitute
from ingestion_observability.render import RenderConfig, render_dashboard, render_rules
from ingestion_observability.sample import sample_logs_path
from tests.integration.conftest import Pipeline
from tests.integration.support import wait_until
from tests.unit.test_render_rules import ALERTS

pytestmark = pytest.mark.integration

DASHBOARD = render_dashboard(RenderConfig())
QUERIES = dashboard_queries(DASHBOARD)


def loki_query(pipeline: Pipeline, query: Query) -> list[dict[str, Any]]:
    expr = substitute(query.expr)
    if query.instant:
        return pipeline.loki.query(expr)
    return pipeline.loki.query_range(expr, since=3600)


def stat(pipeline: Pipeline, title: str) -> float:
    [query] = [q for q in QUERIES if q.panel == title]
    if query.datasource == "loki":
        result = loki_query(pipeline, query)
    else:
        result = pipeline.prometheus.query(substitute(query.expr))
    return float(result[0]["value"][1])


def test_prometheus_loaded_the_nine_alerts(pipeline: Pipeline) -> None:
    groups = pipeline.prometheus.rules()
    alerting = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert alerting == set(ALERTS)  # the seed's nine names

    def all_evaluated_ok() -> bool:
        rules = [r for g in pipeline.prometheus.rules() for r in g["rules"]]
        return all(r.get("health") == "ok" for r in rules)

    wait_until(all_evaluated_ok, timeout=30, what="every rule evaluated without error")


def test_echec_detecte_fires_for_the_failed_run(pipeline: Pipeline) -> None:
    def firing() -> list[dict[str, Any]]:
        alerts = pipeline.prometheus.api("alerts")["alerts"]
        return [
            a
            for a in alerts
            if a["state"] == "firing" and a["labels"]["alertname"] == "IngestionEchecDetecte"
        ]

    wait_until(lambda: bool(firing()), timeout=30, what="IngestionEchecDetecte firing")
    [alert] = firing()
    assert alert["labels"]["source"] == "sharepoint_graph"
    assert alert["labels"]["objet"] == "EventFactureApplication"
    assert alert["labels"]["severity"] == "critical"
    assert "EventFactureApplication" in alert["annotations"]["description"]
    others = {
        a["labels"]["alertname"]
        for a in pipeline.prometheus.api("alerts")["alerts"]
        if a["state"] == "firing"
    }
    assert others == {"IngestionEchecDetecte"}  # healthy sample otherwise: no false alarm


def test_every_rule_expression_runs(pipeline: Pipeline) -> None:
    for expr in rule_queries(render_rules(RenderConfig())):
        pipeline.prometheus.query(expr)  # raises on a parse or execution error


def test_every_dashboard_query_runs(pipeline: Pipeline) -> None:
    assert {q.datasource for q in QUERIES} == {"prometheus", "loki"}
    for query in QUERIES:
        if query.datasource == "prometheus":
            pipeline.prometheus.query(substitute(query.expr))
        else:
            loki_query(pipeline, query)


def test_key_panels_show_the_seed_values(pipeline: Pipeline) -> None:
    assert stat(pipeline, "Succès") == 71
    assert stat(pipeline, "Échecs") == 1
    assert stat(pipeline, "Taux d'échec (%)") == pytest.approx(1 / 72)  # shown as 1.39 % (percentunit)
    assert 1 <= stat(pipeline, "p95 durée (s)") <= 3
    max_memory = max(r["memory_used"] for r in json.loads(sample_logs_path().read_text()))
    assert stat(pipeline, "Max mémoire (MB)") == max_memory  # exact, from the Loki lines


def test_errors_table_lists_the_failed_run(pipeline: Pipeline) -> None:
    [query] = [q for q in QUERIES if q.panel == "Les 5 derniers échecs"]
    streams = loki_query(pipeline, query)
    lines = [value[1] for stream in streams for value in stream["values"]]
    assert len(lines) == 1
    assert "EventFactureApplication" in lines[0]
