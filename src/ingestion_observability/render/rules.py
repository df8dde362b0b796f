"""Prometheus rule groups (the plain data `promtool check rules` reads) for the ingestion metrics.

Global rendering (`source` unset, the chart): groups `ingestion-records`, `ingestion-alerts`,
`ingestion-consumer` (consumer health, Kafka lag) and, with an SLO, `ingestion-slo`.

Per-source rendering (the operator, one PrometheusRule per source): the same groups minus
`ingestion-consumer` (consumer-wide, it belongs to the chart), each named `<group>-<source key>` and every
selector narrowed to `source="<name>"`. Recording rule names are shared on purpose; `records` explains why
that cannot collide. Alerts carry the same names and labels in both renderings, so Alertmanager merges a
source alerted by both.

Counters appear on first sight (possibly directly at 1): every counter window goes through
`promql.window_count`, so a first FAILED run fires like any later one.
"""

from __future__ import annotations

from typing import Any

from ingestion_observability.render import records as rec
from ingestion_observability.render.config import RenderConfig, duration_seconds
from ingestion_observability.render.promql import eq, number, selector, window_count
from ingestion_observability.render.records import Scope
from ingestion_observability.render.text import duree, nombre, pourcent

SLO_ALERT = "IngestionBudgetErreurSLO"


def render_rules(config: RenderConfig) -> dict[str, Any]:
    """The rule file: `{"groups": [...]}`."""
    suffix = "" if config.key is None else f"-{config.key}"
    groups = [
        _group(f"ingestion-records{suffix}", rec.recording_rules(config)),
        _group(f"ingestion-alerts{suffix}", _source_alerts(config)),
    ]
    if config.source is None:
        groups.append(
            _group("ingestion-consumer", rec.consumer_recording_rules(config) + _consumer_alerts(config))
        )
    if config.slo is not None:
        groups.append(_group(f"ingestion-slo{suffix}", _slo_alerts(config)))
    return {"groups": groups}


def _group(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "rules": rules}


def _source_alerts(config: RenderConfig) -> list[dict[str, Any]]:
    t, burst, scope = config.thresholds, config.error_burst, Scope.of(config)
    failed = selector(rec.RUNS, (*scope.runs, eq("etat", "FAILED")))
    ratio = selector(rec.ratio_record(t.failure_ratio_window), scope.run_records)
    runs = selector(rec.runs_record(t.failure_ratio_window), scope.run_records)
    # Per objet: a source is silent when all its objets are.
    last_run = selector(rec.LAST_RUN, scope.source)
    failures = selector(rec.FAILURES, scope.source)
    oldest_open, in_progress = (
        selector(rec.OLDEST_OPEN, scope.source),
        selector(rec.IN_PROGRESS, scope.source),
    )

    def p95(metric: str, *, per_objet: bool) -> str:
        return selector(rec.quantile_record(metric, 95, t.quantile_window, per_objet=per_objet), scope.source)

    objet = "{{ $labels.source }} / {{ $labels.objet }}"
    return [
        _alert(
            config,
            "IngestionEchecDetecte",
            f"sum by (source, objet) ({window_count(failed, t.failure_window)}) > 0",
            "critical",
            f"Échec d'ingestion détecté — {objet}",
            "{{ $value }} exécution(s) en échec (FAILED) pour la source {{ $labels.source }}, "
            f"objet {{{{ $labels.objet }}}}, sur une fenêtre de {duree(t.failure_window)}.",
        ),
        _alert(
            config,
            "IngestionTauxEchecEleve",
            f"{ratio} > {number(t.failure_ratio)} and {runs} >= {t.min_runs}",
            "warning",
            "Taux d'échec élevé — {{ $labels.source }}",
            "Taux d'échec de {{ $value | humanizePercentage }} pour la source {{ $labels.source }} sur "
            f"{duree(t.failure_ratio_window)} (seuil {pourcent(t.failure_ratio)}, "
            f"au moins {t.min_runs} exécutions).",
            for_=t.failure_ratio_for,
        ),
        _alert(
            config,
            "IngestionSourceMuette",
            f"time() - max by (source) (max_over_time({last_run}[{t.silence_lookback}]))"
            f" > {duration_seconds(t.silence)}",
            "warning",
            "Source muette — {{ $labels.source }}",
            "Aucune exécution de la source {{ $labels.source }} terminée depuis "
            f"{{{{ $value | humanizeDuration }}}} (seuil {duree(t.silence)}, heure de fin des runs).",
        ),
        _alert(
            config,
            "IngestionLatenceDegradee",
            f"{p95(rec.DURATION, per_objet=False)} > {number(t.latency_seconds)}",
            "warning",
            "Latence p95 dégradée — {{ $labels.source }}",
            "Durée p95 de {{ $value | humanizeDuration }} pour la source {{ $labels.source }} sur "
            f"{duree(t.quantile_window)} (seuil {nombre(t.latency_seconds)} s = "
            f"{nombre(t.latency_factor)} × la référence de {nombre(t.latency_baseline_seconds)} s).",
            for_=t.performance_for,
        ),
        _alert(
            config,
            "IngestionSurconsommationMemoire",
            f"{p95(rec.MEMORY, per_objet=True)} > {number(t.memory_bytes)}",
            "warning",
            f"Surconsommation mémoire — {objet}",
            "Mémoire p95 de {{ $value | humanize1024 }}B pour la source {{ $labels.source }}, objet "
            f"{{{{ $labels.objet }}}}, sur {duree(t.quantile_window)} (seuil {nombre(t.memory_p95_mb)} MB).",
            for_=t.performance_for,
        ),
        _alert(
            config,
            "IngestionSurconsommationCPU",
            f"{p95(rec.CPU, per_objet=True)} > {number(t.cpu_p95_seconds)}",
            "warning",
            f"Surconsommation CPU — {objet}",
            "Temps CPU p95 de {{ $value | humanizeDuration }} pour la source {{ $labels.source }}, objet "
            f"{{{{ $labels.objet }}}}, sur {duree(t.quantile_window)} (seuil {nombre(t.cpu_p95_seconds)} s).",
            for_=t.performance_for,
        ),
        _alert(
            config,
            "IngestionBurstErreurs",
            f"sum by (source, objet) ({window_count(failures, burst.window)}) > {burst.count}",
            "warning",
            f"Rafale d'erreurs — {objet}",
            "{{ $value }} échecs de l'objet {{ $labels.objet }} (source {{ $labels.source }}) en "
            f"{duree(burst.window)} (seuil : plus de {burst.count}).",
        ),
        _alert(
            config,
            "IngestionExecutionBloquee",
            # the in-progress guard: a gauge left at an old start must not fire once its runs ended
            f"time() - min by (source, objet) ({oldest_open}) > {duration_seconds(t.stuck_run)}"
            f" and on (source, objet) max by (source, objet) ({in_progress}) > 0",
            "warning",
            f"Exécution bloquée — {objet}",
            "L'exécution la plus ancienne encore ouverte de l'objet {{ $labels.objet }} (source "
            "{{ $labels.source }}) a démarré il y a {{ $value | humanizeDuration }} sans se terminer "
            f"(START sans COMPLETE, FAIL ni ABORT ; seuil {duree(t.stuck_run)}).",
        ),
    ]


def _consumer_alerts(config: RenderConfig) -> list[dict[str, Any]]:
    t = config.thresholds
    up = selector("up", (eq("job", config.consumer_job),))
    return [
        _alert(
            config,
            "IngestionConsumerDown",
            f"{up} == 0 or absent({up})",
            "critical",
            "Consumer d'ingestion indisponible — {{ $labels.job }}",
            f"Le job {{{{ $labels.job }}}} ne répond plus au scrape depuis {duree(t.consumer_down_for)} "
            "(valeur {{ $value }} : 0 = cible en panne, 1 = cible absente) : plus aucune métrique "
            "d'ingestion n'est produite.",
            for_=t.consumer_down_for,
        ),
        _alert(
            config,
            "IngestionKafkaLag",
            f"{rec.KAFKA_LAG_RECORD} > {number(t.kafka_lag)}",
            "warning",
            "Retard du consumer Kafka — {{ $labels.topic }}",
            "Retard de {{ $value | humanize }} messages sur le topic {{ $labels.topic }} depuis "
            f"{duree(t.kafka_lag_for)} (seuil {nombre(t.kafka_lag)}).",
            for_=t.kafka_lag_for,
        ),
    ]


def _slo_alerts(config: RenderConfig) -> list[dict[str, Any]]:
    """Multi-window multi-burn-rate alerts: both windows above `factor` x the error budget."""
    assert config.slo is not None
    slo, scope = config.slo, Scope.of(config)
    budget = f"(1 - {number(slo.success_ratio)})"
    pairs = [(*w, "critical") for w in rec.PAGE_WINDOWS] + [(*w, "warning") for w in rec.TICKET_WINDOWS]
    alerts = []
    for long, short, factor, severity in pairs:
        threshold = f"{number(factor)} * {budget}"
        expr = (
            f"{selector(rec.ratio_record(long), scope.run_records)} > {threshold}"
            f" and {selector(rec.ratio_record(short), scope.run_records)} > {threshold}"
            f" and {selector(rec.runs_record(long), scope.run_records)} >= {config.thresholds.min_runs}"
        )
        alert = _alert(
            config,
            SLO_ALERT,
            expr,
            severity,
            "Budget d'erreur SLO consommé trop vite — {{ $labels.source }}",
            "Taux d'échec de {{ $value | humanizePercentage }} sur " + duree(long) + " pour la source "
            f"{{{{ $labels.source }}}} : le budget d'erreur (objectif {pourcent(slo.success_ratio)} sur "
            f"{duree(slo.window)}) brûle {nombre(factor)} fois trop vite ({duree(long)} et {duree(short)}).",
        )
        alert["labels"] |= {"long": long, "short": short}
        alerts.append(alert)
    return alerts


def _alert(
    config: RenderConfig,
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    *,
    for_: str | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ is not None:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, **config.routing_labels}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": f"{config.runbook_base_url.rstrip('/')}/{name.lower()}",
    }
    return rule
