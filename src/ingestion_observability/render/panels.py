"""Small helpers over grafana-foundation-sdk builders: targets, thresholds, common panel settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, loki, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
)

Panel = TypeVar("Panel", stat.Panel, timeseries.Panel, bargauge.Panel, table.Panel)
Target = prometheus.Dataquery | loki.Dataquery

GREEN, ORANGE, RED = "green", "orange", "red"


def prom(ds: DataSourceRef, expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().datasource(ds).expr(expr)
    if legend:
        query = query.legend_format(legend)
    return query.instant() if instant else query.range()


def logs(ds: DataSourceRef, expr: str, *, max_lines: int | None = None) -> loki.Dataquery:
    query = loki.Dataquery().datasource(ds).expr(expr).query_type("range")
    return query if max_lines is None else query.max_lines(max_lines)


def metric_logs(ds: DataSourceRef, expr: str) -> loki.Dataquery:
    """A LogQL metric query evaluated once over the dashboard range."""
    return loki.Dataquery().datasource(ds).expr(expr).query_type("instant").instant(True)


def steps(base: str, *levels: tuple[float, str]) -> ThresholdsConfig:
    """Absolute thresholds: `base` colour below the first level."""
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(None, base), *(Threshold(value, color) for value, color in levels)])
    )


def rising(warn: float, alert: float) -> ThresholdsConfig:
    """Green, orange from `warn`, red from `alert` (the alert threshold)."""
    return steps(GREEN, (warn, ORANGE), (alert, RED))


def fixed_color(color: str) -> DynamicConfigValue:
    return DynamicConfigValue("color", {"mode": "fixed", "fixedColor": color})


def display_name(name: str) -> DynamicConfigValue:
    return DynamicConfigValue("displayName", name)


def setup(
    panel: Panel,
    ds: DataSourceRef,
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    width: int,
    height: int,
    unit: str = "none",
    thresholds: ThresholdsConfig | None = None,
) -> Panel:
    """Settings every panel has: French title and description, datasource, refIds A, B..., size, unit,
    thresholds (plain green where no level is worse than another, e.g. run counts)."""
    panel = panel.title(title).description(description).datasource(ds).span(width).height(height).unit(unit)
    for index, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + index)))
    return panel.thresholds(steps(GREEN) if thresholds is None else thresholds)
