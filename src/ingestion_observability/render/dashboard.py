"""The Grafana dashboard, built with grafana-foundation-sdk and returned as plain JSON data.

Global rendering: template variables `source`, `objet`, `entreprise` filter every query. Per-source
rendering (operator): the source is fixed with an exact matcher (no `source` variable, so no way for a
source name to reach a regex), and `objets` adds one collapsed row per objet.

The overview's Succès / Échecs stats count objets by the état of their newest run
(`ingestion_last_run_status`): the same on the sample ingested once or twice. Run counts over the
displayed range go through `promql.window_count` (a counter can appear directly at 1, which no
`increase()` would see); the other stats read the counters whole (everything counted since the consumer
started); trend panels read the recording rules of `records`, so the rules must be loaded for them to
show data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row, ThresholdsConfig
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueGraphMode,
    GraphDrawStyle,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Panel,
    VariableModel,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.table import Options as TableOptions

from ingestion_observability.render import records as rec
from ingestion_observability.render.config import RenderConfig, duration_seconds, source_key
from ingestion_observability.render.panels import (
    GREEN,
    ORANGE,
    RED,
    Target,
    display_name,
    fixed_color,
    logs,
    metric_logs,
    prom,
    rising,
    setup,
    steps,
)
from ingestion_observability.render.promql import eq, number, selector, stream, var, window_count
from ingestion_observability.render.text import duree, nombre, pourcent

OVERVIEW_UID = "ingestion-overview"
TITLE = "Ingestion — Observabilité"
ROWS = (
    "Vue d'ensemble — Ingestion: Health",
    "Fiabilité — Errors & SLAs",
    "Performance — Latency & Throughput",
    "Volumes — Lignes par exécution",
    "Détails par connecteur — Sources & Objets",
    "Derniers messages d'erreur",
)
# In the description of every panel that reads counters raw (totals since the consumer started, see the
# module docstring): what tells a reader, and the dashboard lint, that no rate or increase is missing there.
SINCE_START = "depuis le démarrage du consumer"
# Series names of "Exécutions sur la période" (its legends).
PERIOD_SUCCESS, PERIOD_FAILED = "Réussies", "En échec"
# A failed hourly job normally recovers at its next run: an hour of MTTR is the norm, not a warning.
MTTR_WARN, MTTR_ALERT = 2 * 3600, 6 * 3600
DETAIL_LINES = 1000
LAST_ERRORS = 5
# Loki `| json` extractions of the details table: label -> (column title, unit or None for text).
DETAIL_FIELDS = {
    "debut": ("Debut", None),
    "fin": ("Fin", None),
    "duree_secondes": ("Duree secondes", "s"),
    "cpu_time": ("cpu_time", "s"),
    "memory_used": ("memory_used", "bytes"),
    "lignes": ("Lignes", "none"),
    "description": ("Description", None),
}
# Rows written (event.normalise: null when the run does not report them).
LIGNES_JSON = 'lignes="performance.lignes"'
DETAIL_JSON = (
    'debut="debut", fin="fin", duree_secondes="performance.duree_secondes", '
    'cpu_time="performance.cpu_time_sec", memory_used="performance.memory_used_bytes", '
    f'{LIGNES_JSON}, description="description"'
)


def dashboard_uid(source: str | None) -> str:
    """`ingestion-overview`, or a per-source uid derived from the name (<= 40 chars, [a-z0-9-])."""
    return OVERVIEW_UID if source is None else f"ingestion-{source_key(source)}"


def render_dashboard(config: RenderConfig) -> dict[str, Any]:
    """The dashboard JSON model as plain data (what Grafana imports or a ConfigMap carries)."""
    board = _Board(config)
    title = TITLE if config.source is None else f"Ingestion — {config.source}"
    tags = ["ingestion", "observabilité"] + ([] if config.source is None else [config.source])
    dash = (
        Dashboard(title)
        .uid(dashboard_uid(config.source))
        .description("Exécutions des connecteurs d'ingestion : succès, échecs, latence, ressources, logs.")
        .tags(tags)
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("browser")
        .variables(board.variables())
    )
    for title, panels in zip(ROWS, board.rows(), strict=True):
        dash = dash.with_row(Row(title).collapsed(False))
        for panel in panels:
            dash = dash.with_panel(panel)
    for objet in config.objets:
        dash = dash.with_row(board.objet_row(objet))
    model = dash.build()
    # The SDK's models (Grafana 11) put settings where Grafana 13's types have none: an interval variable's
    # `auto` settings on every variable, and the panel-level table footer that Grafana now migrates away
    # to field config on load.
    for variable in model.templating.list_val or []:
        variable.auto = variable.auto_min = variable.auto_count = None
    for panel_id, panel in enumerate(_all_panels(model.panels or []), start=1):
        panel.id_val = panel_id
        if isinstance(getattr(panel, "options", None), TableOptions):
            panel.options.footer = None
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return data


def _all_panels(panels: list[Any]) -> list[Any]:
    return [p for panel in panels for p in (panel, *(getattr(panel, "panels", None) or []))]


@dataclass(frozen=True)
class _Matchers:
    source: tuple[str, ...]  # every ingestion metric
    objet: tuple[str, ...]  # metrics with an objet label
    run_extra: tuple[str, ...]  # ingestion_runs_total and Loki streams only: entreprise, zone
    run_records: tuple[str, ...]  # exactly the run records of this configuration (see `records`)
    stream: tuple[str, ...]  # Loki stream selector

    @property
    def runs(self) -> tuple[str, ...]:
        return (*self.objet, *self.run_extra)


class _Board:
    def __init__(self, config: RenderConfig) -> None:
        self.config = config
        self.t = config.thresholds
        self.prom_ds = DataSourceRef(type_val="prometheus", uid=config.datasources.prometheus)
        self.loki_ds = DataSourceRef(type_val="loki", uid=config.datasources.loki)
        source = (var("source", "source"),) if config.source is None else (eq("source", config.source),)
        run_extra = (var("entreprise", "entreprise"), *rec.filter_matchers(config))
        self.m = _Matchers(
            source=source,
            objet=(*source, var("objet", "objet")),
            run_extra=run_extra,
            run_records=(*source, *rec.record_matchers(config)),
            stream=(eq("job", config.loki_job), *source, *run_extra),
        )

    def variables(self) -> list[Builder[VariableModel]]:
        scoped = selector(rec.RUNS, self.m.source)
        queries = [("objet", "Objet", scoped), ("entreprise", "Entreprise", scoped)]
        if self.config.source is None:
            queries.insert(0, ("source", "Source", rec.RUNS))
        return [
            QueryVariable(name)
            .label(label)
            .datasource(self.prom_ds)
            .query(f"label_values({metric}, {name})")
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            for name, label, metric in queries
        ]

    def rows(self) -> list[list[Builder[Panel]]]:
        return [
            self._overview(),
            self._reliability(),
            self._performance(),
            self._volumes(),
            [self._details()],
            [self._errors()],
        ]

    # Row 1 -----------------------------------------------------------------------------------------

    def _overview(self) -> list[Builder[Panel]]:
        t, m, latency = self.t, self.m, self.config.latency
        # One sample per objet, 1 SUCCESS / 0 FAILED; the gauge has no entreprise or zone label, so the
        # objets are those with runs matching the filters.
        last = f"({selector(rec.LAST_STATUS, m.objet)} and on (source, objet) {selector(rec.RUNS, m.runs)})"
        success = f"count({last} == 1) or vector(0)"
        failed = f"count({last} == 0) or vector(0)"
        ratio = f"({failed}) / count({last})"
        p95 = f"histogram_quantile(0.95, sum by (le) ({selector(rec.DURATION + '_bucket', m.objet)}))"
        memory = (
            f"max(max_over_time({stream(m.stream)} | {var('objet', 'objet')}"
            ' | json memory="performance.memory_used_bytes" | unwrap memory | __error__="" [$__range]))'
        )
        since = SINCE_START
        objets = f"parmi les objets exécutés {since}"
        return [
            self._stat(
                "Succès",
                f"Objets dont la dernière exécution (par heure de fin) a réussi (SUCCESS), {objets}.",
                success,
                steps(GREEN),
                width=4,
            ),
            self._stat(
                "Échecs",
                "Objets dont la dernière exécution (par heure de fin) est en échec (FAILED), jusqu'à leur "
                f"prochain succès, {objets}.",
                failed,
                steps(GREEN, (1, RED)),
                width=4,
            ),
            self._stat(
                "Taux d'échec (%)",
                f"Part des objets dont la dernière exécution est en échec, {objets}. Orange dès "
                f"{pourcent(t.failure_ratio / 2)}, rouge au seuil de l'alerte IngestionTauxEchecEleve "
                f"({pourcent(t.failure_ratio)}, qui porte sur les exécutions).",
                ratio,
                rising(t.failure_ratio / 2, t.failure_ratio),
                unit="percentunit",
                width=4,
                decimals=2,
            ),
            self._period_runs(width=4),
            self._stat(
                "p95 durée (s)",
                f"95e centile de la durée des exécutions {since}. Orange au-dessus de la référence "
                f"({nombre(latency.baseline_seconds)} s), rouge à {nombre(latency.fallback_seconds)} s "
                "(le seuil d'alerte d'un objet sans historique ; les autres sont comparés à leur durée "
                "habituelle).",
                p95,
                rising(latency.baseline_seconds, latency.fallback_seconds),
                unit="s",
                width=4,
                decimals=2,
            ),
            setup(
                _stat_panel().decimals(1),
                self.loki_ds,
                "Max mémoire (MB)",
                "Mémoire maximale d'une exécution sur la période affichée (logs Loki, valeur exacte). "
                f"Rouge au seuil d'alerte ({nombre(t.memory_p95_mb)} MB).",
                [metric_logs(self.loki_ds, memory)],
                width=4,
                height=4,
                unit="bytes",
                thresholds=rising(t.memory_bytes * 0.8, t.memory_bytes),
            ),
            self._runs_timeline("Timeline des runs", m.runs, width=14),
            setup(
                self._bars(),
                self.prom_ds,
                "Top sources par durée (p95)",
                f"Les 10 sources dont le 95e centile de durée est le plus élevé, {since}.",
                [
                    prom(
                        self.prom_ds,
                        f"sort_desc(topk(10, histogram_quantile(0.95, sum by (source, le) "
                        f"({selector(rec.DURATION + '_bucket', m.objet)}))))",
                        "{{source}}",
                        instant=True,
                    )
                ],
                width=10,
                height=8,
                unit="s",
                thresholds=rising(latency.baseline_seconds, latency.fallback_seconds),
            ),
        ]

    # Row 2 -----------------------------------------------------------------------------------------

    def _reliability(self) -> list[Builder[Panel]]:
        t, m, config = self.t, self.m, self.config
        window = t.failure_ratio_window
        failed = f"sum({selector(rec.failed_record(window), m.run_records)})"
        runs = f"sum({selector(rec.runs_record(window), m.run_records)})"
        ratio_steps = rising(t.failure_ratio / 2, t.failure_ratio)
        silence, stuck = duration_seconds(t.silence), duration_seconds(t.stuck_run)
        last_run = selector(rec.LAST_RUN, m.source)
        panels: list[Builder[Panel]] = [
            self._series(
                f"Taux d'échec global ({duree(window)})",
                f"Échecs / exécutions de toutes les sources sélectionnées sur {duree(window)} glissantes.",
                [prom(self.prom_ds, f"{failed} / ({runs} > 0)", "Global")],
                unit="percentunit",
                thresholds=ratio_steps,
                width=8,
            ),
            self._series(
                f"Taux d'échec par source ({duree(window)})",
                f"Alerte IngestionTauxEchecEleve au-delà de {pourcent(t.failure_ratio)} "
                f"(au moins {t.min_runs} exécutions).",
                [prom(self.prom_ds, selector(rec.ratio_record(window), m.run_records), "{{source}}")],
                unit="percentunit",
                thresholds=ratio_steps,
                width=8,
            ),
            self._gauge(
                f"MTTR par source ({duree(t.mttr_window)})",
                "Temps moyen entre un échec et le succès suivant du même objet (heure des runs).",
                selector(rec.mttr_record(t.mttr_window), m.source),
                unit="s",
                thresholds=rising(MTTR_WARN, MTTR_ALERT),
                width=8,
            ),
            self._gauge(
                f"Fraîcheur par source (SLO {duree(t.silence)})",
                "Temps écoulé depuis la fin de la dernière exécution de chaque source. Alerte "
                f"IngestionSourceMuette au-delà de {duree(t.silence)}.",
                f"sort_desc(time() - max by (source) (max_over_time({last_run}[{t.silence_lookback}])))",
                unit="s",
                thresholds=rising(silence * 0.8, silence),
                width=12 if config.slo is not None else 24,
            ),
            self._gauge(
                "Exécutions en cours par source",
                "Exécutions démarrées (START OpenLineage) et pas encore terminées (COMPLETE, FAIL ou ABORT).",
                f"sort_desc(sum by (source) ({selector(rec.IN_PROGRESS, m.objet)}))",
                unit="short",
                thresholds=steps(GREEN),
                width=12,
            ),
            self._gauge(
                "Plus ancienne exécution en cours",
                "Depuis quand l'exécution ouverte la plus ancienne de chaque source a démarré. Alerte "
                f"IngestionExecutionBloquee au-delà de {duree(t.stuck_run)}.",
                f"sort_desc(time() - min by (source) ({selector(rec.OLDEST_OPEN, m.objet)})"
                f" and on (source) sum by (source) ({selector(rec.IN_PROGRESS, m.objet)}) > 0)",
                unit="s",
                thresholds=rising(stuck * 0.5, stuck),
                width=12,
            ),
        ]
        if config.slo is not None:
            slo = config.slo
            remaining = (
                f"1 - {selector(rec.ratio_record(slo.window), m.run_records)}"
                f" / (1 - {number(slo.success_ratio)})"
            )
            panels.append(
                self._gauge(
                    f"Budget d'erreur restant (SLO {pourcent(slo.success_ratio)} sur {duree(slo.window)})",
                    "Part du budget d'erreur encore disponible : négatif = objectif manqué.",
                    remaining,
                    unit="percentunit",
                    thresholds=steps(RED, (0, ORANGE), (0.25, GREEN)),
                    width=12,
                )
            )
        return panels

    # Row 3 -----------------------------------------------------------------------------------------

    def _performance(self) -> list[Builder[Panel]]:
        t, m = self.t, self.m
        window = t.quantile_window

        def quantiles(per_objet: bool) -> list[Target]:
            legend = "{{source}} / {{objet}}" if per_objet else "{{source}}"
            matchers = m.objet if per_objet else m.source
            return [
                prom(
                    self.prom_ds,
                    selector(rec.quantile_record(rec.DURATION, q, window, per_objet=per_objet), matchers),
                    f"p{q} {legend}",
                )
                for q in rec.DURATION_QUANTILES
            ]

        latency = rising(self.config.latency.baseline_seconds, self.config.latency.fallback_seconds)
        p95 = f"95e centile sur {duree(window)} glissante"
        return [
            self._series(
                "Durée p50/p95/p99 par source",
                f"Centiles de la durée des exécutions sur {duree(window)} glissante.",
                quantiles(False),
                unit="s",
                thresholds=latency,
                width=12,
            ),
            self._series(
                "Durée p50/p95/p99 par objet",
                f"Centiles de la durée des exécutions par objet sur {duree(window)} glissante.",
                quantiles(True),
                unit="s",
                thresholds=latency,
                width=12,
            ),
            self._usual_latency(),
            self._series(
                "Exécutions / 5 min par source",
                "Nombre d'exécutions terminées sur les 5 dernières minutes.",
                [
                    prom(
                        self.prom_ds,
                        selector(rec.runs_record(rec.THROUGHPUT_WINDOW), m.run_records),
                        "{{source}}",
                    )
                ],
                unit="short",
                width=8,
            ),
            self._series(
                "CPU p95 par source",
                f"Temps CPU par exécution, {p95}. Alerte au-delà de {nombre(t.cpu_p95_seconds)} s.",
                [
                    prom(
                        self.prom_ds,
                        selector(rec.quantile_record(rec.CPU, 95, window), m.source),
                        "{{source}}",
                    )
                ],
                unit="s",
                thresholds=rising(t.cpu_p95_seconds * 0.8, t.cpu_p95_seconds),
                width=8,
            ),
            self._series(
                "Mémoire p95 par source",
                f"Mémoire par exécution, {p95}. Alerte au-delà de {nombre(t.memory_p95_mb)} MB.",
                [
                    prom(
                        self.prom_ds,
                        selector(rec.quantile_record(rec.MEMORY, 95, window), m.source),
                        "{{source}}",
                    )
                ],
                unit="bytes",
                thresholds=rising(t.memory_bytes * 0.8, t.memory_bytes),
                width=8,
            ),
        ]

    def _usual_latency(self) -> timeseries.Panel:
        """Each objet's p95 against its usual p95 and the alert's threshold (the learned one, or the fixed
        reference while the objet has too little history)."""
        config, m = self.config, self.m
        latency, usual = config.latency, config.usual
        legend = "{{source}} / {{objet}}"
        p95 = selector(rec.quantile_record(rec.DURATION, 95, self.t.quantile_window, per_objet=True), m.objet)
        return self._band(
            "Durée p95 par objet et sa durée habituelle",
            f"95e centile de la durée sur {duree(self.t.quantile_window)} glissante (trait plein), durée "
            f"p95 habituelle de l'objet, médiane sur {duree(usual.window)} (tirets), et seuil "
            f"d'IngestionLatenceDegradee (pointillés rouges) : {nombre(latency.factor)} × l'habituelle, au "
            f"moins {nombre(latency.floor_seconds)} s ; {nombre(latency.fallback_seconds)} s pour un objet "
            f"de moins de {duree(usual.min_history)} d'historique.",
            [
                prom(self.prom_ds, p95, f"p95 {legend}"),
                prom(
                    self.prom_ds,
                    rec.usual(rec.latency_usual_record(config), m.objet, config),
                    f"habituelle {legend}",
                ),
                prom(self.prom_ds, rec.latency_threshold(config, m.objet), f"seuil {legend}"),
            ],
            unit="s",
        )

    # Row 4 -----------------------------------------------------------------------------------------

    def _volumes(self) -> list[Builder[Panel]]:
        config, m = self.config, self.m
        usual, factor = config.usual, config.volume.factor
        legend = "{{source}} / {{objet}}"
        usual_rows = rec.usual(rec.rows_usual_record(config), m.objet, config)
        return [
            self._band(
                "Lignes par exécution par objet",
                "Lignes écrites par la dernière exécution de chaque objet (trait plein, objets qui les "
                f"déclarent), ses lignes habituelles, médiane sur {duree(usual.window)} des exécutions "
                f"réussies (tirets), et l'intervalle habituel ÷ {nombre(factor)} à × {nombre(factor)} "
                "(pointillés rouges). Hors de l'intervalle : IngestionVolumeAnormal ; 0 ligne d'une "
                "exécution réussie : IngestionExecutionVide, dès "
                f"{duree(usual.min_history)} d'historique.",
                [
                    prom(self.prom_ds, rec.last_rows(m.objet), f"lignes {legend}"),
                    prom(self.prom_ds, usual_rows, f"habituelles {legend}"),
                    prom(self.prom_ds, f"{usual_rows} / {number(factor)}", f"minimum {legend}"),
                    prom(self.prom_ds, f"{usual_rows} * {number(factor)}", f"maximum {legend}"),
                ],
                unit="none",
            )
        ]

    def _band(self, title: str, description: str, targets: list[Target], *, unit: str) -> timeseries.Panel:
        """A value per objet (A), its usual value (B, dashed) and its alert limits (C and on, dotted red)."""
        panel = self._series(title, description, targets, unit=unit, width=24)
        panel = panel.override_by_query("B", [_line("dash", [10, 10])])
        for ref_id in (chr(ord("C") + i) for i in range(len(targets) - 2)):
            panel = panel.override_by_query(ref_id, [_line("dot", [0, 10]), fixed_color(RED)])
        return panel

    # Rows 5 and 6 (Loki) ---------------------------------------------------------------------------

    def _details(self) -> table.Panel:
        expr = f"{stream(self.m.stream)} | {var('objet', 'objet')} | json {DETAIL_JSON}"
        columns = {"source": "Source", "objet": "Objet", "etat": "État"} | {
            label: title for label, (title, _) in DETAIL_FIELDS.items()
        }
        return self._table(
            "Exécutions par connecteur",
            f"Les {DETAIL_LINES} exécutions les plus récentes (logs Loki), filtrables par colonne.",
            logs(self.loki_ds, expr, max_lines=DETAIL_LINES),
            columns,
            {title: unit for title, unit in DETAIL_FIELDS.values() if unit is not None},
            height=10,
        )

    def _errors(self) -> table.Panel:
        expr = (
            f"{stream((*self.m.stream, eq('etat', 'FAILED')))} | {var('objet', 'objet')}"
            f' | json fin="fin", {LIGNES_JSON}, description="description"'
        )
        return self._table(
            f"Les {LAST_ERRORS} derniers échecs",
            f"Les {LAST_ERRORS} exécutions FAILED les plus récentes avec leur message d'erreur et les "
            "lignes écrites (vide : non déclarées).",
            logs(self.loki_ds, expr, max_lines=LAST_ERRORS),
            {
                "fin": "Fin",
                "source": "Source",
                "objet": "Objet",
                "lignes": "Lignes",
                "description": "Description",
            },
            {"Lignes": "none"},
            height=8,
        )

    # Per-objet rows (per-source dashboards) --------------------------------------------------------

    def objet_row(self, objet: str) -> Row:
        t = self.t
        only = (*self.m.source, eq("objet", objet))
        runs = (*only, *self.m.run_extra)

        def p(metric: str, q: int) -> str:
            return selector(rec.quantile_record(metric, q, t.quantile_window, per_objet=True), only)

        panels = [
            self._runs_timeline(f"Exécutions — {objet}", runs, width=6),
            self._series(
                f"Durée p50/p95/p99 — {objet}",
                f"Centiles de la durée sur {duree(t.quantile_window)} glissante.",
                [prom(self.prom_ds, p(rec.DURATION, q), f"p{q}") for q in rec.DURATION_QUANTILES],
                unit="s",
                thresholds=rising(self.config.latency.baseline_seconds, self.config.latency.fallback_seconds),
                width=6,
            ),
            self._series(
                f"CPU p95 — {objet}",
                f"Alerte IngestionSurconsommationCPU au-delà de {nombre(t.cpu_p95_seconds)} s.",
                [prom(self.prom_ds, p(rec.CPU, 95), "CPU p95")],
                unit="s",
                thresholds=rising(t.cpu_p95_seconds * 0.8, t.cpu_p95_seconds),
                width=6,
            ),
            self._series(
                f"Mémoire p95 — {objet}",
                f"Alerte IngestionSurconsommationMemoire au-delà de {nombre(t.memory_p95_mb)} MB.",
                [prom(self.prom_ds, p(rec.MEMORY, 95), "Mémoire p95")],
                unit="bytes",
                thresholds=rising(t.memory_bytes * 0.8, t.memory_bytes),
                width=6,
            ),
        ]
        row = Row(f"Objet : {objet}").collapsed(True)
        for panel in panels:
            row = row.with_panel(panel)
        return row

    # Panel kinds -----------------------------------------------------------------------------------

    def _stat(
        self,
        title: str,
        description: str,
        expr: str,
        thresholds: ThresholdsConfig,
        *,
        width: int,
        unit: str = "none",
        decimals: int = 0,
    ) -> stat.Panel:
        return setup(
            _stat_panel().decimals(decimals),
            self.prom_ds,
            title,
            description,
            [prom(self.prom_ds, expr, title, instant=True)],
            width=width,
            height=4,
            unit=unit,
            thresholds=thresholds,
        )

    def _series(
        self,
        title: str,
        description: str,
        targets: list[Target],
        *,
        unit: str,
        width: int,
        thresholds: ThresholdsConfig | None = None,
    ) -> timeseries.Panel:
        panel = timeseries.Panel().legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
        )
        if thresholds is not None:  # alert levels drawn on the graph
            panel = panel.thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
        return setup(
            panel,
            self.prom_ds,
            title,
            description,
            targets,
            width=width,
            height=8,
            unit=unit,
            thresholds=thresholds,
        )

    def _period_runs(self, *, width: int) -> stat.Panel:
        """Runs counted in the displayed range, by état: a replay's runs add up here, not in the last-run
        stats."""
        targets: list[Target] = []
        for etat, legend in (("SUCCESS", PERIOD_SUCCESS), ("FAILED", PERIOD_FAILED)):
            counts = window_count(selector(rec.RUNS, (*self.m.runs, eq("etat", etat))), "$__range")
            targets.append(prom(self.prom_ds, f"sum({counts}) or vector(0)", legend, instant=True))
        return setup(
            _stat_panel(),
            self.prom_ds,
            "Exécutions sur la période",
            "Exécutions reçues sur la période affichée, réussies et en échec : chacune compte, là où "
            "Succès et Échecs ne retiennent que la dernière de chaque objet.",
            targets,
            width=width,
            height=4,
            thresholds=steps(GREEN),
        ).override_by_name(PERIOD_FAILED, [DynamicConfigValue("thresholds", steps(GREEN, (1, RED)).build())])

    def _runs_timeline(self, title: str, runs: tuple[str, ...], *, width: int) -> timeseries.Panel:
        counts = window_count(selector(rec.RUNS, runs), "$__interval")
        panel = self._series(
            title,
            "Exécutions terminées par intervalle, empilées par état.",
            [prom(self.prom_ds, f"sum by (etat) ({counts})", "{{etat}}")],
            unit="short",
            width=width,
        )
        return (
            panel.draw_style(GraphDrawStyle.BARS)
            .fill_opacity(80)
            .stacking(StackingConfig().mode(StackingMode.NORMAL))
            .interval("1m")
            .axis_label("Exécutions")
            .override_by_name("SUCCESS", [display_name("Succès"), fixed_color(GREEN)])
            .override_by_name("FAILED", [display_name("Échec"), fixed_color(RED)])
        )

    def _gauge(
        self, title: str, description: str, expr: str, *, unit: str, thresholds: ThresholdsConfig, width: int
    ) -> bargauge.Panel:
        return setup(
            self._bars(),
            self.prom_ds,
            title,
            description,
            [prom(self.prom_ds, expr, "{{source}}", instant=True)],
            width=width,
            height=8,
            unit=unit,
            thresholds=thresholds,
        )

    @staticmethod
    def _bars() -> bargauge.Panel:
        return (
            bargauge.Panel()
            .orientation(VizOrientation.HORIZONTAL)
            .display_mode(BarGaugeDisplayMode.GRADIENT)
            .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        )

    def _table(
        self,
        title: str,
        description: str,
        target: Target,
        columns: dict[str, str],
        units: dict[str, str],
        *,
        height: int,
    ) -> table.Panel:
        """A Loki log table: `columns` maps extracted labels to titles, `units` numeric titles to units."""
        panel = setup(
            table.Panel().filterable(True).show_header(True),
            self.loki_ds,
            title,
            description,
            [target],
            width=24,
            height=height,
        )
        # Loki returns every label (stream labels, the `objet` metadata, `| json` fields) in one field.
        panel = panel.with_transformation(
            DataTransformerConfig("extractFields", options={"source": "labels", "replace": True})
        ).with_transformation(
            DataTransformerConfig(
                "organize",
                options={
                    "includeByName": dict.fromkeys(columns, True),
                    "indexByName": {label: index for index, label in enumerate(columns)},
                    "renameByName": columns,
                },
            )
        )
        if units:
            conversions = [{"targetField": name, "destinationType": "number"} for name in units]
            panel = panel.with_transformation(
                DataTransformerConfig("convertFieldType", options={"conversions": conversions})
            )
        for name, unit in units.items():
            panel = panel.override_by_name(name, [DynamicConfigValue("unit", unit)])
        return panel


def _line(fill: str, dash: list[int]) -> DynamicConfigValue:
    return DynamicConfigValue("custom.lineStyle", {"fill": fill, "dash": dash})


def _stat_panel() -> stat.Panel:
    return (
        stat.Panel()
        .graph_mode(BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
    )
