"""CRD spec → RenderConfig: every field, the operator defaults, and errors named by their CRD path."""

from __future__ import annotations

from typing import Any

import pytest

from ingestion_observability.render import (
    ConfigError,
    ErrorBurst,
    Latency,
    RenderConfig,
    Slo,
    Thresholds,
    Usual,
    Volume,
    config_from_mapping,
)
from ingestion_observability.render.config import Notifications, SecretRef, Slack
from ingestion_operator.jobrun import Selection, Selector
from ingestion_operator.spec import parse, parse_jobs

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
        "latency": {
            "factor": 3,
            "floorSeconds": 10,
            "baselineSeconds": 45.5,
            "usualWindow": "14d",
            "minHistory": "2d",
        },
        "volume": {"factor": 5},
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
            memory_p95_mb=300.0,
            cpu_p95_seconds=120.0,
        ),
        latency=Latency(factor=3.0, floor_seconds=10.0, baseline_seconds=45.5),
        volume=Volume(factor=5.0),
        usual=Usual(window="14d", min_history="2d"),
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


def test_former_latency_fields_still_work() -> None:
    """latencyBaselineSeconds and latencyFactor (before alerts.latency) fill the same settings."""
    spec = {"source": "S", "alerts": {"latencyBaselineSeconds": 45, "latencyFactor": 3}}
    assert parse(spec, RenderConfig()).config.latency == Latency(factor=3.0, baseline_seconds=45.0)
    both = {"latencyFactor": 3, "latency": {"floorSeconds": 1, "baselineSeconds": 45}}
    assert parse({"source": "S", "alerts": both}, RenderConfig()).config.latency == Latency(
        factor=3.0, floor_seconds=1.0, baseline_seconds=45.0
    )


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
        (
            {"source": "S", "alerts": {"latencyFactor": 3, "latency": {"factor": 3}}},
            "spec.alerts.latencyFactor: replaced by spec.alerts.latency.factor, which is also set",
        ),
        (
            {"source": "S", "alerts": {"latencyBaselineSeconds": 3, "latency": {"baselineSeconds": 3}}},
            "spec.alerts.latencyBaselineSeconds: replaced by spec.alerts.latency.baselineSeconds",
        ),
        (
            {"source": "S", "alerts": {"latency": {"factor": 1}}},
            "spec.alerts.latency.factor: must be greater than 1",
        ),
        (
            {"source": "S", "alerts": {"latencyFactor": 0.5}},
            "spec.alerts.latencyFactor: must be greater than 1",
        ),
        (
            {"source": "S", "alerts": {"latency": {"usualWindow": "7 days"}}},
            "spec.alerts.latency.usualWindow: invalid duration '7 days'",
        ),
        (
            {"source": "S", "alerts": {"latency": {"usualWindow": "12h"}}},
            "spec.alerts.latency.minHistory: must not be longer than window (12h)",
        ),
        (
            {"source": "S", "alerts": {"latency": {"usualWindow": "30m", "minHistory": "10m"}}},
            "spec.alerts.latency.usualWindow: must be longer than thresholds.quantile_window",
        ),
        (
            {"source": "S", "alerts": {"volume": {"factor": 1}}},
            "spec.alerts.volume.factor: must be greater than 1",
        ),
        ({"source": "S", "alerts": {"volume": {"ratio": 2}}}, "spec.alerts.volume.ratio: unknown field"),
        ({"source": "S", "schedule": 5}, "spec.schedule: expected an object, got int"),
        ({"source": "S", "dashboard": {"enabled": "yes"}}, "spec.dashboard: enabled must be a boolean"),
    ],
)
def test_errors_name_the_crd_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(spec, RenderConfig())
    assert str(info.value).startswith(message), str(info.value)


NOTIFICATIONS = {
    "team": "finance",
    "slack": {"channel": "#ingestion-finance", "webhookSecret": {"name": "slack-finance", "key": "url"}},
    "teams": {"webhookSecret": {"name": "teams-finance", "key": "workflow-url"}},
    "email": {"to": ["finance@example.org", "data@example.org"]},
    "webhook": {"urlSecret": {"name": "hooks", "key": "finance.url"}},
    "minSeverity": "critical",
    "groupWait": "1m",
    "groupInterval": "10m",
    "repeatInterval": "12h",
}


def test_every_notifications_field() -> None:
    config = parse({"source": "S", "notifications": NOTIFICATIONS}, RenderConfig()).config
    assert config.notifications == Notifications(
        team="finance",
        slack=Slack(channel="#ingestion-finance", webhook=SecretRef("slack-finance", "url")),
        teams=SecretRef("teams-finance", "workflow-url"),
        email=("finance@example.org", "data@example.org"),
        webhook=SecretRef("hooks", "finance.url"),
        min_severity="critical",
        group_wait="1m",
        group_interval="10m",
        repeat_interval="12h",
    )
    assert config.routing_labels == {"team": "finance"}  # the owner is on every alert


def test_namespace_and_team_are_routing_labels_over_the_defaults() -> None:
    defaults = config_from_mapping(
        {"routing_labels": {"cluster": "prod", "team": "platform", "namespace": "x"}}
    )
    spec = {"source": "S", "routing": {"labels": {"channel": "c"}}, "notifications": {"team": "crm"}}
    config = parse(spec, defaults, "sales").config
    assert config.routing_labels == {"cluster": "prod", "team": "crm", "namespace": "sales", "channel": "c"}
    assert parse({"source": "S"}, RenderConfig()).config.routing_labels == {}  # offline, no namespace
    assert parse({"source": "S"}, RenderConfig(), "sales").config.routing_labels == {"namespace": "sales"}


def test_receivers_are_the_sources_own_and_timings_default() -> None:
    """The operator's defaults may set timings and the severity; receivers and owner never come from them
    (a default receiver is the chart's global route)."""
    defaults = config_from_mapping(
        {
            "notifications": {
                "team": "platform",
                "email": ["ops@example.org"],
                "teams": {"name": "t", "key": "k"},
                "repeat_interval": "1h",
                "min_severity": "critical",
            }
        }
    )
    notifications = parse({"source": "S"}, defaults).config.notifications
    # no receiver nor team from the defaults: the equality says so (their defaults are None and ())
    assert notifications == Notifications(repeat_interval="1h", min_severity="critical")
    email = parse({"source": "S", "notifications": {"email": {"to": ["a@b.c"]}}}, defaults)
    assert email.config.notifications.email == ("a@b.c",)
    assert email.config.notifications.repeat_interval == "1h"


def test_team_may_repeat_routing_labels_team() -> None:
    spec = {"source": "S", "routing": {"labels": {"team": "crm"}}, "notifications": {"team": "crm"}}
    assert parse(spec, RenderConfig()).config.routing_labels == {"team": "crm"}


@pytest.mark.parametrize(
    ("notifications", "message"),
    [
        ({"team": "  "}, "spec.notifications.team: must not be empty"),
        ({"team": "{{ $labels.x }}"}, "spec.notifications.team: must not contain '{{'"),
        ({"team": 5}, "spec.notifications.team: expected a string, got int 5"),
        ({"slack": {"channel": "#c"}}, "spec.notifications.slack: missing webhookSecret"),
        (
            {"slack": {"channel": "#c", "webhookSecret": {"name": "s"}}},
            "spec.notifications.slack.webhookSecret: missing key",
        ),
        (
            {"slack": {"channel": "#c", "webhookSecret": {"name": "Bad_Name", "key": "url"}}},
            "spec.notifications.slack.webhookSecret.name: invalid Secret name 'Bad_Name'",
        ),
        (
            {"slack": {"channel": "{{ x }}", "webhookSecret": {"name": "s", "key": "url"}}},
            "spec.notifications.slack.channel: must not contain '{{'",
        ),
        (
            {"teams": {"webhookSecret": {"name": "t", "key": "a b"}}},
            "spec.notifications.teams.webhookSecret.key: invalid Secret key 'a b'",
        ),
        ({"teams": {}}, "spec.notifications.teams: missing webhookSecret"),
        ({"email": {"to": ["ops"]}}, "spec.notifications.email.to: invalid address 'ops'"),
        ({"email": {"to": "a@b.c"}}, "spec.notifications.email.to: expected a list"),
        ({"email": {"to": [1]}}, "spec.notifications.email.to[0]: expected a string"),
        ({"email": {}}, "spec.notifications.email: missing to"),
        ({"webhook": {"urlSecret": {"key": "url"}}}, "spec.notifications.webhook.urlSecret: missing name"),
        ({"minSeverity": "page"}, "spec.notifications.minSeverity: expected one of info, warning, critical"),
        ({"groupWait": "soon"}, "spec.notifications.groupWait: invalid duration 'soon'"),
        ({"repeatInterval": "0h"}, "spec.notifications.repeatInterval: duration '0h' must be positive"),
        ({"pager": {}}, "spec.notifications.pager: unknown field"),
        ({"slack": {"channel": "#c", "webhook": "u"}}, "spec.notifications.slack.webhook: unknown field"),
        (
            {"teams": {"webhookSecret": {"name": "t", "key": "k", "optional": True}}},
            "spec.notifications.teams.webhookSecret.optional: unknown field",
        ),
    ],
)
def test_notifications_errors_name_the_crd_field(notifications: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"source": "S", "notifications": notifications}, RenderConfig(), "ns")
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"source": "S", "routing": {"labels": {"namespace": "other"}}},
            "spec.routing.labels: 'namespace' is reserved (the operator sets it to the IngestionSource's "
            "namespace, which the AlertmanagerConfig's route matches)",
        ),
        (
            {"source": "S", "routing": {"labels": {"team": "a"}}, "notifications": {"team": "b"}},
            "spec.notifications.team: 'b' differs from spec.routing.labels.team 'a'",
        ),
        (
            {"source": "S", "routing": {"labels": {"team": 7}}},
            "spec.routing.labels.team: expected a string",  # routing.labels' own team, not notifications'
        ),
    ],
)
def test_routing_labels_the_operator_owns(spec: dict[str, Any], message: str) -> None:
    for namespace in ("ns", None):  # offline too: the same spec is valid everywhere or nowhere
        with pytest.raises(ConfigError) as info:
            parse(spec, RenderConfig(), namespace)
        assert str(info.value).startswith(message), str(info.value)


# --- spec.jobs ----------------------------------------------------------------------------------------------


def test_parse_returns_the_jobs_selection_with_the_source() -> None:
    jobs = {
        "selector": {
            "matchLabels": {"app": "ingest"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["raw", "gold"]},
                {"key": "skip", "operator": "DoesNotExist"},
            ],
        },
        "objetLabel": "ingestion/objet",
        "silencePeriods": 3,
    }
    parsed = parse({"source": "Efficy", "jobs": jobs}, RenderConfig(), "ns")
    assert parsed.jobs == Selection(
        "Efficy",
        Selector({"app": "ingest"}, (("tier", "In", ("raw", "gold")), ("skip", "DoesNotExist", ()))),
        "ingestion/objet",
        3,
    )
    assert parse({"source": "Efficy"}, RenderConfig()).jobs is None


def test_parse_jobs_defaults() -> None:
    assert parse_jobs({"jobs": {"selector": {"matchLabels": {"a": "b"}}}}, "S") == Selection(
        "S", Selector({"a": "b"}), None, 2
    )
    assert parse_jobs({}, "S") is None


SELECT = {"matchLabels": {"app": "ingest"}}


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ({}, "spec.jobs.selector: required (a label selector)"),
        ({"selector": {}}, "spec.jobs.selector: must have matchLabels or matchExpressions"),
        ({"selector": {"matchLabels": {}, "matchExpressions": []}}, "spec.jobs.selector: must have"),
        (
            {"selector": {"matchLabels": {"app": 1}}},
            "spec.jobs.selector.matchLabels: expected a map of strings",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["1"]}]}},
            "spec.jobs.selector.matchExpressions[0]: needs a key and an operator among In, NotIn, Exists, "
            "DoesNotExist",
        ),
        (
            {"selector": {"matchExpressions": [{"operator": "Exists"}]}},
            "spec.jobs.selector.matchExpressions[0]: needs a key",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]}},
            "spec.jobs.selector.matchExpressions[0]: Exists takes no values",
        ),
        (
            {"selector": {**SELECT, "matchExpressions": [{"key": "k", "operator": "In"}]}},
            "spec.jobs.selector.matchExpressions[0]: In needs values",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "k", "operator": "NotIn", "values": []}]}},
            "spec.jobs.selector.matchExpressions[0]: NotIn needs values",
        ),
        (
            {"selector": {"matchExpressions": ["k in (a)"]}},
            "spec.jobs.selector.matchExpressions[0]: expected an object with key, operator and a list of "
            "values",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "k", "operator": "In", "values": "ab"}]}},
            "spec.jobs.selector.matchExpressions[0]: expected an object",
        ),
        (
            {"selector": SELECT, "silencePeriods": 0},
            "spec.jobs.silencePeriods: expected an integer from 1 to 100",
        ),
        ({"selector": SELECT, "silencePeriods": 101}, "spec.jobs.silencePeriods: expected an integer from 1"),
        (
            {"selector": SELECT, "silencePeriods": True},
            "spec.jobs.silencePeriods: expected an integer from 1",
        ),
        ({"selector": SELECT, "silencePeriods": 2.0}, "spec.jobs.silencePeriods: expected an integer from 1"),
        ({"selector": SELECT, "objetLabel": 7}, "spec.jobs.objetLabel: expected a label key"),
        ({"selector": SELECT, "objetLabel": ""}, "spec.jobs.objetLabel: expected a label key"),
    ],
)
def test_parse_jobs_errors(jobs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_jobs({"jobs": jobs}, "S")
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ("yes", "spec.jobs: expected an object, got str"),
        ({"selector": SELECT, "objet": "x"}, "spec.jobs.objet: unknown field"),
        ({"selector": {}}, "spec.jobs.selector: must have matchLabels or matchExpressions"),
    ],
)
def test_parse_names_jobs_errors(jobs: Any, message: str) -> None:
    """Through `parse` (offline rendering too): the same errors, a typo caught."""
    with pytest.raises(ConfigError) as info:
        parse({"source": "S", "jobs": jobs}, RenderConfig(), "ns")
    assert str(info.value).startswith(message), str(info.value)
