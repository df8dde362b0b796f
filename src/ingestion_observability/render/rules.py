"""Prometheus rule groups (the plain data `promtool check rules` reads) for the ingestion metrics.

Global rendering (`source` unset, the chart): groups `ingestion-records`, `ingestion-alerts`,
`ingestion-consumer` (consumer health, Kafka lag) and, with an SLO, `ingestion-slo`.

Per-source rendering (the operator, one PrometheusRule per source): the same groups minus
`ingestion-consumer` (consumer-wide, it belongs to the chart), each named `<group>-<source key>` and every
selector narrowed to `source="<name>"`. Recording rule names are shared on purpose; `records` explains why
that cannot collide. Alerts carry the same names in both renderings; the operator adds the source's
namespace (and its routing labels), and Alertmanager inhibits the chart's twin of a source's own alert
(`notifications.inhibit_rules`). Only a source's own rules know its CronJobs: they alone have
`IngestionObjetMuet`, one per objet a CronJob runs (`RenderConfig.schedules`).

Counters appear on first sight (possibly directly at 1): every counter window goes through
`promql.window_count`, so a first FAILED run fires like any later one.
"""

from __future__ import annotations

import math
from typing import Any

from ingestion_observability import catalog
from ingestion_observability.render import annotations as notes
from ingestion_observability.render import records as rec
from ingestion_observability.render.config import (
    SEVERITIES,
    ObjetSchedule,
    RenderConfig,
    Slo,
    duration_seconds,
)
from ingestion_observability.render.promql import eq, number, selector, window_count
from ingestion_observability.render.records import Scope
from ingestion_observability.render.text import duree, nombre, pourcent

SLO_ALERT = "IngestionBudgetErreurSLO"
CONSUMER_NOT_READY = "IngestionConsumerNonPret"
OBJET_SILENCE = "IngestionObjetMuet"
# While these fire, the consumer is down or not ready and the metrics it exports are stale or missing:
# the alerts below follow from that and are inhibited in Alertmanager (notifications.inhibit_rules).
CONSUMER_OUTAGE_ALERTS = ("IngestionConsumerDown", CONSUMER_NOT_READY)
CAUSED_BY_CONSUMER_OUTAGE = (
    "IngestionSourceMuette",
    OBJET_SILENCE,
    "IngestionKafkaLag",
    "IngestionExecutionBloquee",
)
OBJET_SUBJECT = "{{ $labels.source }} / {{ $labels.objet }}"
__all__ = ["SEVERITIES", "alert_names", "render_rules"]


def alert_names() -> tuple[str, ...]:
    """Every alert this renderer can produce (an SLO included), in rendering order: the global rendering's,
    then the alerts only a source's own rules have (an objet run by a CronJob)."""
    slo = Slo(success_ratio=0.99)
    configs = (
        RenderConfig(slo=slo),
        RenderConfig(source="source", slo=slo, schedules=(ObjetSchedule("objet", period_seconds=60),)),
    )
    groups = [g for config in configs for g in render_rules(config)["groups"]]
    return tuple(dict.fromkeys(r["alert"] for g in groups for r in g["rules"] if "alert" in r))


def render_rules(config: RenderConfig) -> dict[str, Any]:
    """The rule file: `{"groups": [...]}`."""
    suffix = "" if config.key is None else f"-{config.key}"
    groups = [
        _group(f"ingestion-records{suffix}", rec.recording_rules(config)),
        # days of samples per objet: evaluated less often than the others (`records`)
        _group(f"ingestion-usual{suffix}", rec.usual_recording_rules(config), interval=config.usual.interval),
        _group(f"ingestion-alerts{suffix}", _source_alerts(config)),
    ]
    if config.source is None:
        groups.append(
            _group("ingestion-consumer", rec.consumer_recording_rules(config) + _consumer_alerts(config))
        )
    if config.slo is not None:
        groups.append(_group(f"ingestion-slo{suffix}", _slo_alerts(config)))
    return {"groups": groups}


def _group(name: str, rules: list[dict[str, Any]], *, interval: str | None = None) -> dict[str, Any]:
    return {"name": name, **({"interval": interval} if interval else {}), "rules": rules}


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

    objet, source = OBJET_SUBJECT, "{{ $labels.source }}"
    latency = config.latency
    # Rows: the newest run's (reported), and the objet's usual once it has enough history.
    rows, succeeded = rec.last_rows(scope.source), rec.succeeded(scope.source)
    # (0 rows usually: an objet often empty is never alerted on its volume)
    usual_rows = rec.learned(rec.rows_usual_record(config), rec.rows_age_record(config), scope.source, config)
    usual_rows = f"({usual_rows}) > 0"
    factor = number(config.volume.factor)
    info = f"0 * topk by (source, objet) (1, {selector(rec.LAST_FAILURE, scope.source)})"

    def with_error(expr: str) -> str:
        """`expr` (by source, objet) carrying the newest failure's description as label `description`;
        an objet without one (no failure known since its state was written) still alerts, without it."""
        return (
            f"({expr}) + on (source, objet) group_left (description) ({info}) or on (source, objet) ({expr})"
        )

    def failure_notes(window: str) -> dict[str, str]:
        return {
            "heure_echec": notes.failure_time(),
            "executions": notes.runs(window, "{{ $value }}"),
            **_links(config, per_objet=True),
        }

    return [
        _alert(
            config,
            "IngestionEchecDetecte",
            with_error(f"sum by (source, objet) ({window_count(failed, t.failure_window)}) > 0"),
            "critical",
            "Échec d'ingestion",
            objet,
            "{{ $value }} exécution(s) en échec (FAILED) pour la source {{ $labels.source }}, "
            f"objet {{{{ $labels.objet }}}}, sur une fenêtre de {duree(t.failure_window)}.",
            notes=failure_notes(t.failure_window),
        ),
        _alert(
            config,
            "IngestionTauxEchecEleve",
            f"{ratio} > {number(t.failure_ratio)} and {runs} >= {t.min_runs}",
            "warning",
            "Taux d'échec élevé",
            source,
            "Taux d'échec de {{ $value | humanizePercentage }} pour la source {{ $labels.source }} sur "
            f"{duree(t.failure_ratio_window)} (seuil {pourcent(t.failure_ratio)}, "
            f"au moins {t.min_runs} exécutions).",
            for_=t.failure_ratio_for,
            notes=_links(config, per_objet=False),
        ),
        _alert(
            config,
            "IngestionSourceMuette",
            f"time() - max by (source) (max_over_time({last_run}[{t.silence_lookback}]))"
            f" > {duration_seconds(t.silence)}",
            "warning",
            "Source muette",
            source,
            "Aucune exécution de la source {{ $labels.source }} terminée depuis "
            f"{{{{ $value | humanizeDuration }}}} (seuil {duree(t.silence)}, heure de fin des runs).",
            notes=_links(config, per_objet=False),
        ),
        _alert(
            config,
            "IngestionLatenceDegradee",
            # per objet, against its own usual p95 (or the fixed reference while it has too little history)
            f"{p95(rec.DURATION, per_objet=True)} > on (source, objet) "
            f"{rec.latency_threshold(config, scope.source)}",
            "warning",
            "Latence p95 dégradée",
            objet,
            "Durée p95 de {{ $value | humanizeDuration }} pour la source {{ $labels.source }}, objet "
            f"{{{{ $labels.objet }}}}, sur {duree(t.quantile_window)} : au-delà de "
            f"{_latency_reference(config)} et du plancher de {nombre(latency.floor_seconds)} s.",
            for_=t.performance_for,
            notes=_links(config, per_objet=True),
        ),
        _alert(
            config,
            "IngestionSurconsommationMemoire",
            f"{p95(rec.MEMORY, per_objet=True)} > {number(t.memory_bytes)}",
            "warning",
            "Surconsommation mémoire",
            objet,
            "Mémoire p95 de {{ $value | humanize1024 }}B pour la source {{ $labels.source }}, objet "
            f"{{{{ $labels.objet }}}}, sur {duree(t.quantile_window)} (seuil {nombre(t.memory_p95_mb)} MB).",
            for_=t.performance_for,
            notes=_links(config, per_objet=True),
        ),
        _alert(
            config,
            "IngestionSurconsommationCPU",
            f"{p95(rec.CPU, per_objet=True)} > {number(t.cpu_p95_seconds)}",
            "warning",
            "Surconsommation CPU",
            objet,
            "Temps CPU p95 de {{ $value | humanizeDuration }} pour la source {{ $labels.source }}, objet "
            f"{{{{ $labels.objet }}}}, sur {duree(t.quantile_window)} (seuil {nombre(t.cpu_p95_seconds)} s).",
            for_=t.performance_for,
            notes=_links(config, per_objet=True),
        ),
        _alert(
            config,
            "IngestionBurstErreurs",
            with_error(f"sum by (source, objet) ({window_count(failures, burst.window)}) > {burst.count}"),
            "warning",
            "Rafale d'erreurs",
            objet,
            "{{ $value }} échecs de l'objet {{ $labels.objet }} (source {{ $labels.source }}) en "
            f"{duree(burst.window)} (seuil : plus de {burst.count}).",
            notes=failure_notes(burst.window),
        ),
        _alert(
            config,
            "IngestionExecutionBloquee",
            # the in-progress guard: a gauge left at an old start must not fire once its runs ended
            f"time() - min by (source, objet) ({oldest_open}) > {duration_seconds(t.stuck_run)}"
            f" and on (source, objet) max by (source, objet) ({in_progress}) > 0",
            "warning",
            "Exécution bloquée",
            objet,
            "L'exécution la plus ancienne encore ouverte de l'objet {{ $labels.objet }} (source "
            "{{ $labels.source }}) a démarré il y a {{ $value | humanizeDuration }} sans se terminer "
            f"(START sans COMPLETE, FAIL ni ABORT ; seuil {duree(t.stuck_run)}).",
            notes=_links(config, per_objet=True),
        ),
        _alert(
            config,
            "IngestionExecutionVide",
            # the value is the usual rows; an objet usually empty (usual 0) or too young has none
            f"{usual_rows} and on (source, objet) {rows} == 0 and on (source, objet) {succeeded}",
            "warning",
            "Exécution vide",
            objet,
            "La dernière exécution de l'objet {{ $labels.objet }} (source {{ $labels.source }}) a réussi "
            'sans écrire aucune ligne, contre {{ $value | printf "%.0f" }} habituellement (médiane sur '
            f"{duree(config.usual.window)}).",
            notes=_links(config, per_objet=True),
        ),
        _alert(
            config,
            "IngestionVolumeAnormal",
            # the value is the newest run's rows; 0 rows is IngestionExecutionVide's
            f"({rows} < on (source, objet) ({usual_rows}) / {factor}"
            f" or {rows} > on (source, objet) ({usual_rows}) * {factor})"
            f" and on (source, objet) {rows} > 0 and on (source, objet) {succeeded}",
            "warning",
            "Volume anormal",
            objet,
            '{{ $value | printf "%.0f" }} ligne(s) écrite(s) par la dernière exécution de l\'objet '
            "{{ $labels.objet }} (source {{ $labels.source }}), contre "
            f"{notes.usual_value(rec.rows_usual_record(config), config)} habituellement (médiane sur "
            f"{duree(config.usual.window)}) : hors de l'intervalle habituel ÷ {nombre(config.volume.factor)}"
            f" à × {nombre(config.volume.factor)}.",
            notes=_links(config, per_objet=True),
        ),
        *(_objet_silence(config, schedule) for schedule in config.schedules),
    ]


def _objet_silence(config: RenderConfig, schedule: ObjetSchedule) -> dict[str, Any]:
    """IngestionObjetMuet: no run of the objet ended for `periods` periods of its CronJob's schedule plus its
    usual duration (`records.usual_duration`).

    An objet that never ran has no last run, hence no alert (its CronJob may not have fired yet). The last
    run is remembered over a lookback of at least twice the threshold, the usual duration counted as at
    most a period (longer, the CronJob's runs would overlap) or the fixed reference: once the threshold is
    passed, the alert fires for at least as long again before a series the consumer stopped exporting is
    forgotten.
    """
    matchers = (*Scope.of(config).source, eq("objet", schedule.objet))
    period = schedule.period_seconds
    silence = schedule.periods * period
    bound = silence + max(period, math.ceil(config.latency.baseline_seconds))
    lookback = rec.duration_text(max(duration_seconds(config.thresholds.silence_lookback), 2 * bound))
    last = f"max by (source, objet) (max_over_time({selector(rec.LAST_RUN, matchers)}[{lookback}]))"
    periods = f"{schedule.periods} période{'s' if schedule.periods > 1 else ''}"
    cronjob = f"CronJob {schedule.cronjob}" if schedule.cronjob else "CronJob"
    facts = [cronjob] if schedule.cronjob else []
    if schedule.schedule:
        facts.append(f"planification « {schedule.schedule} »")
    facts.append(f"fuseau {schedule.time_zone or 'UTC'}")
    suspended = (
        f" Le {cronjob} est suspendu (spec.suspend) : aucune exécution n'est planifiée tant qu'il l'est."
        if schedule.suspended
        else ""
    )
    alert = _alert(
        config,
        OBJET_SILENCE,
        f"time() - {last} > on (source, objet) {silence} + ({rec.usual_duration(config, matchers, last)})",
        "warning",
        "Objet muet (planification)",
        OBJET_SUBJECT,
        "Aucune exécution de l'objet {{ $labels.objet }} (source {{ $labels.source }}) terminée depuis "
        f"{{{{ $value | humanizeDuration }}}} : au-delà de {periods} de {duree(rec.duration_text(period))} "
        f"({', '.join(facts)}) plus la durée habituelle de l'objet ({_usual_duration(config)}).{suspended}",
        notes=_links(config, per_objet=True),
    )
    # the value the expression yields: it tells the rules of a source's objets apart (promtool's lint
    # refuses two alerts of one name with the same labels)
    alert["labels"]["objet"] = notes.literal(schedule.objet)
    return alert


def _usual_duration(config: RenderConfig) -> str:
    """The objet's usual p95 duration, or the fixed reference while it has no usual yet."""
    latency, usual = config.latency, config.usual
    return notes.if_value(
        _learned_latency(config),
        f"durée p95 habituelle de {{{{ . | first | value | humanizeDuration }}}}, médiane sur "
        f"{duree(usual.window)}",
        f"référence de {nombre(latency.baseline_seconds)} s, moins de {duree(usual.min_history)} "
        "d'historique",
    )


def _learned_latency(config: RenderConfig) -> str:
    """The objet's usual p95 in an annotation's query (`notes.if_value`)."""
    return rec.learned(
        rec.latency_usual_record(config), rec.latency_age_record(config), notes.OBJET_MATCHERS, config
    )


def _latency_reference(config: RenderConfig) -> str:
    """What the objet's p95 exceeds: its usual p95, or the fixed reference while it has no usual yet."""
    latency, usual = config.latency, config.usual
    return notes.if_value(
        _learned_latency(config),
        f"{nombre(latency.factor)} × sa durée p95 habituelle de "
        f"{{{{ . | first | value | humanizeDuration }}}} (médiane sur {duree(usual.window)})",
        f"{nombre(latency.fallback_seconds)} s = {nombre(latency.factor)} × la référence de "
        f"{nombre(latency.baseline_seconds)} s (moins de {duree(usual.min_history)} d'historique)",
    )


def _links(config: RenderConfig, *, per_objet: bool) -> dict[str, str]:
    return {
        "tableau_de_bord": notes.dashboard_link(config, per_objet=per_objet),
        "journaux": notes.logs_link(config, per_objet=per_objet),
    }


def _consumer_alerts(config: RenderConfig) -> list[dict[str, Any]]:
    t = config.thresholds
    job = (eq("job", config.consumer_job),)
    up, ready = selector("up", job), selector(catalog.CONSUMER_READY.name, job)
    return [
        _alert(
            config,
            "IngestionConsumerDown",
            f"{up} == 0 or absent({up})",
            "critical",
            "Consumer d'ingestion indisponible",
            "{{ $labels.job }}",
            f"Le job {{{{ $labels.job }}}} ne répond plus au scrape depuis {duree(t.consumer_down_for)} "
            "(valeur {{ $value }} : 0 = cible en panne, 1 = cible absente) : plus aucune métrique "
            "d'ingestion n'est produite.",
            for_=t.consumer_down_for,
        ),
        _alert(
            config,
            CONSUMER_NOT_READY,
            # no `for`: it holds back the alerts the outage causes from its first evaluation on
            f"max by (job) ({up}) == 0 or absent({up}) or max by (job) ({ready}) == 0",
            "info",
            "Consumer d'ingestion non prêt",
            "{{ $labels.job }}",
            "Aucune instance du job {{ $labels.job }} n'est prête (arrêtée, en restauration de son état ou "
            "sans partition) : les alertes de sources et d'objets muets, de retard Kafka et d'exécutions "
            "bloquées sont retenues dans Alertmanager tant qu'elle dure.",
        ),
        _alert(
            config,
            "IngestionKafkaLag",
            f"{rec.KAFKA_LAG_RECORD} > {number(t.kafka_lag)}",
            "warning",
            "Retard du consumer Kafka",
            "{{ $labels.topic }}",
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
            "Budget d'erreur SLO consommé trop vite",
            "{{ $labels.source }}",
            "Taux d'échec de {{ $value | humanizePercentage }} sur " + duree(long) + " pour la source "
            f"{{{{ $labels.source }}}} : le budget d'erreur (objectif {pourcent(slo.success_ratio)} sur "
            f"{duree(slo.window)}) brûle {nombre(factor)} fois trop vite ({duree(long)} et {duree(short)}).",
            notes=_links(config, per_objet=False),
        )
        alert["labels"] |= {"long": long, "short": short}
        alerts.append(alert)
    return alerts


def _alert(
    config: RenderConfig,
    name: str,
    expr: str,
    severity: str,
    title: str,
    subject: str,
    description: str,
    *,
    for_: str | None = None,
    notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An alert; `title` and `subject` ("source / objet") make its summary and its notifications' title."""
    assert severity in SEVERITIES
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ is not None:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, **config.routing_labels}
    rule["annotations"] = {
        "summary": f"{title} : {subject}",
        "titre": title,
        "sujet": subject,
        "description": description,
        "runbook_url": f"{config.runbook_base_url.rstrip('/')}/{name.lower()}",
        **(notes or {}),
    }
    return rule
