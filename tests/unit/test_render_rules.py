from __future__ import annotations

import dataclasses
import re
from typing import Any

from devstack.queries import rule_queries
from devstack.stackcheck import Expected
from ingestion_observability.render import (
    Latency,
    RenderConfig,
    Slo,
    Thresholds,
    Usual,
    Volume,
    render_rules,
)
from ingestion_observability.render.config import source_key

ALERTS = list(Expected().alert_rules)  # the seed's names, the stack check's expectations
CONSUMER_ALERTS = {"IngestionConsumerDown", "IngestionConsumerNonPret", "IngestionKafkaLag"}
LINKS = {"tableau_de_bord", "journaux"}
# annotations beyond summary, description, runbook_url, titre and sujet
NOTES = {
    "IngestionEchecDetecte": {"heure_echec", "executions", *LINKS},
    "IngestionBurstErreurs": {"heure_echec", "executions", *LINKS},
    "IngestionConsumerDown": set(),
    "IngestionConsumerNonPret": set(),
    "IngestionKafkaLag": set(),
}


def rules_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alerts_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in rules_of(doc) if "alert" in rule]


def records_of(doc: dict[str, Any]) -> dict[str, str]:
    return {rule["record"]: rule["expr"] for rule in rules_of(doc) if "record" in rule}


def test_global_rules_have_every_alert_once() -> None:
    doc = render_rules(RenderConfig())
    assert [g["name"] for g in doc["groups"]] == [
        "ingestion-records",
        "ingestion-usual",
        "ingestion-alerts",
        "ingestion-consumer",
    ]
    assert len(ALERTS) == 13
    assert sorted(a["alert"] for a in alerts_of(doc)) == sorted(ALERTS)
    assert (
        records_of(doc)["kafka_consumer_lag_sum"]
        == 'sum by (topic) (kafka_consumer_lag{job="ingestion-consumer"})'
    )


def test_every_alert_has_severity_routing_labels_and_french_annotations() -> None:
    doc = render_rules(RenderConfig(routing_labels={"team": "data"}, slo=Slo(0.99)))
    severities = {
        "IngestionEchecDetecte": "critical",
        "IngestionConsumerDown": "critical",
        "IngestionConsumerNonPret": "info",
    }
    for alert in alerts_of(doc):
        if alert["alert"] in ALERTS:
            assert alert["labels"]["severity"] == severities.get(alert["alert"], "warning")
        assert alert["labels"]["team"] == "data"
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "titre", "sujet"} | NOTES.get(
            alert["alert"], LINKS
        )
        if alert["alert"] != "IngestionConsumerNonPret":
            assert "{{ $value" in annotations["description"]
        assert "{{ $labels." in annotations["summary"]
        assert annotations["summary"] == f"{annotations['titre']} : {annotations['sujet']}"
        assert (
            annotations["runbook_url"] == f"https://runbooks.example.com/ingestion/{alert['alert'].lower()}"
        )


def test_alert_expressions() -> None:
    exprs = {a["alert"]: a["expr"] for a in alerts_of(render_rules(RenderConfig()))}
    failed = 'ingestion_runs_total{etat="FAILED"}'
    failures = (
        f"sum by (source, objet) (round(({failed} unless {failed} offset 5m) or increase({failed}[5m]))) > 0"
    )
    info = "0 * topk by (source, objet) (1, ingestion_last_failure_info)"
    join = f"+ on (source, objet) group_left (description) ({info})"
    assert exprs["IngestionEchecDetecte"] == f"({failures}) {join} or on (source, objet) ({failures})"
    assert exprs["IngestionTauxEchecEleve"] == (
        'source:ingestion_failure_ratio:ratio15m{entreprise="", zone=""} > 0.02'
        ' and source:ingestion_runs:increase15m{entreprise="", zone=""} >= 5'
    )
    assert exprs["IngestionSourceMuette"] == (
        "time() - max by (source) (max_over_time(ingestion_last_run_timestamp[1d])) > 4500"
    )
    p95 = "source_objet:ingestion_duration_seconds:p95_1h"
    assert exprs["IngestionLatenceDegradee"] == (
        f"{p95} > on (source, objet) clamp_min((2 * (last_over_time({p95}_median_7d[10m])"
        f" and on (source, objet) last_over_time({p95}_age_7d[10m]) >= 86400)"
        f" or on (source, objet) 0 * {p95} + 60), 5)"
    )
    rows = "max by (source, objet) (ingestion_last_run_rows)"
    usual = (
        "(last_over_time(source_objet:ingestion_last_run_rows:median_7d[10m]) and on (source, objet)"
        " last_over_time(source_objet:ingestion_last_run_rows:age_7d[10m]) >= 86400) > 0"
    )
    succeeded = "max by (source, objet) (ingestion_last_run_status) == 1"
    assert exprs["IngestionExecutionVide"] == (
        f"{usual} and on (source, objet) {rows} == 0 and on (source, objet) {succeeded}"
    )
    assert exprs["IngestionVolumeAnormal"] == (
        f"({rows} < on (source, objet) ({usual}) / 10 or {rows} > on (source, objet) ({usual}) * 10)"
        f" and on (source, objet) {rows} > 0 and on (source, objet) {succeeded}"
    )
    assert (
        exprs["IngestionSurconsommationMemoire"]
        == "source_objet:ingestion_memory_usage_bytes:p95_1h > 157286400"
    )
    assert exprs["IngestionSurconsommationCPU"] == "source_objet:ingestion_cpu_usage_seconds:p95_1h > 60"
    assert exprs["IngestionBurstErreurs"].endswith("> 3)")  # the fallback of the description join
    assert (
        exprs["IngestionConsumerDown"]
        == 'up{job="ingestion-consumer"} == 0 or absent(up{job="ingestion-consumer"})'
    )
    assert exprs["IngestionKafkaLag"] == "kafka_consumer_lag_sum > 10000"


def test_per_source_rules_are_scoped_and_named_per_source() -> None:
    config = RenderConfig(source="PowerBI", slo=Slo(0.99))
    doc = render_rules(config)
    key = source_key("PowerBI")
    assert [g["name"] for g in doc["groups"]] == [
        f"ingestion-{g}-{key}" for g in ("records", "usual", "alerts", "slo")
    ]
    names = {a["alert"] for a in alerts_of(doc)}
    assert names == (set(ALERTS) - CONSUMER_ALERTS) | {"IngestionBudgetErreurSLO"}
    # Every ingestion series or record read carries the source matcher.
    for expr in rule_queries(doc):
        for name, matchers in re.findall(r"\b((?:ingestion_|source:|source_objet:)[\w:]*)(\{[^}]*\})?", expr):
            assert matchers.startswith('{source="PowerBI"'), (name, expr)


def test_records_are_shared_names_and_threshold_free() -> None:
    global_records = records_of(render_rules(RenderConfig()))
    per_source = records_of(render_rules(RenderConfig(source="Efficy")))
    assert set(per_source) == set(global_records) - {"kafka_consumer_lag_sum"}
    other_thresholds = Thresholds(
        failure_ratio=0.5, min_runs=50, silence="3h", memory_p95_mb=1, cpu_p95_seconds=1
    )
    assert records_of(render_rules(RenderConfig(thresholds=other_thresholds))) == global_records
    others = RenderConfig(
        latency=Latency(factor=5, floor_seconds=1, baseline_seconds=9),
        volume=Volume(factor=3),
        usual=Usual(min_history="3d", interval="10m"),
    )
    assert records_of(render_rules(others)) == global_records


def test_filtered_run_records_carry_their_filter_labels() -> None:
    records = records_of(render_rules(RenderConfig(entreprise="akonovia")))
    assert records["source:ingestion_runs:increase15m"].startswith("sum by (source, entreprise) (")
    assert 'entreprise="akonovia", zone=""' in records["source:ingestion_failure_ratio:ratio15m"]


def test_records_only_read_records_defined_before_them() -> None:
    doc = render_rules(RenderConfig(slo=Slo(0.99)))
    seen: set[str] = set()
    for rule in doc["groups"][0]["rules"]:
        used = set(re.findall(r"\b(source(?:_objet)?:[\w:]+)", rule["expr"]))
        assert used <= seen, rule
        seen.add(rule["record"])
    # the usual values read the first group's records only (raw series: none)
    for rule in doc["groups"][1]["rules"]:
        assert set(re.findall(r"\b(source(?:_objet)?:[\w:]+)", rule["expr"])) <= seen, rule
        assert not re.search(r"\bingestion_", rule["expr"].replace("source_objet:ingestion_", "")), rule


def test_usual_values_have_their_own_slower_group() -> None:
    """Days of samples per objet: the group is evaluated every `usual.interval`, its subqueries sampled
    every 5 min whatever evaluates them, and its record names carry the window."""
    doc = render_rules(RenderConfig(usual=Usual(window="14d", interval="15m")))
    usual = doc["groups"][1]
    assert (usual["name"], usual["interval"]) == ("ingestion-usual", "15m")
    assert list(usual) == ["name", "interval", "rules"]
    p95 = "source_objet:ingestion_duration_seconds:p95_1h"
    rows = "source_objet:ingestion_last_run_rows:succeeded"
    assert {rule["record"]: rule["expr"] for rule in usual["rules"]} == {
        f"{p95}_median_14d": f"quantile_over_time(0.5, {p95}[14d:5m])",
        f"{p95}_age_14d": f"time() - min_over_time(timestamp({p95})[14d:5m])",
        "source_objet:ingestion_last_run_rows:median_14d": f"quantile_over_time(0.5, {rows}[14d:5m])",
        "source_objet:ingestion_last_run_rows:age_14d": f"time() - min_over_time(timestamp({rows})[14d:5m])",
    }
    assert records_of(doc)[rows] == (
        "max by (source, objet) (ingestion_last_run_rows) and on (source, objet)"
        " (max by (source, objet) (ingestion_last_run_status) == 1)"
    )
    # what reads them takes their last value over two intervals
    exprs = {a["alert"]: a["expr"] for a in alerts_of(doc)}
    assert f"last_over_time({p95}_median_14d[30m])" in exprs["IngestionLatenceDegradee"]
    assert all("interval" not in group for group in doc["groups"] if group is not usual)


def test_slo_burn_rate_alerts() -> None:
    doc = render_rules(RenderConfig(slo=Slo(0.999, "30d")))
    burns = [a for a in alerts_of(doc) if a["alert"] == "IngestionBudgetErreurSLO"]
    pairs = [(a["labels"]["long"], a["labels"]["short"], a["labels"]["severity"]) for a in burns]
    assert pairs == [
        ("1h", "5m", "critical"),
        ("6h", "30m", "critical"),
        ("1d", "2h", "warning"),
        ("3d", "6h", "warning"),
    ]
    assert burns[0]["expr"] == (
        'source:ingestion_failure_ratio:ratio1h{entreprise="", zone=""} > 14.4 * (1 - 0.999)'
        ' and source:ingestion_failure_ratio:ratio5m{entreprise="", zone=""} > 14.4 * (1 - 0.999)'
        ' and source:ingestion_runs:increase1h{entreprise="", zone=""} >= 5'
    )
    records = records_of(doc)
    assert records["source:ingestion_runs:increase30d"].startswith(
        "sum_over_time(source:ingestion_runs:increase1h"
    )


def test_group_names_stay_unique_for_many_sources() -> None:
    sources = [f"source {i}" for i in range(200)] + ['a"b\\c', ".*", "x\ny", 'A"B\\C']
    names = [g["name"] for s in sources for g in render_rules(RenderConfig(source=s))["groups"]]
    assert len(names) == len(set(names))


def test_rule_queries_lists_every_expression() -> None:
    doc = render_rules(dataclasses.replace(RenderConfig(), slo=Slo(0.99)))
    assert rule_queries(doc) == [rule["expr"] for rule in rules_of(doc)]
