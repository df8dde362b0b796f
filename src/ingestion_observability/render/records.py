"""Recording rules: the series alerts and dashboards share, and how to select them.

Names follow `level:metric:operation<window>`; the window is part of the name, so a recording rule
never changes meaning with the configuration. A per-source rendering records under the same names with
every selector narrowed to `source="<name>"`: 200 per-source groups produce 200 disjoint sets of
series, and a source covered by both the global group and its own group gets the same values twice
(same name, same labels, same window, same result), never two different ones. Thresholds never enter a
recording rule; `entreprise`/`zone` filters do, so they also become grouping labels of the run records
(`{source, entreprise}` series cannot collide with the unfiltered `{source}` ones).

The usual values (`usual_recording_rules`) are learned per objet: the median, over `usual.window` (7 d),
of its p95 duration and of its successful runs' rows, and the age of those series within the same window
(the history guard). They read days of samples: they have a rule group of their own, evaluated every
`usual.interval` (5 min), and what reads them takes their last value over two intervals (`usual`), since a
sample recorded every 5 min is not always within the 5 min an instant lookup looks back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingestion_observability import catalog
from ingestion_observability.render.config import RenderConfig, duration_seconds
from ingestion_observability.render.promql import eq, number, selector, window_count, window_increase

# What PromQL selects, as the catalog declares it (histograms: the base name of _bucket, _sum, _count).
RUNS = catalog.RUNS.sample
FAILURES = catalog.FAILURES.sample
DURATION = catalog.DURATION.sample
CPU = catalog.CPU.sample
MEMORY = catalog.MEMORY.sample
RECOVERY = catalog.RECOVERY.sample
# Per (source, objet): every per-source use takes `max by (source)` over the objets.
LAST_RUN = catalog.LAST_RUN.sample
LAST_STATUS = catalog.LAST_STATUS.sample
LAST_FAILURE = catalog.LAST_FAILURE.sample
LAST_RUN_ROWS = catalog.LAST_RUN_ROWS.sample  # rows of the newest run that reported them
IN_PROGRESS = catalog.IN_PROGRESS.sample
OLDEST_OPEN = catalog.OLDEST_OPEN.sample
KAFKA_LAG = catalog.KAFKA_LAG.sample
KAFKA_LAG_RECORD = f"{KAFKA_LAG}_sum"
RUN_FILTERS = ("entreprise", "zone")
THROUGHPUT_WINDOW = "5m"  # "runs / 5 min"
HOURLY = "1h"
LONG_WINDOW = 6 * 3600  # longer windows are summed from the hourly records
DURATION_QUANTILES = (50, 95, 99)
# Multi-window multi-burn-rate pairs (Google SRE workbook, as Sloth and Pyrra): (long, short, factor).
PAGE_WINDOWS = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
TICKET_WINDOWS = (("1d", "2h", 3.0), ("3d", "6h", 1.0))
# Resolution of the usual values' subqueries: a median over 7 d of a series sampled every 5 min reads
# 2016 points per objet instead of the 20160 of a 30 s series, and a p95 over an hour barely moves in
# 5 min. Fixed, not the group's interval: a record's value must not depend on who evaluates it.
USUAL_RESOLUTION = "5m"
# The newest run's rows while that run succeeded: what the usual rows are learned from.
ROWS_SUCCEEDED_RECORD = f"source_objet:{LAST_RUN_ROWS}:succeeded"


@dataclass(frozen=True)
class Scope:
    """Matchers narrowing the queried series.

    `source` applies to every ingestion metric; `runs` to ingestion_runs_total (and the Loki streams),
    the only ones carrying entreprise and zone; `run_records` selects exactly the run records of this
    configuration: `entreprise=""` keeps out the `{source, entreprise}` series of a filtered rendering.
    """

    source: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    run_records: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: RenderConfig) -> Scope:
        source = () if config.source is None else (eq("source", config.source),)
        return cls(source, source + filter_matchers(config), source + record_matchers(config))


def filter_matchers(config: RenderConfig) -> tuple[str, ...]:
    """The configured entreprise/zone filters."""
    return tuple(eq(name, value) for name, value in _run_filters(config))


def record_matchers(config: RenderConfig) -> tuple[str, ...]:
    """entreprise/zone exactly as this configuration's run records carry them (absent = `""`)."""
    return tuple(eq(name, getattr(config, name) or "") for name in RUN_FILTERS)


def runs_record(window: str) -> str:
    return f"source:{catalog.RUNS.name}:increase{window}"


def failed_record(window: str) -> str:
    return f"source:{catalog.RUNS.name}_failed:increase{window}"


def ratio_record(window: str) -> str:
    return f"source:ingestion_failure_ratio:ratio{window}"


def quantile_record(metric: str, quantile: int, window: str, *, per_objet: bool = False) -> str:
    level = "source_objet" if per_objet else "source"
    return f"{level}:{metric}:p{quantile}_{window}"


def mttr_record(window: str) -> str:
    return f"source:{RECOVERY}:mean{window}"


def latency_usual_record(config: RenderConfig) -> str:
    """The objet's usual p95 duration: the median of its p95 over the usual window."""
    return f"{_latency_base(config)}_median_{config.usual.window}"


def latency_age_record(config: RenderConfig) -> str:
    """Seconds since the objet's p95 series first had a value, within the usual window (at most that)."""
    return f"{_latency_base(config)}_age_{config.usual.window}"


def rows_usual_record(config: RenderConfig) -> str:
    """The objet's usual rows per successful run: the median of ROWS_SUCCEEDED_RECORD over the usual
    window."""
    return f"source_objet:{LAST_RUN_ROWS}:median_{config.usual.window}"


def rows_age_record(config: RenderConfig) -> str:
    """Seconds since ROWS_SUCCEEDED_RECORD first had a value, within the usual window."""
    return f"source_objet:{LAST_RUN_ROWS}:age_{config.usual.window}"


def _latency_base(config: RenderConfig) -> str:
    return quantile_record(DURATION, 95, config.thresholds.quantile_window, per_objet=True)


def last_rows(matchers: tuple[str, ...]) -> str:
    """Rows of the objet's newest run that reported them, by (source, objet)."""
    return f"max by (source, objet) ({selector(LAST_RUN_ROWS, matchers)})"


def succeeded(matchers: tuple[str, ...]) -> str:
    """The objets whose newest run succeeded, by (source, objet)."""
    return f"max by (source, objet) ({selector(LAST_STATUS, matchers)}) == 1"


def usual(record: str, matchers: tuple[str, ...], config: RenderConfig) -> str:
    """A usual-value record as of now: its last sample within two of its group's intervals."""
    lookback = duration_text(2 * duration_seconds(config.usual.interval))
    return f"last_over_time({selector(record, matchers)}[{lookback}])"


def learned(record: str, age_record: str, matchers: tuple[str, ...], config: RenderConfig) -> str:
    """The usual value of the objets with at least `usual.min_history` of history (the others: none)."""
    history = duration_seconds(config.usual.min_history)
    return (
        f"{usual(record, matchers, config)}"
        f" and on (source, objet) {usual(age_record, matchers, config)} >= {history}"
    )


def latency_threshold(config: RenderConfig, matchers: tuple[str, ...]) -> str:
    """IngestionLatenceDegradee's threshold per (source, objet): factor x the usual p95 once the objet has
    enough history, else factor x the fixed reference; never below the floor."""
    latency = config.latency
    p95 = selector(_latency_base(config), matchers)
    learned_usual = learned(latency_usual_record(config), latency_age_record(config), matchers, config)
    return (
        f"clamp_min(({number(latency.factor)} * ({learned_usual})"
        f" or on (source, objet) 0 * {p95} + {number(latency.fallback_seconds)}),"
        f" {number(latency.floor_seconds)})"
    )


def usual_duration(config: RenderConfig, matchers: tuple[str, ...], known: str) -> str:
    """The usual p95 duration per (source, objet) once the objet has enough history, else the fixed
    reference, for the objets of `known` (by source, objet)."""
    learned_usual = learned(latency_usual_record(config), latency_age_record(config), matchers, config)
    baseline = number(config.latency.baseline_seconds)
    return f"({learned_usual}) or on (source, objet) 0 * {known} + {baseline}"


def usual_recording_rules(config: RenderConfig) -> list[dict[str, str]]:
    """The usual values and their history, per objet (the group `ingestion-usual`, see the module)."""
    scope = Scope.of(config)
    window = f"[{config.usual.window}:{USUAL_RESOLUTION}]"
    p95 = selector(_latency_base(config), scope.source)
    rows = selector(ROWS_SUCCEEDED_RECORD, scope.source)
    # Subqueries of records, not of expressions: each step reads stored samples, nothing is recomputed.
    return [
        _record(latency_usual_record(config), f"quantile_over_time(0.5, {p95}{window})"),
        # The age, not a count of samples: an objet run once a day has a p95 an hour a day, and is known
        # after a day all the same. The subquery, unlike a recording rule reading its own past values,
        # sees through the gaps of such series (hours without a run have no p95).
        _record(latency_age_record(config), f"time() - min_over_time(timestamp({p95}){window})"),
        _record(rows_usual_record(config), f"quantile_over_time(0.5, {rows}{window})"),
        _record(rows_age_record(config), f"time() - min_over_time(timestamp({rows}){window})"),
    ]


def run_labels(config: RenderConfig) -> tuple[str, ...]:
    """Grouping labels of the run-based records."""
    return ("source", *(name for name, _ in _run_filters(config)))


def ratio_windows(config: RenderConfig) -> tuple[str, ...]:
    """Windows with run, failed-run and failure-ratio records, shortest first."""
    windows = {THROUGHPUT_WINDOW, config.thresholds.failure_ratio_window}
    if config.slo is not None:
        windows |= {w for pair in PAGE_WINDOWS + TICKET_WINDOWS for w in pair[:2]} | {config.slo.window}
    if any(_is_long(w) for w in windows):
        windows.add(HOURLY)
    return tuple(sorted(windows, key=lambda w: (duration_seconds(w), w)))


def recording_rules(config: RenderConfig) -> list[dict[str, str]]:
    """The shared records, ordered so that a rule only reads records computed before it."""
    scope = Scope.of(config)
    by = ", ".join(run_labels(config))
    rules: list[dict[str, str]] = []
    for window in ratio_windows(config):
        runs_ref = selector(runs_record(window), scope.run_records)
        if _is_long(window):
            # Raw counters over days would scan every sample of every series at each evaluation; the
            # hourly records, summed hour by hour, give the same count for a fraction of the cost.
            runs_expr = (
                f"sum_over_time({selector(runs_record(HOURLY), scope.run_records)}[{window}:{HOURLY}])"
            )
            failed_expr = (
                f"sum_over_time({selector(failed_record(HOURLY), scope.run_records)}[{window}:{HOURLY}])"
            )
        else:
            runs = window_count(selector(RUNS, scope.runs), window)
            failed = window_count(selector(RUNS, (*scope.runs, eq("etat", "FAILED"))), window)
            runs_expr = f"sum by ({by}) ({runs})"
            # Sources that never failed have no FAILED series: count them at 0, not as missing.
            failed_expr = f"sum by ({by}) ({failed}) or 0 * {runs_ref}"
        rules += [
            _record(runs_record(window), runs_expr),
            _record(failed_record(window), failed_expr),
            _record(
                ratio_record(window),
                f"{selector(failed_record(window), scope.run_records)} / ({runs_ref} > 0)",
            ),
        ]
    window = config.thresholds.quantile_window
    for metric, quantiles in ((DURATION, DURATION_QUANTILES), (CPU, (95,)), (MEMORY, (95,))):
        buckets = window_count(selector(f"{metric}_bucket", scope.source), window)
        for per_objet in (False, True):
            labels = "source, objet, le" if per_objet else "source, le"
            for q in quantiles:
                # `>= 0` drops the NaN of a window without runs.
                expr = f"histogram_quantile({number(q / 100)}, sum by ({labels}) ({buckets})) >= 0"
                rules.append(_record(quantile_record(metric, q, window, per_objet=per_objet), expr))
    # A failed run's rows say nothing of the objet's usual volume: the usual values read this record.
    rows = f"{last_rows(scope.source)} and on (source, objet) ({succeeded(scope.source)})"
    rules.append(_record(ROWS_SUCCEEDED_RECORD, rows))
    mttr = config.thresholds.mttr_window
    total = window_increase(selector(f"{RECOVERY}_sum", scope.source), mttr)
    count = window_count(selector(f"{RECOVERY}_count", scope.source), mttr)
    rules.append(_record(mttr_record(mttr), f"sum by (source) {total} / (sum by (source) ({count}) > 0)"))
    return rules


def consumer_recording_rules(config: RenderConfig) -> list[dict[str, str]]:
    """Consumer-wide records: not per source, rendered only in the global rules."""
    lag = selector(KAFKA_LAG, (eq("job", config.consumer_job),))
    return [_record(KAFKA_LAG_RECORD, f"sum by (topic) ({lag})")]


def duration_text(seconds: int) -> str:
    """Seconds as a Prometheus duration in its largest exact unit: 600 -> `10m`, 5400 -> `90m`."""
    unit, size = next((u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0)
    return f"{seconds // size}{unit}"


def _is_long(window: str) -> bool:
    return duration_seconds(window) > LONG_WINDOW


def _run_filters(config: RenderConfig) -> list[tuple[str, str]]:
    return [(name, value) for name in RUN_FILTERS if (value := getattr(config, name)) is not None]


def _record(name: str, expr: str) -> dict[str, str]:
    return {"record": name, "expr": expr}
