"""The objects generated for one IngestionSource: their names, labels, annotations and content.

Pure: no ownership here (`reconcile` calls `kopf.adopt`), so `ingestion-operator render` prints the very
same objects for GitOps, minus the owner reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ingestion_observability.render import render_dashboard, render_rules
from ingestion_observability.render.notifications import source_config_spec
from ingestion_operator.settings import ChildSettings
from ingestion_operator.spec import SourceSpec

GROUP = "observability.ingestion.dev"
VERSION = "v1alpha1"
KIND = "IngestionSource"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "ingestionsources"
MANAGED_BY = "ingestion-operator"
SOURCE_ANNOTATION = f"{GROUP}/source"  # the source name, which may not fit a label value
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


PROMETHEUS_RULE = Kind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
ALERTMANAGER_CONFIG = Kind("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig", "alertmanagerconfigs")
KINDS = {kind.kind: kind for kind in (PROMETHEUS_RULE, CONFIG_MAP, ALERTMANAGER_CONFIG)}


def rule_name(name: str) -> str:
    return f"ingestion-{name}"


def dashboard_name(name: str) -> str:
    return f"ingestion-dashboard-{name}"


def routing_name(name: str) -> str:
    return rule_name(name)  # another kind: the same name tells they go together


@dataclass(frozen=True)
class Children:
    rule: dict[str, Any]
    dashboard: dict[str, Any] | None  # None: spec.dashboard.enabled is false
    routing: dict[str, Any] | None  # the AlertmanagerConfig; None: the notifications name no receiver

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [body for body in (self.rule, self.dashboard, self.routing) if body is not None]

    @property
    def alerts(self) -> int:
        return sum("alert" in rule for group in self.rule["spec"]["groups"] for rule in group["rules"])


def build(name: str, namespace: str | None, source: SourceSpec, settings: ChildSettings) -> Children:
    """The desired children of the IngestionSource `namespace/name`."""
    config = source.config
    annotations = {SOURCE_ANNOTATION: config.source or ""}
    rule = _object(
        PROMETHEUS_RULE,
        rule_name(name),
        namespace,
        labels={**_labels(name, "alert-rules"), "release": settings.release},
        annotations=annotations,
    )
    rule["spec"] = {"groups": render_rules(config)["groups"]}
    return Children(
        rule=rule,
        dashboard=_dashboard(name, namespace, source, settings) if source.dashboard else None,
        routing=_routing(name, namespace, source, settings),
    )


def _dashboard(
    name: str, namespace: str | None, source: SourceSpec, settings: ChildSettings
) -> dict[str, Any]:
    config = source.config
    annotations = {SOURCE_ANNOTATION: config.source or ""}
    dashboard = _object(
        CONFIG_MAP,
        dashboard_name(name),
        namespace,
        labels={**_labels(name, "dashboard"), settings.dashboard_label: settings.dashboard_label_value},
        annotations={**annotations, settings.folder_annotation: source.folder or settings.default_folder},
    )
    # Compact: a dashboard grows with every objet and a ConfigMap holds at most 1 MiB (a test renders the
    # largest spec the schema allows and keeps it under).
    dashboard["data"] = {
        f"{name}.json": json.dumps(render_dashboard(config), ensure_ascii=False, separators=(",", ":"))
    }
    return dashboard


def _routing(
    name: str, namespace: str | None, source: SourceSpec, settings: ChildSettings
) -> dict[str, Any] | None:
    """The source's own Alertmanager route and receivers. prometheus-operator adds a `namespace` matcher
    to its route: the alerts carry that label (`spec.parse`). `release` as on the rule, for an
    Alertmanager that selects its configs by it."""
    routing_spec = source_config_spec(source.config)
    if routing_spec is None:
        return None
    routing = _object(
        ALERTMANAGER_CONFIG,
        routing_name(name),
        namespace,
        labels={**_labels(name, "alert-routing"), "release": settings.release},
        annotations={SOURCE_ANNOTATION: source.config.source or ""},
    )
    routing["spec"] = routing_spec
    return routing


def _labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "ingestion-observability",
        "app.kubernetes.io/part-of": "ingestion-observability",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": name,
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def _object(
    kind: Kind, name: str, namespace: str | None, labels: dict[str, str], annotations: dict[str, str]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata |= {"labels": labels, "annotations": annotations}
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": metadata}
