from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack.queries import dashboard_queries, substitute
from ingestion_observability.render import (
    Datasources,
    Latency,
    RenderConfig,
    Slo,
    Volume,
    dashboard_uid,
    quote,
    render_dashboard,
)

ROWS = [
    "Vue d'ensemble — Ingestion: Health",
    "Fiabilité — Errors & SLAs",
    "Performance — Latency & Throughput",
    "Volumes — Lignes par exécution",
    "Détails par connecteur — Sources & Objets",
    "Derniers messages d'erreur",
]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and the panels of collapsed rows included."""
    return [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]


def rows(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Row title -> titles of its panels (expanded rows own the panels that follow them)."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = result.setdefault(panel["title"], [p["title"] for p in panel["panels"]])
        else:
            current.append(panel["title"])
    return result


def test_global_dashboard_layout() -> None:
    dashboard = render_dashboard(RenderConfig())
    assert dashboard["title"] == "Ingestion — Observabilité"
    assert dashboard["uid"] == "ingestion-overview"
    assert dashboard["refresh"] == "1m" and dashboard["time"] == {"from": "now-24h", "to": "now"}
    assert "ingestion" in dashboard["tags"]
    layout = rows(dashboard)
    assert list(layout) == ROWS
    assert layout[ROWS[0]] == [
        "Succès",
        "Échecs",
        "Taux d'échec (%)",
        "Exécutions sur la période",
        "p95 durée (s)",
        "Max mémoire (MB)",
        "Timeline des runs",
        "Top sources par durée (p95)",
    ]
    assert len(layout[ROWS[1]]) == 6 and len(layout[ROWS[2]]) == 6
    assert "Durée p95 par objet et sa durée habituelle" in layout[ROWS[2]]
    assert layout[ROWS[3]] == ["Lignes par exécution par objet"]


def test_variables() -> None:
    variables = render_dashboard(RenderConfig())["templating"]["list"]
    assert [v["name"] for v in variables] == ["source", "objet", "entreprise"]
    for variable in variables:
        assert variable["type"] == "query" and variable["multi"] and variable["includeAll"]
        assert variable["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert variable["query"].startswith("label_values(ingestion_runs_total")


def test_every_panel_is_complete() -> None:
    dashboard = render_dashboard(RenderConfig(slo=Slo(0.99), source="S", objets=("a", "b")))
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)) and 0 not in ids
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"], panel
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"] and defaults["thresholds"]["steps"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids == [chr(ord("A") + i) for i in range(len(ref_ids))]
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_thresholds_follow_the_alerts() -> None:
    by_title = {p["title"]: p for p in panels(render_dashboard(RenderConfig()))}
    steps = by_title["Taux d'échec (%)"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [(None, "green"), (0.01, "orange"), (0.02, "red")]
    steps = by_title["p95 durée (s)"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 30, 60]
    assert by_title["Max mémoire (MB)"]["fieldConfig"]["defaults"]["unit"] == "bytes"


def test_datasource_uids_are_configurable() -> None:
    config = RenderConfig(datasources=Datasources(prometheus="prom-a", loki="loki-b"))
    queries = dashboard_queries(render_dashboard(config))
    uids = {p["datasource"]["uid"] for p in panels(render_dashboard(config)) if "datasource" in p}
    assert uids == {"prom-a", "loki-b"}
    assert {q.datasource for q in queries} == {"prometheus", "loki"}


def test_loki_tables() -> None:
    by_title = {p["title"]: p for p in panels(render_dashboard(RenderConfig()))}
    details = by_title["Exécutions par connecteur"]
    [organize] = [t for t in details["transformations"] if t["id"] == "organize"]
    columns = list(organize["options"]["renameByName"].values())
    for column in ("Debut", "Fin", "Duree secondes", "cpu_time", "memory_used", "Lignes", "Description"):
        assert column in columns
    assert 'lignes="performance.lignes"' in details["targets"][0]["expr"]
    assert details["fieldConfig"]["defaults"]["custom"]["filterable"] is True
    errors = by_title["Les 5 derniers échecs"]
    [organize] = [t for t in errors["transformations"] if t["id"] == "organize"]
    assert list(organize["options"]["renameByName"].values()) == [
        "Fin",
        "Source",
        "Objet",
        "Lignes",
        "Description",
    ]
    assert 'lignes="performance.lignes"' in errors["targets"][0]["expr"]
    assert errors["targets"][0]["maxLines"] == 5
    assert errors["targets"][0]["expr"].startswith('{job="ingestion-logs", source=~"$source"')
    assert 'etat="FAILED"' in errors["targets"][0]["expr"]


@pytest.mark.parametrize("source", ['a"b\\c', ".*", "x\ny", "$objet", "Zoho — été"])
def test_per_source_dashboard(source: str) -> None:
    dashboard = render_dashboard(RenderConfig(source=source, objets=("workspaces", "datasets")))
    assert dashboard["title"] == f"Ingestion — {source}"
    assert dashboard["uid"] == dashboard_uid(source) != dashboard_uid(None)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["objet", "entreprise"]
    for query in dashboard_queries(dashboard):
        assert f"source={quote(source)}" in query.expr
        assert "$source" not in query.expr
    objet_rows = [p for p in dashboard["panels"] if p["type"] == "row" and p["title"].startswith("Objet")]
    assert [r["title"] for r in objet_rows] == ["Objet : workspaces", "Objet : datasets"]
    assert all(r["collapsed"] and len(r["panels"]) == 4 for r in objet_rows)
    assert 'objet="datasets"' in objet_rows[1]["panels"][0]["targets"][0]["expr"]


def test_dashboard_is_deterministic_plain_json() -> None:
    config = RenderConfig(slo=Slo(0.99))
    assert render_dashboard(config) == render_dashboard(config)
    assert json.loads(json.dumps(render_dashboard(config))) == render_dashboard(config)


def test_queries_and_substitution() -> None:
    queries = dashboard_queries(render_dashboard(RenderConfig(slo=Slo(0.99))))
    assert sum(q.datasource == "loki" for q in queries) == 3
    stats = [q for q in queries if q.panel == "Succès"]
    assert stats[0].instant
    for query in queries:
        assert "$" not in substitute(query.expr)
    assert substitute('x{source=~"$source"}[$__range]', {"__range": "6h"}) == 'x{source=~".*"}[6h]'
    assert substitute(f"x{{source={quote('$source')}}}") == r'x{source="\x24source"}'
    with pytest.raises(KeyError, match="unknown"):
        substitute("x[$unknown]")


def test_last_run_stats_count_objets_with_matching_runs() -> None:
    """ingestion_last_run_status carries no entreprise or zone: the stats keep the objets whose runs match
    the filters (variables and configuration)."""
    by_title = {p["title"]: p for p in panels(render_dashboard(RenderConfig(source="Efficy", zone="1-Raw")))}
    objets = (
        'ingestion_last_run_status{source="Efficy", objet=~"$objet"} and on (source, objet) '
        'ingestion_runs_total{source="Efficy", objet=~"$objet", entreprise=~"$entreprise", zone="1-Raw"}'
    )
    for title in ("Succès", "Échecs", "Taux d'échec (%)"):
        assert objets in by_title[title]["targets"][0]["expr"]
    period = [t["expr"] for t in by_title["Exécutions sur la période"]["targets"]]
    assert all("offset $__range" in expr and "[$__range]" in expr for expr in period)


def test_usual_bands_follow_the_alerts() -> None:
    """Latency and rows per objet against their usual value and the alert's limits: the latency threshold
    is the alert's own expression, the rows limits the usual ÷ and × the volume factor."""
    config = RenderConfig(latency=Latency(factor=3), volume=Volume(factor=4))
    by_title = {p["title"]: p for p in panels(render_dashboard(config))}
    latency = by_title["Durée p95 par objet et sa durée habituelle"]
    exprs = [t["expr"] for t in latency["targets"]]
    assert exprs[0] == 'source_objet:ingestion_duration_seconds:p95_1h{source=~"$source", objet=~"$objet"}'
    assert exprs[1].startswith("last_over_time(source_objet:ingestion_duration_seconds:p95_1h_median_7d{")
    assert exprs[2].startswith("clamp_min((3 * (") and exprs[2].endswith(" + 90), 5)")
    rows = by_title["Lignes par exécution par objet"]
    exprs = [t["expr"] for t in rows["targets"]]
    selected = '{source=~"$source", objet=~"$objet"}'
    usual = f"last_over_time(source_objet:ingestion_last_run_rows:median_7d{selected}[10m])"
    assert exprs == [
        f"max by (source, objet) (ingestion_last_run_rows{selected})",
        usual,
        f"{usual} / 4",
        f"{usual} * 4",
    ]
    for panel in (latency, rows):
        styled = {o["matcher"]["options"]: o["properties"] for o in panel["fieldConfig"]["overrides"]}
        assert styled["B"][0]["value"]["fill"] == "dash"
        assert all(styled[ref][0]["value"]["fill"] == "dot" for ref in styled if ref != "B")
        assert len(styled) == len(panel["targets"]) - 1
