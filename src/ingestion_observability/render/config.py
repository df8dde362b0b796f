"""The render configuration: typed, validated, defaults = the product's alert thresholds.

`config_from_mapping` is what the operator feeds an `IngestionSource` spec into, `load_config` what the
CLI reads (YAML or JSON); both reject unknown keys and bad values with the dotted path of the culprit.
"""

from __future__ import annotations

import hashlib
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS = (604800, 86400, 3600, 60, 1)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_GRAFANA_UID = re.compile(r"[a-zA-Z0-9_-]{1,40}")
# Labels the alert expressions produce or the renderer sets: a routing label must not shadow them.
_RESERVED_LABELS = frozenset({"alertname", "severity", "source", "objet", "job", "topic", "long", "short"})


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message starts with its dotted path."""


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus duration such as `75m` or `1h30m` (units w, d, h, m, s)."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ConfigError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h30m, 28d)")
    seconds = sum(int(n or 0) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True))
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    return seconds


def source_key(source: str) -> str:
    """A short, stable, name-safe key for a source: readable slug plus a hash that keeps it unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:18].strip("-")
    digest = hashlib.sha256(source.encode()).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else digest


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_durations(obj: object, *names: str) -> None:
    for name in names:
        try:
            duration_seconds(getattr(obj, name))
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(math.isfinite(value) and value > 0, f"{name}: must be a positive number, got {value!r}")


def _check_factor(factor: float) -> None:
    _check(math.isfinite(factor) and factor > 1, f"factor: must be greater than 1, got {factor!r}")


def _check_text(name: str, value: str) -> None:
    _check(value.strip() != "", f"{name}: must not be empty")
    _check(not any("\ud800" <= c <= "\udfff" for c in value), f"{name}: contains a lone surrogate")


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds and windows (Prometheus durations)."""

    failure_window: str = "5m"  # IngestionEchecDetecte: any FAILED run in this window
    failure_ratio: float = 0.02  # IngestionTauxEchecEleve
    failure_ratio_window: str = "15m"
    failure_ratio_for: str = "5m"
    min_runs: int = 5  # ratio alerts stay silent below this many runs in their window
    silence: str = "75m"  # IngestionSourceMuette, on event time
    silence_lookback: str = "1d"  # how long a source is remembered once its gauge is gone
    memory_p95_mb: float = 150.0  # MiB, as the event's memory_used_mb
    cpu_p95_seconds: float = 60.0
    quantile_window: str = "1h"  # window of the recorded p50/p95/p99
    performance_for: str = "15m"  # latency, memory and CPU alerts
    mttr_window: str = "1d"
    consumer_down_for: str = "5m"
    kafka_lag: float = 10000.0
    kafka_lag_for: str = "10m"
    stuck_run: str = (
        "6h"  # IngestionExecutionBloquee: a run started (OpenLineage START) this long ago, not ended
    )

    def __post_init__(self) -> None:
        _check_durations(
            self,
            "failure_window",
            "failure_ratio_window",
            "failure_ratio_for",
            "silence",
            "silence_lookback",
            "quantile_window",
            "performance_for",
            "mttr_window",
            "consumer_down_for",
            "kafka_lag_for",
            "stuck_run",
        )
        _check(0 < self.failure_ratio < 1, f"failure_ratio: must be in ]0, 1[, got {self.failure_ratio!r}")
        _check(self.min_runs >= 1, f"min_runs: must be >= 1, got {self.min_runs!r}")
        _check_positive(
            self,
            "memory_p95_mb",
            "cpu_p95_seconds",
            "kafka_lag",
        )
        _check(
            duration_seconds(self.silence_lookback) > duration_seconds(self.silence),
            "silence_lookback: must be longer than silence",
        )

    @property
    def memory_bytes(self) -> float:
        return self.memory_p95_mb * 1024 * 1024


@dataclass(frozen=True)
class Usual:
    """The learned baselines: an objet's usual p95 duration and usual rows per run are the medians of its
    series over `window`, recorded every `interval` (a rule group of their own, see `records`). An objet
    whose series is younger than `min_history` has no usual yet: its latency is held to the fixed
    reference (`Latency`), its volume is not alerted."""

    window: str = "7d"
    min_history: str = "1d"
    interval: str = "5m"  # evaluation interval of the group recording the usual values

    def __post_init__(self) -> None:
        _check_durations(self, "window", "min_history", "interval")
        window = duration_seconds(self.window)
        # the history is measured within `window`: a longer minimum would never be reached
        _check(
            duration_seconds(self.min_history) <= window,
            f"min_history: must not be longer than window ({self.window})",
        )
        _check(
            duration_seconds(self.interval) < window, f"interval: must be shorter than window ({self.window})"
        )


@dataclass(frozen=True)
class Latency:
    """IngestionLatenceDegradee, per objet: its p95 duration (over `thresholds.quantile_window`) above
    `factor` x its usual p95 and above `floor_seconds`; with less history than `usual.min_history`, above
    `factor` x `baseline_seconds` (the fixed reference) instead."""

    factor: float = 2.0
    floor_seconds: float = 5.0  # a p95 below this is never slow, however fast the objet usually is
    baseline_seconds: float = 30.0  # the reference of an objet without a usual value yet

    def __post_init__(self) -> None:
        _check_factor(self.factor)
        _check_positive(self, "floor_seconds", "baseline_seconds")

    @property
    def fallback_seconds(self) -> float:
        """The threshold of an objet without enough history."""
        return self.baseline_seconds * self.factor


@dataclass(frozen=True)
class Volume:
    """IngestionVolumeAnormal: the newest successful run's rows below the usual / `factor` or above the
    usual x `factor` (IngestionExecutionVide: 0 rows where the usual is more)."""

    factor: float = 10.0

    def __post_init__(self) -> None:
        _check_factor(self.factor)


@dataclass(frozen=True)
class ErrorBurst:
    """IngestionBurstErreurs: more than `count` failures of one objet within `window`."""

    count: int = 3
    window: str = "10m"

    def __post_init__(self) -> None:
        _check(self.count >= 1, f"count: must be >= 1, got {self.count!r}")
        _check_durations(self, "window")


@dataclass(frozen=True)
class Slo:
    """Success-ratio objective per source, alerted with multi-window multi-burn-rate rules."""

    success_ratio: float
    window: str = "28d"

    def __post_init__(self) -> None:
        _check(0 < self.success_ratio < 1, f"success_ratio: must be in ]0, 1[, got {self.success_ratio!r}")
        _check_durations(self, "window")


@dataclass(frozen=True)
class Datasources:
    """Grafana datasource uids."""

    prometheus: str = "prometheus"
    loki: str = "loki"

    def __post_init__(self) -> None:
        for name in ("prometheus", "loki"):
            uid = getattr(self, name)
            _check(bool(_GRAFANA_UID.fullmatch(uid)), f"{name}: invalid Grafana uid {uid!r}")


_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")  # a Kubernetes object name (DNS subdomain)
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_EMAIL = re.compile(r"[^@\s,<>\"]+@[^@\s,<>\"]+")
SEVERITIES = ("info", "warning", "critical")  # lowest first


@dataclass(frozen=True)
class SecretRef:
    """A key of a Secret in the source's namespace (a receiver's URL is a credential: never a value)."""

    name: str
    key: str

    def __post_init__(self) -> None:
        _check(
            len(self.name) <= 253 and bool(_SECRET_NAME.fullmatch(self.name)),
            f"name: invalid Secret name {self.name!r}",
        )
        _check(bool(_SECRET_KEY.fullmatch(self.key)), f"key: invalid Secret key {self.key!r}")


@dataclass(frozen=True)
class Slack:
    channel: str  # e.g. #ingestion-finance
    webhook: SecretRef  # the incoming webhook URL

    def __post_init__(self) -> None:
        _check_text("channel", self.channel)
        _check("{{" not in self.channel, "channel: must not contain '{{'")


@dataclass(frozen=True)
class Notifications:
    """Who hears about a source's alerts, and how often (Alertmanager's route and receivers)."""

    team: str | None = None  # the owner: label `team` on every alert of the source
    slack: Slack | None = None
    teams: SecretRef | None = None  # a Microsoft Teams (Workflows) webhook URL
    email: tuple[str, ...] = ()
    webhook: SecretRef | None = None  # any HTTP endpoint taking Alertmanager's webhook JSON
    min_severity: str = "warning"  # the lowest severity notified: info, warning or critical
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"

    def __post_init__(self) -> None:
        if self.team is not None:
            _check_text("team", self.team)
            _check("{{" not in self.team, "team: must not contain '{{'")
        for address in self.email:
            _check(bool(_EMAIL.fullmatch(address)), f"email: invalid address {address!r}")
        _check(
            self.min_severity in SEVERITIES,
            f"min_severity: expected one of {', '.join(SEVERITIES)}, got {self.min_severity!r}",
        )
        _check_durations(self, "group_wait", "group_interval", "repeat_interval")


@dataclass(frozen=True)
class ObjetSchedule:
    """IngestionObjetMuet for an objet run by a CronJob: no run ended for `periods` periods of its schedule
    (`period_seconds`: the longest gap between two runs) plus its usual duration. The CronJob's name,
    schedule, time zone (the one the schedule is read in, a `CRON_TZ=` prefix's included; empty: UTC) and
    suspension are what the description says of it."""

    objet: str
    period_seconds: int
    periods: int = 2
    cronjob: str = ""
    schedule: str = ""
    time_zone: str = ""
    suspended: bool = False  # a forgotten suspension is what the alert is for: it still fires, and says so

    def __post_init__(self) -> None:
        _check_text("objet", self.objet)
        _check(self.period_seconds > 0, f"period_seconds: must be > 0, got {self.period_seconds!r}")
        _check(self.periods >= 1, f"periods: must be >= 1, got {self.periods!r}")
        for name in ("cronjob", "schedule", "time_zone"):
            value = getattr(self, name)
            if value:
                _check_text(name, value)
                _check("{{" not in value, f"{name}: must not contain '{{{{'")


@dataclass(frozen=True)
class RenderConfig:
    """What to render. With `source` set, everything is scoped to that one source (operator use)."""

    source: str | None = None
    objets: tuple[str, ...] = ()  # per-source dashboards get one row per objet
    entreprise: str | None = None  # narrow ingestion_runs_total and the Loki streams (they carry it)
    zone: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    latency: Latency = field(default_factory=Latency)
    volume: Volume = field(default_factory=Volume)
    usual: Usual = field(default_factory=Usual)
    error_burst: ErrorBurst = field(default_factory=ErrorBurst)
    slo: Slo | None = None
    routing_labels: Mapping[str, str] = field(default_factory=dict)  # added to every alert
    datasources: Datasources = field(default_factory=Datasources)
    consumer_job: str = "ingestion-consumer"
    loki_job: str = "ingestion-logs"
    runbook_base_url: str = "https://runbooks.example.com/ingestion"
    grafana_url: str = "http://localhost:3000"  # the notifications' links to dashboards and logs
    notifications: Notifications = field(default_factory=Notifications)
    schedules: tuple[ObjetSchedule, ...] = ()  # the objets run by CronJobs (per-source rendering only)

    def __post_init__(self) -> None:
        for name in ("source", "entreprise", "zone"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)
        for objet in self.objets:
            _check_text("objets", objet)
        _check(len(set(self.objets)) == len(self.objets), "objets: duplicate entries")
        scheduled = [schedule.objet for schedule in self.schedules]
        _check(len(set(scheduled)) == len(scheduled), "schedules: duplicate objets")
        # a CronJob belongs to one source: its alert, to that source's own rules
        _check(not self.schedules or self.source is not None, "schedules: only with a source")
        for name, value in self.routing_labels.items():
            _check(bool(_LABEL_NAME.fullmatch(name)), f"routing_labels: invalid label name {name!r}")
            _check(
                not name.startswith("__") and name not in _RESERVED_LABELS,
                f"routing_labels: {name!r} is reserved",
            )
            # Prometheus expands alert label values as Go templates.
            _check("{{" not in value, f"routing_labels.{name}: must not contain '{{{{'")
        _check(
            duration_seconds(self.usual.window) > duration_seconds(self.thresholds.quantile_window),
            "usual.window: must be longer than thresholds.quantile_window (the usual p95 is a median of "
            "the p95 over that window)",
        )
        _check_text("consumer_job", self.consumer_job)
        _check_text("loki_job", self.loki_job)
        for name in ("runbook_base_url", "grafana_url"):
            url = getattr(self, name)
            _check(
                re.fullmatch(r"https?://[^\s{}\"\\]+", url) is not None,
                f"{name}: expected an http(s) URL without spaces, quotes or braces, got {url!r}",
            )

    @property
    def key(self) -> str | None:
        """Suffix that keeps per-source names (rule groups, dashboard uid) distinct."""
        return None if self.source is None else source_key(self.source)


def config_from_mapping(data: Mapping[str, Any]) -> RenderConfig:
    """Build a config from plain data (parsed YAML/JSON, a CRD spec); unknown keys are errors."""
    config: RenderConfig = _build(RenderConfig, data, "")
    return config


def load_config(path: Path) -> RenderConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        return RenderConfig()
    try:
        return config_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _build(cls: type[Any], data: object, path: str) -> Any:
    where = path.rstrip(".") or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected: {', '.join(known)}")
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    kwargs = {name: _convert(hints[name], value, f"{path}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{path}{exc}") from None


def _convert(hint: Any, value: object, path: str) -> object:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType:  # `X | None`
        return None if value is None else _convert(args[0], value, path)
    if is_dataclass(hint):
        return _build(hint if isinstance(hint, type) else type(hint), value, path + ".")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return tuple(_convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return {_convert(str, k, path): _convert(str, v, f"{path}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    expected = {float: "a number", int: "an integer", str: "a string", bool: "a boolean"}.get(hint, str(hint))
    raise ConfigError(f"{path}: expected {expected}, got {type(value).__name__} {value!r}")
