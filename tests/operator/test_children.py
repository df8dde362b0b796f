"""The generated objects: names, labels for kube-prometheus-stack and the Grafana sidecar, content."""

from __future__ import annotations

import json

from ingestion_observability.render import RenderConfig, render_dashboard, render_rules
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
    assert plain.alerts == 8  # per-source alerts (stuck run included); recording rules not counted
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
