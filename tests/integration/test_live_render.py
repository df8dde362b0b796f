"""The generated rules and dashboard against the real Prometheus and the log store fed with the sample.

PromQL runs live. The log store is VictoriaLogs, which takes Loki's pushes but not LogQL: the LogQL
panels are parsed by Grafana's grammar (tests/unit/test_dashboard_grammar.py), and here every label and
field they select or extract is proven to exist in the lines the consumer pushed, read back with LogsQL.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
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


LOKI_QUERIES = [q for q in QUERIES if q.datasource == "loki"]
# The parts of our LogQL that name what a line must carry: stream matchers, label filters, json extractions.
SELECTOR = re.compile(r"^(?:\w+\()*\{(?P<matchers>[^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
LABEL_FILTER = re.compile(r'\|\s*(\w+)\s*(?:=~|!~|!=|=)\s*"')
JSON_STAGE = re.compile(r"\|\s*json\s+((?:\w+=\"[^\"]*\"(?:,\s*)?)+)")
EXTRACTION = re.compile(r'(\w+)="([^"]*)"')
UNWRAP = re.compile(r"\|\s*unwrap\s+(\w+)")


def logsql_filter(logql: str) -> str:
    """The LogsQL filter selecting the stream a LogQL query reads (its equality matchers; regexes are .*)."""
    selector = SELECTOR.match(substitute(logql))
    assert selector, logql
    exact = [(name, value) for name, op, value in MATCHER.findall(selector["matchers"]) if op == "="]
    return " ".join(f'{name}:="{value}"' for name, value in exact)


def json_path(line: dict[str, Any], path: str) -> Any:
    value: Any = line
    for part in path.split("."):
        assert isinstance(value, dict) and part in value, f"{path} not in {line}"
        value = value[part]
    return value


def stat(pipeline: Pipeline, title: str) -> float:
    [query] = [q for q in QUERIES if q.panel == title]
    return float(pipeline.prometheus.query(substitute(query.expr))[0]["value"][1])


def test_prometheus_loaded_every_alert(pipeline: Pipeline) -> None:
    groups = pipeline.prometheus.rules()
    alerting = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert alerting == set(ALERTS)  # the stack check's expected names

    def all_evaluated_ok() -> bool:
        # the usual values' group runs every 5 min: not evaluated yet ("unknown") is no error; its
        # expressions run in test_every_rule_expression_runs
        return all(
            r.get("health") == "ok" or (g["interval"] > 30 and r.get("health") == "unknown")
            for g in pipeline.prometheus.rules()
            for r in g["rules"]
        )

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
    # IngestionConsumerNonPret (info) only inhibits, and fires whenever the consumer is briefly not ready
    # (a rebalance under load): never notified, so not an alarm
    others = {
        a["labels"]["alertname"]
        for a in pipeline.prometheus.api("alerts")["alerts"]
        if a["state"] == "firing" and a["labels"]["severity"] != "info"
    }
    assert others == {"IngestionEchecDetecte"}  # healthy sample otherwise: no false alarm


def test_every_rule_expression_runs(pipeline: Pipeline) -> None:
    for expr in rule_queries(render_rules(RenderConfig())):
        pipeline.prometheus.query(expr)  # raises on a parse or execution error


def test_every_prometheus_panel_query_runs(pipeline: Pipeline) -> None:
    assert {q.datasource for q in QUERIES} == {"prometheus", "loki"}
    for query in QUERIES:
        if query.datasource == "prometheus":
            pipeline.prometheus.query(substitute(query.expr))  # raises on a parse or execution error


@pytest.mark.parametrize("query", LOKI_QUERIES, ids=lambda q: q.panel)
def test_loki_panel_finds_what_it_selects_and_extracts(pipeline: Pipeline, query: Query) -> None:
    expr = substitute(query.expr)
    rows = pipeline.logstore.query(logsql_filter(query.expr))
    assert rows, f"{query.panel}: no line matches {logsql_filter(query.expr)}"
    selector = SELECTOR.match(expr)
    assert selector
    wanted = {name for name, _, _ in MATCHER.findall(selector["matchers"])}
    extracted = {name: path for stage in JSON_STAGE.findall(expr) for name, path in EXTRACTION.findall(stage)}
    assert extracted, f"{query.panel}: no json stage"
    for row in rows:
        stream = set(re.findall(r'(\w+)="', row["_stream"]))
        assert wanted <= stream, f"{query.panel}: stream labels {wanted - stream} missing"
        # a label filter reads a stream label, the objet structured metadata, or an extracted field
        for name in LABEL_FILTER.findall(expr):
            if name.startswith("__"):  # Loki's own labels (__error__)
                continue
            assert name in stream or name in row or name in extracted, f"{query.panel}: no {name}"
        line = orjson.loads(row["_msg"])
        values = {name: json_path(line, path) for name, path in extracted.items()}
        for name in UNWRAP.findall(expr):
            assert isinstance(values[name], int | float), f"{query.panel}: {name} is not a number"


def test_key_panels_show_the_seed_values(pipeline: Pipeline) -> None:
    assert stat(pipeline, "Succès") == 71
    assert stat(pipeline, "Échecs") == 1
    assert stat(pipeline, "Taux d'échec (%)") == pytest.approx(1 / 72)  # shown as 1.39 % (percentunit)
    assert 1 <= stat(pipeline, "p95 durée (s)") <= 3
    # "Max mémoire (MB)": the max of the field its LogQL unwraps, computed by the log store with LogsQL
    [query] = [q for q in LOKI_QUERIES if q.panel == "Max mémoire (MB)"]
    [(_, path)] = EXTRACTION.findall(JSON_STAGE.findall(query.expr)[0])
    [row] = pipeline.logstore.query(
        f"{logsql_filter(query.expr)} | unpack_json fields ({path}) | stats max({path}) as m"
    )
    max_memory = max(r["memory_used"] for r in json.loads(sample_logs_path().read_text()))
    assert float(row["m"]) == max_memory


def test_errors_table_lists_the_failed_run(pipeline: Pipeline) -> None:
    [query] = [q for q in QUERIES if q.panel == "Les 5 derniers échecs"]
    lines = [orjson.loads(row["_msg"]) for row in pipeline.logstore.query(logsql_filter(query.expr))]
    assert [line["objet"]["name"] for line in lines] == ["EventFactureApplication"]
