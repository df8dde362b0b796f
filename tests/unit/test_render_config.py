from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ingestion_observability.render.config import (
    ConfigError,
    Latency,
    RenderConfig,
    Slo,
    Thresholds,
    Usual,
    Volume,
    config_from_mapping,
    duration_seconds,
    load_config,
    source_key,
)


def test_defaults_are_the_product_thresholds() -> None:
    t = RenderConfig().thresholds
    assert (t.failure_window, t.failure_ratio, t.failure_ratio_window, t.min_runs) == ("5m", 0.02, "15m", 5)
    assert duration_seconds(t.silence) == 75 * 60
    assert t.memory_bytes == 150 * 1024 * 1024
    assert t.cpu_p95_seconds == 60
    assert t.kafka_lag == 10000
    config = RenderConfig()
    latency = config.latency
    assert (latency.factor, latency.floor_seconds, latency.baseline_seconds) == (2, 5, 30)
    assert latency.fallback_seconds == 60
    assert (config.usual.window, config.usual.min_history, config.usual.interval) == ("7d", "1d", "5m")
    assert config.volume.factor == 10
    assert (config.error_burst.count, config.error_burst.window) == (3, "10m")
    assert (config.datasources.prometheus, config.datasources.loki) == ("prometheus", "loki")
    assert (config.consumer_job, config.loki_job) == ("ingestion-consumer", "ingestion-logs")
    assert config.slo is None and config.source is None


def test_full_mapping() -> None:
    config = config_from_mapping(
        {
            "source": "PowerBI",
            "objets": ["workspaces", "datasets"],
            "entreprise": "akonovia",
            "zone": "1-Raw",
            "thresholds": {"failure_ratio": 0.05, "min_runs": 10, "silence": "2h", "kafka_lag": 500},
            "error_burst": {"count": 5, "window": "30m"},
            "latency": {"factor": 3, "floor_seconds": 2.5},
            "volume": {"factor": 4},
            "usual": {"window": "14d", "min_history": "3d", "interval": "10m"},
            "slo": {"success_ratio": 0.995, "window": "30d"},
            "routing_labels": {"team": "data", "namespace": "ingestion"},
            "datasources": {"prometheus": "prom-main", "loki": "loki-main"},
            "consumer_job": "consumer",
            "loki_job": "logs",
            "runbook_base_url": "https://wiki.internal/runbooks",
        }
    )
    assert config.objets == ("workspaces", "datasets")
    assert config.thresholds.failure_ratio == 0.05 and config.thresholds.kafka_lag == 500.0
    assert config.thresholds.failure_window == "5m"  # unspecified keys keep their default
    assert config.slo == Slo(0.995, "30d")
    assert config.latency == Latency(factor=3.0, floor_seconds=2.5)  # baseline_seconds: its default
    assert config.volume == Volume(4.0) and config.usual == Usual("14d", "3d", "10m")
    assert config.routing_labels == {"team": "data", "namespace": "ingestion"}
    assert config.key == source_key("PowerBI")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sources": "x"}, "config: unknown key(s) sources; expected: source, objets"),
        ({"thresholds": {"failure_rate": 1}}, "thresholds: unknown key(s) failure_rate"),
        ({"thresholds": {"failure_ratio": 2}}, "thresholds.failure_ratio: must be in ]0, 1["),
        ({"thresholds": {"failure_ratio": "2%"}}, "thresholds.failure_ratio: expected a number, got str"),
        ({"thresholds": {"min_runs": True}}, "thresholds.min_runs: expected an integer, got bool"),
        ({"thresholds": {"min_runs": 0}}, "thresholds.min_runs: must be >= 1"),
        ({"thresholds": {"silence": "75 minutes"}}, "thresholds.silence: invalid duration '75 minutes'"),
        ({"thresholds": {"silence": "0m"}}, "thresholds.silence: duration '0m' must be positive"),
        ({"thresholds": {"silence": "2d"}}, "thresholds.silence_lookback: must be longer than silence"),
        ({"thresholds": {"cpu_p95_seconds": -1}}, "thresholds.cpu_p95_seconds: must be a positive number"),
        ({"thresholds": {"kafka_lag": float("nan")}}, "thresholds.kafka_lag: expected a finite number"),
        ({"thresholds": []}, "thresholds: expected a mapping, got list"),
        ({"error_burst": {"count": 0}}, "error_burst.count: must be >= 1"),
        ({"thresholds": {"latency_factor": 2}}, "thresholds: unknown key(s) latency_factor"),  # now latency
        ({"latency": {"factor": 1}}, "latency.factor: must be greater than 1, got 1.0"),
        ({"latency": {"factor": float("inf")}}, "latency.factor: expected a finite number"),
        ({"latency": {"floor_seconds": 0}}, "latency.floor_seconds: must be a positive number"),
        ({"latency": {"baseline_seconds": -30}}, "latency.baseline_seconds: must be a positive number"),
        ({"volume": {"factor": 0.5}}, "volume.factor: must be greater than 1"),
        ({"usual": {"window": "1 week"}}, "usual.window: invalid duration '1 week'"),
        ({"usual": {"min_history": "0d"}}, "usual.min_history: duration '0d' must be positive"),
        ({"usual": {"min_history": "8d"}}, "usual.min_history: must not be longer than window (7d)"),
        (
            {"usual": {"window": "1h", "min_history": "1h"}},
            "usual.window: must be longer than thresholds.quantile",
        ),
        ({"usual": {"interval": "7d"}}, "usual.interval: must be shorter than window (7d)"),
        ({"slo": {"window": "28d"}}, "slo: missing key(s) success_ratio"),
        ({"slo": {"success_ratio": 99}}, "slo.success_ratio: must be in ]0, 1["),
        ({"source": ""}, "source: must not be empty"),
        ({"source": 42}, "source: expected a string, got int 42"),
        ({"objets": "a"}, "objets: expected a list, got str"),
        ({"objets": ["a", "a"]}, "objets: duplicate entries"),
        ({"objets": ["a", 1]}, "objets[1]: expected a string"),
        ({"routing_labels": {"severity": "page"}}, "routing_labels: 'severity' is reserved"),
        ({"routing_labels": {"team-name": "x"}}, "routing_labels: invalid label name 'team-name'"),
        ({"routing_labels": {"team": "{{ $value }}"}}, "routing_labels.team: must not contain"),
        ({"datasources": {"loki": "a b"}}, "datasources.loki: invalid Grafana uid 'a b'"),
        ({"runbook_base_url": "wiki/runbooks"}, "runbook_base_url: expected an http"),
        ("not a mapping", "config: expected a mapping, got str"),
        ({"schedules": [{"objet": "o", "period_seconds": 60}]}, "schedules: only with a source"),
        ({"source": "s", "schedules": {"objet": "o"}}, "schedules: expected a list, got dict"),
        ({"source": "s", "schedules": [{"objet": "o"}]}, "schedules[0]: missing key(s) period_seconds"),
        (
            {"source": "s", "schedules": [{"objet": "o", "period_seconds": 0}]},
            "schedules[0].period_seconds: must be > 0",
        ),
        (
            {"source": "s", "schedules": [{"objet": "o", "period_seconds": True}]},
            "schedules[0].period_seconds: expected an integer, got bool True",
        ),
        (
            {"source": "s", "schedules": [{"objet": "o", "period_seconds": 60, "suspended": "yes"}]},
            "schedules[0].suspended: expected a boolean, got str 'yes'",
        ),
        (
            {"source": "s", "schedules": [{"objet": "o", "period_seconds": 60, "suspended": 1}]},
            "schedules[0].suspended: expected a boolean, got int 1",
        ),
    ],
)
def test_invalid_values_name_their_path(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_mapping(data)


def test_dataclasses_validate_too() -> None:
    with pytest.raises(ConfigError, match="failure_window"):
        Thresholds(failure_window="soon")


def test_load_yaml_json_and_empty(tmp_path: Path) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("source: Efficy\nthresholds:\n  failure_ratio: 0.1\n", encoding="utf-8")
    assert load_config(yaml_file).thresholds.failure_ratio == 0.1
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps({"slo": {"success_ratio": 0.99}}), encoding="utf-8")
    assert load_config(json_file).slo == Slo(0.99)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_config(empty) == RenderConfig()


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("thresholds: [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_config(broken)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("thresholds: {nope: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape("unknown.yaml: thresholds: unknown key(s) nope")):
        load_config(unknown)


def test_durations() -> None:
    assert duration_seconds("75m") == 4500
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("28d") == 28 * 86400
    assert duration_seconds("2w") == 14 * 86400
    for bad in ("", "5", "m", "1.5h", "5m1h", "-5m"):
        with pytest.raises(ConfigError):
            duration_seconds(bad)


def test_source_key_is_stable_short_and_distinct() -> None:
    names = ['a"b\\c', ".*", "x\ny", "Zoho — été", "PowerBI", "powerbi", "POWERBI", "x" * 300]
    keys = [source_key(name) for name in names]
    assert len(set(keys)) == len(keys)  # same slug, different sources: the hash keeps them apart
    assert all(re.fullmatch(r"[a-z0-9-]{1,29}", key) for key in keys)
    assert source_key("PowerBI") == source_key("PowerBI")
    assert source_key("PowerBI").startswith("powerbi-")
    assert len({source_key(f"source-{i}") for i in range(200)}) == 200
