"""Render Prometheus rule groups and Grafana dashboards for the ingestion metrics from one typed config.

Pure functions (no I/O but `load_config` and the CLI), shared by the CLI, the Helm chart generator and
the operator.
"""

from ingestion_observability.render.config import (
    ConfigError,
    Datasources,
    ErrorBurst,
    Latency,
    ObjetSchedule,
    RenderConfig,
    Slo,
    Thresholds,
    Usual,
    Volume,
    config_from_mapping,
    load_config,
)
from ingestion_observability.render.dashboard import dashboard_uid, render_dashboard
from ingestion_observability.render.promql import quote
from ingestion_observability.render.rules import render_rules

__all__ = [
    "ConfigError",
    "Datasources",
    "ErrorBurst",
    "Latency",
    "ObjetSchedule",
    "RenderConfig",
    "Slo",
    "Thresholds",
    "Usual",
    "Volume",
    "config_from_mapping",
    "dashboard_uid",
    "load_config",
    "quote",
    "render_dashboard",
    "render_rules",
]
