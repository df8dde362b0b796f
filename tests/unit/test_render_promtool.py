"""The rendered rules under promtool: syntax (`check rules`) and behaviour (`test rules`).

tests/rules/*.test.yaml hold the hand-written alert scenarios; the tests here render the rules next to
them, and generate the scenarios that depend on hostile names or on the sample data.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import yaml

from devstack.queries import dashboard_queries, substitute
from devstack.tools import binary
from ingestion_observability.render import (
    ObjetSchedule,
    RenderConfig,
    Slo,
    Usual,
    dashboard_uid,
    render_dashboard,
    render_rules,
)
from ingestion_observability.render.cli import rules_yaml
from ingestion_observability.sample import sample_logs_path

PROMTOOL = str(binary("promtool"))  # from `make tools`; missing is an error, not a skip
RULE_TESTS = Path(__file__).parents[1] / "rules"
HOSTILE = [
    'a"b\\c',
    ".*",
    "x\ny",
    "Zoho — été ☃ 🚀",
    "$source",
    "[[objet]]",
    "${__range}",
    "tab\tcr\r",
    "{{ $labels.objet }}",
    "back`tick'quote",
]
RUN_LABELS = 'objet="o", entreprise="akonovia", zone="1-Raw"'
ERROR = 'HTTP 504 "Gateway Timeout"\nréessai échoué : '
FAILED_AT = 1_765_000_000
P95_RECORD = "source_objet:ingestion_duration_seconds:p95_1h"


def utc(epoch: int) -> str:
    """Prometheus' humanizeTimestamp, without its zone suffix."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def promtool(*args: str, cwd: Path) -> str:
    result = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def write_rules(path: Path, config: RenderConfig) -> Path:
    path.write_text(rules_yaml(render_rules(config)), encoding="utf-8")
    return path


def run_tests(tmp_path: Path, rules_file: str, test: dict[str, Any]) -> None:
    """Run one generated promtool test group against `rules_file` (in `tmp_path`)."""
    tests = {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": [{"interval": "1m", **test}]}
    (tmp_path / "generated.test.yaml").write_text(yaml.safe_dump(tests, allow_unicode=True), encoding="utf-8")
    promtool("test", "rules", "generated.test.yaml", cwd=tmp_path)


def go_quote(value: str) -> str:
    """Go's %q for the names these tests use (printable text, \\t \\r \\n): JSON's escapes."""
    return json.dumps(value, ensure_ascii=False)


def links(labels: dict[str, str], config: RenderConfig) -> dict[str, str]:
    """The dashboard and Explore links of an alert with these labels, built independently of the
    renderer: Go's urlquery is Python's quote_plus."""
    source, objet = labels.get("source"), labels.get("objet")
    if source is None:
        return {}
    board = f"{config.grafana_url}/d/{dashboard_uid(config.source)}/?orgId=1"
    if config.source is None:
        board += f"&var-source={quote_plus(source)}"
    expr = f"{{job={go_quote(config.loki_job)}, source={go_quote(source)}}}"
    if objet is not None:
        board += f"&var-objet={quote_plus(objet)}"
        expr += f" | objet={go_quote(objet)}"
    loki = {"type": "loki", "uid": config.datasources.loki}
    pane = {
        "a": {
            "datasource": loki["uid"],
            "queries": [{"refId": "A", "expr": expr, "datasource": loki}],
            "range": {"from": "now-1h", "to": "now"},
        }
    }
    panes = json.dumps(pane, ensure_ascii=False, separators=(",", ":"))
    return {
        "tableau_de_bord": board,
        "journaux": f"{config.grafana_url}/explore?schemaVersion=1&orgId=1&panes={quote_plus(panes)}",
    }


def complete(expected: dict[str, Any], config: RenderConfig) -> dict[str, Any]:
    """An expected alert with the annotations that follow from its summary and labels: title, subject,
    links (the scenarios write the rest by hand)."""
    notes = expected.get("exp_annotations")
    if notes is not None and "summary" in notes:
        titre, sujet = notes["summary"].split(" : ", 1)
        notes.setdefault("titre", titre)
        notes.setdefault("sujet", sujet)
        for key, value in links(expected.get("exp_labels", {}), config).items():
            notes.setdefault(key, value)
    return expected


def echec_detecte(
    source: str, objet: str, labels: dict[str, str] | None = None, config: RenderConfig | None = None
) -> dict[str, Any]:
    """The expected IngestionEchecDetecte alert for one FAILED run (the only run in its window)."""
    expected = {
        "exp_labels": {"severity": "critical", **(labels or {}), "source": source, "objet": objet},
        "exp_annotations": {
            "summary": f"Échec d'ingestion : {source} / {objet}",
            "description": f"1 exécution(s) en échec (FAILED) pour la source {source}, objet {objet}, "
            "sur une fenêtre de 5 min.",
            "runbook_url": "https://runbooks.example.com/ingestion/ingestionechecdetecte",
            "executions": "1 exécution(s), dont 1 en échec, sur 5 min",
            "heure_echec": "",  # no ingestion_last_failure_info series
        },
    }
    return complete(expected, config or RenderConfig(source=source))


def series(metric: str, labels: str) -> str:
    return f"{metric}{{{labels}}}"


def label(name: str, value: str) -> str:
    """A label matcher written independently of promql.quote (JSON escapes are Go escapes)."""
    return f"{name}={json.dumps(value, ensure_ascii=False)}"


def panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    """The top-level panel titled `title`."""
    return next(p for p in board["panels"] if p.get("title") == title)


@pytest.mark.parametrize(
    "config",
    [
        RenderConfig(),
        RenderConfig(slo=Slo(0.995, "30d"), routing_labels={"team": "data", "namespace": "ingestion"}),
        RenderConfig(
            source="PowerBI", objets=("workspaces", "datasets"), entreprise="akonovia", zone="1-Raw"
        ),
        *(
            RenderConfig(
                source=name,
                slo=Slo(0.99),
                entreprise=name,
                zone=name,
                schedules=(ObjetSchedule(name, 60), ObjetSchedule("o", 86400, periods=3)),
            )
            for name in HOSTILE
        ),
    ],
    ids=["defaults", "slo", "per-source", *(f"hostile-{i}" for i in range(len(HOSTILE)))],
)
def test_check_rules(tmp_path: Path, config: RenderConfig) -> None:
    out = promtool("check", "rules", str(write_rules(tmp_path / "rules.yaml", config)), cwd=tmp_path)
    assert "SUCCESS" in out


@pytest.mark.parametrize("test_file", sorted(RULE_TESTS.glob("*.test.yaml")), ids=lambda p: p.name)
def test_alert_scenarios(tmp_path: Path, test_file: Path) -> None:
    config = RenderConfig()  # the SLO rendering's links are the same
    write_rules(tmp_path / "ingestion-rules.yaml", config)
    write_rules(
        tmp_path / "ingestion-rules-slo.yaml", RenderConfig(slo=Slo(0.99), routing_labels={"team": "data"})
    )
    scenarios = yaml.safe_load(test_file.read_text(encoding="utf-8"))
    for test in scenarios["tests"]:
        for case in test.get("alert_rule_test", []):
            for expected in case.get("exp_alerts", []):
                complete(expected, config)
    (tmp_path / test_file.name).write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    assert "SUCCESS" in promtool("test", "rules", test_file.name, cwd=tmp_path)


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_source_selects_exactly_itself(tmp_path: Path, source: str) -> None:
    """Per-source rules for a hostile name see its series and none of its neighbours'; its alert carries
    its own newest error (quotes, a newline, accents), the error's time and the links."""
    write_rules(tmp_path / "rules.yaml", RenderConfig(source=source, routing_labels={"team": "data"}))
    neighbours = {source + "_", "_" + source, source.upper(), source.replace("\\", "\\\\"), "x", "."}
    input_series = [
        {
            "series": series("ingestion_runs_total", f'{label("source", name)}, etat="FAILED", {RUN_LABELS}'),
            "values": "_ 1x10",
        }
        for name in sorted(neighbours | {source})
    ]
    input_series += [
        {
            "series": series(
                "ingestion_last_failure_info",
                f'{label("source", name)}, objet="o", {label("description", ERROR + name)}',
            ),
            "values": f"_ {FAILED_AT + i}x10",
        }
        for i, name in enumerate(sorted(neighbours | {source}))
    ]
    i = sorted(neighbours | {source}).index(source)
    expected = echec_detecte(source, "o", {"team": "data", "description": ERROR + source})
    expected["exp_annotations"]["heure_echec"] = f"{utc(FAILED_AT + i)} +0000 UTC"
    record = f"source:ingestion_runs:increase15m{{{label('source', source)}}}"
    run_tests(
        tmp_path,
        "rules.yaml",
        {
            "input_series": input_series,
            "alert_rule_test": [
                {
                    "eval_time": "2m",
                    "alertname": "IngestionEchecDetecte",
                    "exp_alerts": [expected],
                }
            ],
            "promql_expr_test": [
                {
                    "expr": "source:ingestion_runs:increase15m",
                    "eval_time": "2m",
                    "exp_samples": [{"labels": record, "value": 1}],
                }
            ],
        },
    )


@pytest.mark.parametrize("ingestions", [1, 2], ids=["once", "twice"])
def test_sample_data(tmp_path: Path, ingestions: int) -> None:
    """The sample's 72 objets, one run each, each counter appearing at 1, ingested once or twice (a replay
    counts every run again at t=11m; each objet's newest run is unchanged): the last-run stats show
    71 / 1 / 1.39 % either way, the period's runs 71 / 1 then 142 / 2, IngestionEchecDetecte fires
    for the one FAILED run, and no volume alert fires."""
    records = json.loads(sample_logs_path().read_text(encoding="utf-8"))
    names = ("source", "etat", "objet", "entreprise", "zone")
    counts = Counter(tuple(r[n.capitalize()] for n in names) for r in records)
    runs = {1: "_ {n}x30", 2: "_ {n}x9 {twice}x20"}[ingestions]
    input_series = [
        {
            "series": series("ingestion_runs_total", ", ".join(map(label, names, key))),
            "values": runs.format(n=count, twice=2 * count),
        }
        for key, count in sorted(counts.items())
    ]
    input_series += [
        {
            "series": series(
                "ingestion_last_run_status", f"{label('source', r['Source'])}, {label('objet', r['Objet'])}"
            ),
            "values": f"_ {int(r['Etat'] == 'SUCCESS')}x30",
        }
        for r in records
    ]
    input_series += [  # the runs that report rows (Lignes)
        {
            "series": series(
                "ingestion_last_run_rows", f"{label('source', r['Source'])}, {label('objet', r['Objet'])}"
            ),
            "values": f"_ {r['Lignes']}x30",
        }
        for r in records
        if r.get("Lignes") is not None
    ]
    board = render_dashboard(RenderConfig())
    queries = {q.panel: substitute(q.expr) for q in dashboard_queries(board)}
    stats = {"Succès": 71, "Échecs": 1, "Taux d'échec (%)": 1 / 72}
    expected = [(queries[title], value) for title, value in stats.items()]
    period = panel(board, "Exécutions sur la période")["targets"]  # SUCCESS, FAILED
    expected += [
        (substitute(target["expr"]), runs * ingestions) for target, runs in zip(period, (71, 1), strict=True)
    ]
    write_rules(tmp_path / "rules.yaml", RenderConfig())
    run_tests(
        tmp_path,
        "rules.yaml",
        {
            "input_series": input_series,
            "promql_expr_test": [
                {"expr": expr, "eval_time": "25m", "exp_samples": [{"labels": "{}", "value": value}]}
                for expr, value in expected
            ],
            "alert_rule_test": [
                {
                    "eval_time": "3m",
                    "alertname": "IngestionEchecDetecte",
                    "exp_alerts": [
                        echec_detecte("sharepoint_graph", "EventFactureApplication", config=RenderConfig())
                    ],
                },
                # no history: no volume alert, latency against the fixed reference (the sample: 1-3 s)
                *(
                    {"eval_time": "25m", "alertname": name, "exp_alerts": []}
                    for name in (
                        "IngestionExecutionVide",
                        "IngestionVolumeAnormal",
                        "IngestionLatenceDegradee",
                    )
                ),
            ],
        },
    )


@pytest.mark.parametrize(
    "config",
    [
        RenderConfig(slo=Slo(0.99)),
        *(RenderConfig(source=name, objets=(name, "b"), slo=Slo(0.99)) for name in HOSTILE),
    ],
    ids=["global", *(f"hostile-{i}" for i in range(len(HOSTILE)))],
)
def test_dashboard_promql_parses(tmp_path: Path, config: RenderConfig) -> None:
    """Every PromQL target of the dashboard, variables substituted, is a valid expression."""
    exprs = [
        substitute(q.expr)
        for q in dashboard_queries(render_dashboard(config))
        if q.datasource == "prometheus"
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"panel:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    assert f"SUCCESS: {len(exprs)} rules found" in promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)


def test_entreprise_filter(tmp_path: Path) -> None:
    """With `entreprise` set, ratio records and alerts see only that entreprise's runs (and say so)."""
    write_rules(tmp_path / "rules.yaml", RenderConfig(source="PowerBI", entreprise="akonovia"))
    input_series = [
        {"series": series("ingestion_runs_total", f'{labels}, objet="o", zone="z"'), "values": values}
        for labels, values in [
            ('source="PowerBI", entreprise="akonovia", etat="SUCCESS"', "0+3x20"),
            ('source="PowerBI", entreprise="akonovia", etat="FAILED"', "0+1x20"),
            ('source="PowerBI", entreprise="other", etat="FAILED"', "0+9x20"),
            ('source="Efficy", entreprise="akonovia", etat="FAILED"', "0+9x20"),
        ]
    ]
    expected = {
        "exp_labels": {"severity": "warning", "source": "PowerBI", "entreprise": "akonovia"},
        "exp_annotations": {
            "summary": "Taux d'échec élevé : PowerBI",
            "description": "Taux d'échec de 25% pour la source PowerBI sur 15 min (seuil 2 %, au moins "
            "5 exécutions).",
            "runbook_url": "https://runbooks.example.com/ingestion/ingestiontauxecheceleve",
        },
    }
    run_tests(
        tmp_path,
        "rules.yaml",
        {
            "input_series": input_series,
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "IngestionTauxEchecEleve",
                    "exp_alerts": [complete(expected, RenderConfig(source="PowerBI"))],
                }
            ],
        },
    )


def test_usual_values_of_a_hostile_source(tmp_path: Path) -> None:
    """Per-source rules for a hostile source and objet learn their own usual values only (a neighbour's
    same regression alerts nothing), and the descriptions read those values back through the names.
    `usual.min_history: 1h` keeps the history short (2 h at 5 min)."""
    source, objet = 'a"b\\c', "{{ $labels.objet }}\nx"
    config = RenderConfig(source=source, usual=Usual(min_history="1h"))
    write_rules(tmp_path / "rules.yaml", config)
    input_series = []
    for name in (source, source + "_"):
        labels = f"{label('source', name)}, {label('objet', objet)}"
        input_series += [
            {
                "series": series("source_objet:ingestion_duration_seconds:p95_1h", labels),
                "values": "1x23 20x12",
            },
            {"series": series("ingestion_last_run_rows", labels), "values": "100x23 0x12"},
            {"series": series("ingestion_last_run_status", labels), "values": "1x35"},
        ]

    def expected(summary: str, description: str, alert: str) -> dict[str, Any]:
        return complete(
            {
                "exp_labels": {"severity": "warning", "source": source, "objet": objet},
                "exp_annotations": {
                    "summary": f"{summary} : {source} / {objet}",
                    "description": description,
                    "runbook_url": f"https://runbooks.example.com/ingestion/{alert.lower()}",
                },
            },
            config,
        )

    latency = expected(
        "Latence p95 dégradée",
        f"Durée p95 de 20s pour la source {source}, objet {objet}, sur 1 h : au-delà de 2 × sa durée p95 "
        "habituelle de 1s (médiane sur 7 j) et du plancher de 5 s.",
        "IngestionLatenceDegradee",
    )
    empty = expected(
        "Exécution vide",
        f"La dernière exécution de l'objet {objet} (source {source}) a réussi sans écrire aucune ligne, "
        "contre 100 habituellement (médiane sur 7 j).",
        "IngestionExecutionVide",
    )
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "5m",
        "tests": [
            {
                "interval": "5m",
                "input_series": input_series,
                "alert_rule_test": [
                    {"eval_time": "2h", "alertname": "IngestionExecutionVide", "exp_alerts": [empty]},
                    {"eval_time": "2h15m", "alertname": "IngestionLatenceDegradee", "exp_alerts": [latency]},
                    {"eval_time": "2h15m", "alertname": "IngestionVolumeAnormal", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "usual.test.yaml").write_text(yaml.safe_dump(tests, allow_unicode=True), encoding="utf-8")
    assert "SUCCESS" in promtool("test", "rules", "usual.test.yaml", cwd=tmp_path)


@pytest.mark.parametrize("learned", [True, False], ids=["learned-usual", "fixed-reference"])
def test_objet_silence(tmp_path: Path, learned: bool) -> None:
    """IngestionObjetMuet for a CronJob running every minute (period 60 s, 2 periods): the run that ended
    at 0 fires just after 2 x 60 s + the usual duration, not at it; the usual is the learned p95 (100 s) or,
    without enough history, the fixed reference (30 s). A hostile source and objet select themselves only:
    the same source's unscheduled objet, a neighbour source's, and a scheduled objet that never ran do not
    fire."""
    source, objet = 'a"b\\c', "{{ $labels.objet }}\nx"
    schedule = ObjetSchedule(objet, 60, cronjob="export", schedule="* * * * *", suspended=True)
    config = RenderConfig(source=source, schedules=(schedule, ObjetSchedule("jamais", 60)))
    write_rules(tmp_path / "rules.yaml", config)
    usual = 100 if learned else 30
    threshold = 2 * 60 + usual
    labels = f"{label('source', source)}, {label('objet', objet)}"
    input_series = [
        {"series": series("ingestion_last_run_timestamp", other), "values": "0x60"}
        for other in (
            labels,
            f"{label('source', source)}, {label('objet', objet + '_')}",
            f"{label('source', source + '_')}, {label('objet', objet)}",
        )
    ]
    if learned:
        input_series += [
            {"series": series(f"{P95_RECORD}_median_7d", labels), "values": f"{usual}x60"},
            {"series": series(f"{P95_RECORD}_age_7d", labels), "values": "90000x60"},
        ]
    reference = (
        "durée p95 habituelle de 1m 40s, médiane sur 7 j"
        if learned
        else "référence de 30 s, moins de 1 j d'historique"
    )
    elapsed = threshold + 10
    expected = {
        "exp_labels": {"severity": "warning", "source": source, "objet": objet},
        "exp_annotations": {
            "summary": f"Objet muet (planification) : {source} / {objet}",
            "description": f"Aucune exécution de l'objet {objet} (source {source}) terminée depuis "
            f"{elapsed // 60}m {elapsed % 60}s : au-delà de 2 périodes de 1 min (CronJob export, "
            f"planification « * * * * * », fuseau UTC) plus la durée habituelle de l'objet ({reference}). "
            "Le CronJob export est suspendu (spec.suspend) : aucune exécution n'est planifiée tant qu'il "
            "l'est.",
            "runbook_url": "https://runbooks.example.com/ingestion/ingestionobjetmuet",
        },
    }
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "10s",
        "tests": [
            {
                "interval": "10s",
                "input_series": input_series,
                "alert_rule_test": [
                    {"eval_time": f"{threshold}s", "alertname": "IngestionObjetMuet", "exp_alerts": []},
                    {
                        "eval_time": f"{elapsed}s",
                        "alertname": "IngestionObjetMuet",
                        "exp_alerts": [complete(expected, config)],
                    },
                ],
            }
        ],
    }
    (tmp_path / "silence.test.yaml").write_text(yaml.safe_dump(tests, allow_unicode=True), encoding="utf-8")
    assert "SUCCESS" in promtool("test", "rules", "silence.test.yaml", cwd=tmp_path)
