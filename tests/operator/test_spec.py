"""CRD spec → RenderConfig: every field, the operator defaults, and errors named by their CRD path."""

from __future__ import annotations

from typing import Any

import pytest

from ingestion_observability.render import (
    ConfigError,
    ErrorBurst,
    RenderConfig,
    Slo,
    Thresholds,
    config_from_mapping,
)
from ingestion_operator.spec import parse

FULL = {
    "source": "Efficy",
    "entreprise": "akonovia",
    "zone": "1-Raw",
    "objets": ["Contact", "Company"],
    "schedule": {"expectedEveryMinutes": 60, "silenceAfterMinutes": 90},
    "alerts": {
        "failureRatePercent": 5,
        "failureRateWindow": "1h",
        "minRuns": 3,
        "latencyBaselineSeconds": 45.5,
        "latencyFactor": 3,
        "memoryMaxMB": 300,
        "cpuMaxSeconds": 120,
        "errorBurst": {"count": 2, "window": "30m"},
    },
    "slo": {"successRatio": 0.99, "window": "30d"},
    "routing": {"labels": {"team": "crm"}},
    "dashboard": {"enabled": True, "folder": "CRM"},
}


def test_every_field() -> None:
    parsed = parse(FULL, RenderConfig())
    assert parsed.config == RenderConfig(
        source="Efficy",
        objets=("Contact", "Company"),
        entreprise="akonovia",
        zone="1-Raw",
        thresholds=Thresholds(
            silence="90m",
            failure_ratio=0.05,
            failure_ratio_window="1h",
            min_runs=3,
            latency_baseline_seconds=45.5,
            latency_factor=3.0,
            memory_p95_mb=300.0,
            cpu_p95_seconds=120.0,
        ),
        error_burst=ErrorBurst(count=2, window="30m"),
        slo=Slo(success_ratio=0.99, window="30d"),
        routing_labels={"team": "crm"},
    )
    assert (parsed.dashboard, parsed.folder) == (True, "CRM")


def test_bare_spec_is_the_library_defaults() -> None:
    parsed = parse({"source": "PowerBI"}, RenderConfig())
    assert parsed.config == RenderConfig(source="PowerBI")
    assert (parsed.dashboard, parsed.folder) == (True, None)


def test_operator_defaults_fill_the_rest_and_routing_labels_add_up() -> None:
    defaults = config_from_mapping(
        {
            "thresholds": {"min_runs": 10, "quantile_window": "2h"},
            "slo": {"success_ratio": 0.95},
            "routing_labels": {"cluster": "prod", "team": "platform"},
            "runbook_base_url": "https://wiki.example.org/runbooks",
        }
    )
    config = parse(
        {"source": "S", "routing": {"labels": {"team": "crm"}}, "slo": {"successRatio": 0.9}}, defaults
    ).config
    assert config.thresholds.min_runs == 10 and config.thresholds.quantile_window == "2h"
    assert config.routing_labels == {"cluster": "prod", "team": "crm"}
    assert config.slo == Slo(success_ratio=0.9, window="28d")
    assert config.runbook_base_url == "https://wiki.example.org/runbooks"
    assert parse({"source": "S"}, defaults).config.slo == Slo(success_ratio=0.95)


@pytest.mark.parametrize(
    ("minutes", "lookback"), [(75, "1d"), (1439, "1d"), (1440, "2d"), (1560, "52h"), (1561, "3122m")]
)
def test_silence_lookback_covers_long_silences(minutes: int, lookback: str) -> None:
    thresholds = parse(
        {"source": "S", "schedule": {"silenceAfterMinutes": minutes}}, RenderConfig()
    ).config.thresholds
    assert (thresholds.silence, thresholds.silence_lookback) == (f"{minutes}m", lookback)


def test_dashboard_disabled() -> None:
    assert parse({"source": "S", "dashboard": {"enabled": False}}, RenderConfig()).dashboard is False


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.source: required"),
        ({"source": "   "}, "spec.source: must not be empty"),
        (
            {"source": "S", "alerts": {"failureRateWindow": "0m"}},
            "spec.alerts.failureRateWindow: duration '0m' must be positive",
        ),
        (
            {"source": "S", "alerts": {"errorBurst": {"window": "soon"}}},
            "spec.alerts.errorBurst.window: invalid duration 'soon'",
        ),
        (
            {"source": "S", "routing": {"labels": {"severity": "x"}}},
            "spec.routing.labels: 'severity' is reserved",
        ),
        (
            {"source": "S", "routing": {"labels": {"team": "{{ $value }}"}}},
            "spec.routing.labels.team: must not contain '{{'",
        ),
        (
            {"source": "S", "schedule": {"silenceAfterMinutes": "75"}},
            "spec.schedule.silenceAfterMinutes: expected an integer",
        ),
        (
            {"source": "S", "alerts": {"failureRatePercent": "2"}},
            "spec.alerts.failureRatePercent: expected a number",
        ),
        ({"source": "S", "alerts": {"minRuns": 2.5}}, "spec.alerts.minRuns: expected an integer"),
        ({"source": "S", "slo": {"window": "28d"}}, "spec.slo: missing key(s) success_ratio"),
        ({"source": "S", "objets": ["a", "a"]}, "spec.objets: duplicate entries"),
        ({"source": "S", "alerts": {"latencyFactr": 2}}, "spec.alerts.latencyFactr: unknown field"),
        ({"source": "S", "schedule": 5}, "spec.schedule: expected an object, got int"),
        ({"source": "S", "dashboard": {"enabled": "yes"}}, "spec.dashboard: enabled must be a boolean"),
    ],
)
def test_errors_name_the_crd_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(spec, RenderConfig())
    assert str(info.value).startswith(message), str(info.value)
