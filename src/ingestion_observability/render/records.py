"""Recording rules: the series alerts and dashboards share, and how to select them.

Names follow `level:metric:operation<window>`; the window is part of the name, so a recording rule
never changes meaning with the configuration. A per-source rendering records under the same names with
every selector narrowed to `source="<name>"`: 200 per-source groups produce 200 disjoint sets of
series, and a source covered by both the global group and its own group gets the same values twice
(same name, same labels, same window, same result), never two different ones. Thresholds never enter a
recording rule; `entreprise`/`zone` filters do, so they also become grouping labels of the run records
(`{source, entreprise}` series cannot collide with the unfiltered `{source}` ones).
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
    mttr = config.thresholds.mttr_window
    total = window_increase(selector(f"{RECOVERY}_sum", scope.source), mttr)
    count = window_count(selector(f"{RECOVERY}_count", scope.source), mttr)
    rules.append(_record(mttr_record(mttr), f"sum by (source) {total} / (sum by (source) ({count}) > 0)"))
    return rules


def consumer_recording_rules(config: RenderConfig) -> list[dict[str, str]]:
    """Consumer-wide records: not per source, rendered only in the global rules."""
    lag = selector(KAFKA_LAG, (eq("job", config.consumer_job),))
    return [_record(KAFKA_LAG_RECORD, f"sum by (topic) ({lag})")]


def _is_long(window: str) -> bool:
    return duration_seconds(window) > LONG_WINDOW


def _run_filters(config: RenderConfig) -> list[tuple[str, str]]:
    return [(name, value) for name in RUN_FILTERS if (value := getattr(config, name)) is not None]


def _record(name: str, expr: str) -> dict[str, str]:
    return {"record": name, "expr": expr}
