"""The generated objects: names, labels for kube-prometheus-stack and the Grafana sidecar, content; the
AlertmanagerConfig of a source with receivers, and the routing labels on every alert."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingestion_observability.render import RenderConfig, render_dashboard, render_rules
from ingestion_observability.render.notifications import source_config_spec
from ingestion_operator.children import build
from ingestion_operator.settings import ChildSettings
from ingestion_operator.spec import parse

SETTINGS = ChildSettings()


def test_prometheus_rule() -> None:
    source = parse({"source": "PowerBI", "objets": ["workspaces"]}, RenderConfig())
    rule = build("powerbi", "ingestion", source, SETTINGS).rule
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    meta = rule["metadata"]
    assert (meta["name"], meta["namespace"]) == ("ingestion-powerbi", "ingestion")
    assert meta["labels"] == {
        "app.kubernetes.io/name": "ingestion-observability",
        "app.kubernetes.io/part-of": "ingestion-observability",
        "app.kubernetes.io/component": "alert-rules",
        "app.kubernetes.io/instance": "powerbi",
        "app.kubernetes.io/managed-by": "ingestion-operator",
        "release": "kube-prometheus-stack",
    }
    assert meta["annotations"] == {"observability.ingestion.dev/source": "PowerBI"}
    assert rule["spec"] == {"groups": render_rules(source.config)["groups"]}


def test_dashboard_config_map() -> None:
    source = parse({"source": 'a"b\\c', "objets": ["x", "y"]}, RenderConfig())
    dashboard = build("odd", None, source, SETTINGS).dashboard
    assert dashboard is not None and dashboard["kind"] == "ConfigMap"
    meta = dashboard["metadata"]
    assert meta["name"] == "ingestion-dashboard-odd" and "namespace" not in meta
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["labels"]["app.kubernetes.io/component"] == "dashboard"
    assert meta["annotations"] == {
        "observability.ingestion.dev/source": 'a"b\\c',
        "grafana_folder": "Ingestion",
    }
    assert list(dashboard["data"]) == ["odd.json"]
    assert json.loads(dashboard["data"]["odd.json"]) == render_dashboard(source.config)


def test_settings_and_folder() -> None:
    settings = ChildSettings(
        release="monitoring",
        dashboard_label="grafana-dashboards",
        dashboard_label_value="ingestion",
        folder_annotation="k8s-sidecar-target-directory",
        default_folder="Data",
    )
    children = build(
        "s", "ns", parse({"source": "S", "dashboard": {"folder": "Sales"}}, RenderConfig()), settings
    )
    assert children.rule["metadata"]["labels"]["release"] == "monitoring"
    assert children.dashboard is not None
    assert children.dashboard["metadata"]["labels"]["grafana-dashboards"] == "ingestion"
    assert children.dashboard["metadata"]["annotations"]["k8s-sidecar-target-directory"] == "Sales"
    default_folder = build("s", "ns", parse({"source": "S"}, RenderConfig()), settings).dashboard
    assert default_folder is not None
    assert default_folder["metadata"]["annotations"]["k8s-sidecar-target-directory"] == "Data"


def test_dashboard_disabled() -> None:
    children = build(
        "s", "ns", parse({"source": "S", "dashboard": {"enabled": False}}, RenderConfig()), SETTINGS
    )
    assert children.dashboard is None and children.objects == [children.rule]


def test_alert_count() -> None:
    plain = build("s", "ns", parse({"source": "S"}, RenderConfig()), SETTINGS)
    with_slo = build(
        "s", "ns", parse({"source": "S", "slo": {"successRatio": 0.99}}, RenderConfig()), SETTINGS
    )
    assert plain.alerts == 10  # per-source alerts (stuck run included); recording rules not counted
    assert with_slo.alerts == plain.alerts + 4  # two page and two ticket burn-rate alerts


def test_largest_spec_fits_in_a_config_map() -> None:
    """The schema's limits (50 objets of 256 characters) keep the dashboard under ConfigMap's 1 MiB."""
    objets = [f"{i:03d}" + "é" * 253 for i in range(50)]
    source = parse(
        {"source": "s" * 128, "objets": objets, "entreprise": "e" * 256, "zone": "z" * 256}, RenderConfig()
    )
    dashboard = build("s" * 63, "ns", source, SETTINGS).dashboard
    assert dashboard is not None
    size = len(json.dumps(dashboard, ensure_ascii=False).encode())
    assert size < 1024 * 1024, size


def _slack(source: str) -> dict[str, Any]:
    return {
        "source": source,
        "notifications": {
            "team": "finance",
            "slack": {"channel": "#finance", "webhookSecret": {"name": "slack", "key": "url"}},
        },
    }


def test_alertmanager_config() -> None:
    source = parse(_slack("PowerBI"), RenderConfig(), "ingestion")
    children = build("powerbi", "ingestion", source, SETTINGS)
    routing = children.routing
    assert routing is not None and children.objects == [children.rule, children.dashboard, routing]
    assert (
        routing["apiVersion"] == "monitoring.coreos.com/v1alpha1" and routing["kind"] == "AlertmanagerConfig"
    )
    meta = routing["metadata"]
    assert (meta["name"], meta["namespace"]) == ("ingestion-powerbi", "ingestion")
    assert meta["labels"] == {
        **children.rule["metadata"]["labels"],
        "app.kubernetes.io/component": "alert-routing",
    }
    assert meta["annotations"] == {"observability.ingestion.dev/source": "PowerBI"}
    assert routing["spec"] == source_config_spec(source.config)
    assert routing["spec"]["receivers"][0]["slackConfigs"][0]["apiURL"] == {"name": "slack", "key": "url"}


def test_no_receiver_no_alertmanager_config() -> None:
    team_only = parse({"source": "S", "notifications": {"team": "crm"}}, RenderConfig(), "ns")
    for source in (parse({"source": "S"}, RenderConfig(), "ns"), team_only):
        children = build("s", "ns", source, SETTINGS)
        assert children.routing is None and children.routing not in children.objects
    alerts = build("s", "ns", team_only, SETTINGS).rule["spec"]["groups"]
    assert all(r["labels"]["team"] == "crm" for g in alerts for r in g["rules"] if "alert" in r)


def alert_rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def test_every_alert_carries_the_sources_namespace_and_team() -> None:
    spec = {**_slack("S"), "slo": {"successRatio": 0.99}, "routing": {"labels": {"channel": "c"}}}
    rule = build("s", "sales", parse(spec, RenderConfig(), "sales"), SETTINGS).rule
    alerts = alert_rules(rule)
    assert len(alerts) == 14
    for alert in alerts:
        assert {k: alert["labels"].get(k) for k in ("namespace", "team", "channel")} == {
            "namespace": "sales",
            "team": "finance",
            "channel": "c",
        }, alert["alert"]
    # Offline without a namespace: no label (the CLI warns when the source has receivers).
    offline = build("s", None, parse(spec, RenderConfig()), SETTINGS).rule
    assert not any("namespace" in alert["labels"] for alert in alert_rules(offline))


@pytest.mark.parametrize("name", ['a"b\\c', ".*", "x|y", "a\nb", "{{ $labels.source }}"])
def test_hostile_source_names_are_matched_exactly(name: str) -> None:
    """Structured matchers (prometheus-operator quotes them): the source's value is the name itself, with
    an equality match, never a regex that `.*` or `x|y` would widen."""
    routing = build("odd", "ns", parse(_slack(name), RenderConfig(), "ns"), SETTINGS).routing
    assert routing is not None
    matchers = routing["spec"]["route"]["matchers"]
    assert {"name": "source", "value": name, "matchType": "="} in matchers
    assert [m for m in matchers if m["name"] == "source"] == [
        {"name": "source", "value": name, "matchType": "="}
    ]
    assert routing["metadata"]["annotations"]["observability.ingestion.dev/source"] == name
