"""An `IngestionSource` spec (camelCase, as the CRD defines it) → the render library's `RenderConfig`.

`FIELDS` is the whole mapping: each CRD field, the render config path it fills and how its value is
converted. Fields absent from the spec keep the operator's defaults (the render config read from
`--defaults`, else the library's defaults, which the CRD schema's defaults equal); routing labels add
to the defaults' routing labels. Validation is the library's: its `ConfigError` paths are translated
back to CRD paths for the status message.

Two routing labels come from elsewhere than `routing.labels`: `team` from `notifications.team` (every alert
of the source names its owner) and `namespace`, the IngestionSource's own namespace (see `parse`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ingestion_observability.render import ConfigError, RenderConfig, config_from_mapping
from ingestion_observability.render.config import duration_seconds
from ingestion_operator.jobrun import Selection, Selector


def _minutes(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"expected an integer, got {value!r}")
    return f"{value}m"


def _percent(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"expected a number, got {value!r}")
    return value / 100


def _same(value: object) -> object:
    return value


@dataclass(frozen=True)
class Field:
    spec: str  # dotted path under `spec`
    render: str  # dotted path in the render config mapping (config_from_mapping's keys)
    convert: Callable[[object], object] = _same


FIELDS = (
    Field("source", "source"),
    Field("entreprise", "entreprise"),
    Field("zone", "zone"),
    Field("objets", "objets"),
    Field("schedule.silenceAfterMinutes", "thresholds.silence", _minutes),
    Field("alerts.failureRatePercent", "thresholds.failure_ratio", _percent),
    Field("alerts.failureRateWindow", "thresholds.failure_ratio_window"),
    Field("alerts.minRuns", "thresholds.min_runs"),
    Field("alerts.latency.factor", "latency.factor"),
    Field("alerts.latency.floorSeconds", "latency.floor_seconds"),
    Field("alerts.latency.baselineSeconds", "latency.baseline_seconds"),
    # The learned baselines' window and history guard serve the volume alerts too.
    Field("alerts.latency.usualWindow", "usual.window"),
    Field("alerts.latency.minHistory", "usual.min_history"),
    Field("alerts.volume.factor", "volume.factor"),
    # Former names, kept (see ALIASES).
    Field("alerts.latencyBaselineSeconds", "latency.baseline_seconds"),
    Field("alerts.latencyFactor", "latency.factor"),
    Field("alerts.memoryMaxMB", "thresholds.memory_p95_mb"),
    Field("alerts.cpuMaxSeconds", "thresholds.cpu_p95_seconds"),
    Field("alerts.errorBurst.count", "error_burst.count"),
    Field("alerts.errorBurst.window", "error_burst.window"),
    Field("slo.successRatio", "slo.success_ratio"),
    Field("slo.window", "slo.window"),
    Field("routing.labels", "routing_labels"),
    # The owner is both the receivers' business and a label of every alert (the default route can use it).
    Field("notifications.team", "notifications.team"),
    Field("notifications.team", "routing_labels.team"),
    Field("notifications.slack.channel", "notifications.slack.channel"),
    Field("notifications.slack.webhookSecret.name", "notifications.slack.webhook.name"),
    Field("notifications.slack.webhookSecret.key", "notifications.slack.webhook.key"),
    Field("notifications.teams.webhookSecret.name", "notifications.teams.name"),
    Field("notifications.teams.webhookSecret.key", "notifications.teams.key"),
    Field("notifications.email.to", "notifications.email"),
    Field("notifications.webhook.urlSecret.name", "notifications.webhook.name"),
    Field("notifications.webhook.urlSecret.key", "notifications.webhook.key"),
    Field("notifications.minSeverity", "notifications.min_severity"),
    Field("notifications.groupWait", "notifications.group_wait"),
    Field("notifications.groupInterval", "notifications.group_interval"),
    Field("notifications.repeatInterval", "notifications.repeat_interval"),
)
# Spec fields that are not render config: the schema checks expectedEveryMinutes against the silence
# threshold; the dashboard ones decide the ConfigMap.
OTHER_FIELDS = (
    "schedule.expectedEveryMinutes",
    "dashboard.enabled",
    "dashboard.folder",
    "jobs.selector.matchLabels",
    "jobs.selector.matchExpressions",
    "jobs.objetLabel",
    "jobs.silencePeriods",
)
# Objects whose fields are all required once the object is given (as the CRD's `required` says): checked
# here for specs rendered offline, in CRD terms (the library would name its own keys).
REQUIRED = {
    "notifications.slack": ("channel", "webhookSecret"),
    "notifications.slack.webhookSecret": ("name", "key"),
    "notifications.teams": ("webhookSecret",),
    "notifications.teams.webhookSecret": ("name", "key"),
    "notifications.email": ("to",),
    "notifications.webhook": ("urlSecret",),
    "notifications.webhook.urlSecret": ("name", "key"),
}
# Former field names that still work: each fills the same render config as its successor, and a spec may
# not give both (the CRD's CEL rules say the same).
ALIASES = {
    "alerts.latencyFactor": "alerts.latency.factor",
    "alerts.latencyBaselineSeconds": "alerts.latency.baselineSeconds",
}
# Who is notified is each source's own: the operator's defaults give only the severity and timings.
_SOURCE_ONLY = {"team": None, "slack": None, "teams": None, "email": (), "webhook": None}
# Routing labels the operator sets itself.
NAMESPACE_LABEL = "namespace"
# Render config sections, for error messages about a whole section.
_SECTIONS = {
    "slo": "slo",
    "error_burst": "alerts.errorBurst",
    # errors across fields (min_history against window) name their field, given or not
    "usual.window": "alerts.latency.usualWindow",
    "usual.min_history": "alerts.latency.minHistory",
}
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class SourceSpec:
    config: RenderConfig
    dashboard: bool
    folder: str | None  # None: the operator's default folder
    jobs: Selection | None = None  # None: no Jobs observed


def parse(spec: Mapping[str, Any], defaults: RenderConfig, namespace: str | None = None) -> SourceSpec:
    """The render config and dashboard options of a spec; ConfigError (with a `spec.` path) if invalid.

    `namespace`, the IngestionSource's, becomes the routing label `namespace` of every alert:
    prometheus-operator confines the route of an AlertmanagerConfig to alerts whose `namespace` label is
    the AlertmanagerConfig's namespace (the source's), while the series the alerts come from carry the
    consumer's namespace if any (the release's, or none once aggregated); a rule's label replaces it.
    Without it a source's notifications would match nothing unless the release ran in the source's
    namespace. None (offline rendering of a file without a namespace): no label.
    """
    _reject_unknown(spec, "")
    _check_present(spec)
    data = dataclasses.asdict(defaults)
    data["notifications"] |= _SOURCE_ONLY
    for field in FIELDS:
        value = _get(spec, field.spec)
        if value is None:
            continue
        try:
            converted = field.convert(value)
        except ConfigError as exc:
            raise ConfigError(f"spec.{field.spec}: {exc}") from None
        _set(data, field.render, converted)
    if namespace is not None:  # over a default `namespace` label: the route matches only this one
        data["routing_labels"] = {**data["routing_labels"], NAMESPACE_LABEL: namespace}
    _cover_silence(data["thresholds"])
    try:
        config = config_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(_crd_path(str(exc), spec)) from None
    enabled = _get(spec, "dashboard.enabled")
    folder = _get(spec, "dashboard.folder")
    if not isinstance(enabled, bool | None) or not isinstance(folder, str | None):
        raise ConfigError("spec.dashboard: enabled must be a boolean and folder a string")
    jobs = parse_jobs(spec, config.source or "")
    return SourceSpec(config=config, dashboard=enabled is not False, folder=folder, jobs=jobs)


_OPERATORS = {"In": True, "NotIn": True, "Exists": False, "DoesNotExist": False}  # -> values required


def parse_jobs(spec: Mapping[str, Any], source: str) -> Selection | None:
    """`spec.jobs` (None when absent); ConfigError as the CRD's schema and CEL rules would say it, for
    specs rendered offline."""
    jobs = spec.get("jobs")
    if jobs is None:
        return None
    if not isinstance(jobs, Mapping):
        raise ConfigError("spec.jobs: expected an object")
    selector = jobs.get("selector")
    if not isinstance(selector, Mapping):
        raise ConfigError("spec.jobs.selector: required (a label selector)")
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ConfigError("spec.jobs.selector.matchLabels: expected a map of strings")
    expressions = []
    for i, item in enumerate(selector.get("matchExpressions") or []):
        where = f"spec.jobs.selector.matchExpressions[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("values") or [], list):
            raise ConfigError(f"{where}: expected an object with key, operator and a list of values")
        key, operator, values = item.get("key"), item.get("operator"), item.get("values") or []
        if not isinstance(key, str) or operator not in _OPERATORS:
            raise ConfigError(f"{where}: needs a key and an operator among {', '.join(_OPERATORS)}")
        if _OPERATORS[operator] != bool(values):
            need = "needs values" if _OPERATORS[operator] else "takes no values"
            raise ConfigError(f"{where}: {operator} {need}")
        expressions.append((key, operator, tuple(str(v) for v in values)))
    if not labels and not expressions:  # would select every Job of the namespace
        raise ConfigError("spec.jobs.selector: must have matchLabels or matchExpressions")
    objet_label = jobs.get("objetLabel")
    periods = jobs.get("silencePeriods", 2)
    if objet_label is not None and (not isinstance(objet_label, str) or not objet_label):
        raise ConfigError("spec.jobs.objetLabel: expected a label key")
    if not isinstance(periods, int) or isinstance(periods, bool) or not 1 <= periods <= 100:
        raise ConfigError(f"spec.jobs.silencePeriods: expected an integer from 1 to 100, got {periods!r}")
    return Selection(source, Selector(dict(labels), tuple(expressions)), objet_label, periods)


def _check_present(spec: Mapping[str, Any]) -> None:
    """Required fields, and the routing labels the operator owns."""
    if "source" not in spec:  # without it, the library would render for every source
        raise ConfigError("spec.source: required")
    for former, field in ALIASES.items():
        if _get(spec, former) is not None and _get(spec, field) is not None:
            raise ConfigError(
                f"spec.{former}: replaced by spec.{field}, which is also set; keep only the latter"
            )
    for path, names in REQUIRED.items():
        node = _get(spec, path)
        missing = [name for name in names if isinstance(node, Mapping) and node.get(name) is None]
        if missing:
            raise ConfigError(f"spec.{path}: missing {', '.join(missing)}")
    labels = _get(spec, "routing.labels")
    if not isinstance(labels, Mapping):
        return
    if NAMESPACE_LABEL in labels:  # rejected rather than overridden: a label that vanishes misleads
        raise ConfigError(
            f"spec.routing.labels: {NAMESPACE_LABEL!r} is reserved (the operator sets it to the "
            "IngestionSource's namespace, which the AlertmanagerConfig's route matches)"
        )
    team = _get(spec, "notifications.team")
    if team is not None and labels.get("team", team) != team:
        raise ConfigError(
            f"spec.notifications.team: {team!r} differs from spec.routing.labels.team "
            f"{labels['team']!r}; set the owner once, in notifications.team"
        )


def _cover_silence(thresholds: dict[str, Any]) -> None:
    """Keep remembering a source at least twice its silence threshold: a source that runs daily may set
    silenceAfterMinutes beyond the default lookback (1d), and the alert needs the lookback to be longer."""
    silence = duration_seconds(thresholds["silence"])
    if duration_seconds(thresholds["silence_lookback"]) <= silence:
        lookback = 2 * silence
        unit, seconds = next((unit, seconds) for unit, seconds in _UNITS if lookback % seconds == 0)
        thresholds["silence_lookback"] = f"{lookback // seconds}{unit}"


def _get(spec: Mapping[str, Any], path: str) -> Any:
    node: Any = spec
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _set(data: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        if node.get(key) is None:  # e.g. no SLO in the defaults
            node[key] = {}
        node = node[key]
    current = node.get(last)
    # Mappings add up: the defaults' routing labels (e.g. cluster) plus the source's (e.g. team).
    node[last] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value


_KNOWN = tuple(field.spec for field in FIELDS) + OTHER_FIELDS


def _reject_unknown(node: Mapping[str, Any], prefix: str) -> None:
    """The API server prunes unknown fields; a spec rendered offline (GitOps) must not hide a typo."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if path in _KNOWN:
            continue
        if not any(known.startswith(f"{path}.") for known in _KNOWN):
            raise ConfigError(f"spec.{path}: unknown field")
        if not isinstance(value, Mapping):
            raise ConfigError(f"spec.{path}: expected an object, got {type(value).__name__}")
        _reject_unknown(value, f"{path}.")


def _crd_path(message: str, spec: Mapping[str, Any]) -> str:
    """`thresholds.failure_ratio: ...` → `spec.alerts.failureRatePercent: ...` (longest known prefix).

    Only the fields the spec sets are candidates: `routing_labels.team` is `notifications.team` when that
    is set, a key of `routing.labels` otherwise."""
    path, sep, rest = message.partition(":")
    given = [field for field in FIELDS if _get(spec, field.spec) is not None]
    prefixes = {field.render: field.spec for field in given} | _SECTIONS
    for render in sorted(prefixes, key=len, reverse=True):
        if path == render or path.startswith(f"{render}.") or path.startswith(f"{render}["):
            return f"spec.{prefixes[render]}{path[len(render) :]}{sep}{rest}"
    return f"spec: {message}"
