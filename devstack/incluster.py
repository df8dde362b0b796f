"""The chart's dependencies inside the local node (devstack/node.py), since no public image can be pulled:
the real prometheus-operator (its CRDs from part "kube") with a Prometheus that selects rules, ServiceMonitors
and PodMonitors by the `release` label as kube-prometheus-stack does, and VictoriaLogs (Apache-2.0, takes
Loki's pushes). Kafka is the host's KRaft broker (devstack/kafka.py on the node's address); Strimzi, Grafana
and Loki stay disabled chart dependencies here.

kube-prometheus-stack's Alertmanager is `install_alertmanager`, once the chart is installed: it lives in the
release namespace, as the subchart's does, because prometheus-operator reads the top-level AlertmanagerConfig
(alertmanagerSpec.alertmanagerConfiguration, the chart's) and its templates ConfigMap only in the
Alertmanager's own namespace. The Prometheus sends its alerts there from the start.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import prometheus
from .kube import crd_files
from .node import KubeNode
from .nodeconfig import RESTRICTED, deployment, image_named, rbac

NAMESPACE = "monitoring"
RELEASE_LABEL = "monitoring"  # the `release` label of a kube-prometheus-stack installed as "monitoring"
PROMETHEUS = "e2e"
PROMETHEUS_VERSION = "v3.16.0"  # bin/prometheus-k8s (scripts/tools/50-node.sh), the image of part "images"
VLOGS_PORT = 9428
# The consumer's LOKI_URL (values-node.yaml's consumer.loki.url): VictoriaLogs' Loki API, by its Service name.
LOKI_PUSH_URL = f"http://victoria-logs.{NAMESPACE}.svc:{VLOGS_PORT}/insert"
ALERTMANAGER = "e2e"
ALERTMANAGER_VERSION = "v0.35.0"  # part "alertmanager"'s build, the image of part "images"
# Where the chart is installed (tests/e2e, `make cluster-up`'s helm command): its Alertmanager's namespace.
RELEASE_NAMESPACE = "ingestion"
ALERTMANAGER_PORT = 9093
CHART_VALUES = Path(__file__).resolve().parents[1] / "charts" / "ingestion-observability" / "values.yaml"
# What the chart sets in kube-prometheus-stack.alertmanager.alertmanagerSpec to select its configuration.
ALERTMANAGER_SELECTION = (
    "alertmanagerConfiguration",
    "alertmanagerConfigSelector",
    "alertmanagerConfigNamespaceSelector",
    "alertmanagerConfigMatcherStrategy",
)


def _rbac(name: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rbac(NAMESPACE, name, name, rules)


def _deployment(name: str, container: dict[str, Any], **pod: Any) -> dict[str, Any]:
    spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
        "containers": [
            {"name": name, "imagePullPolicy": "Never", "securityContext": RESTRICTED, **container}
        ],
        **pod,
    }
    return deployment(NAMESPACE, name, {"app.kubernetes.io/name": name}, spec)


def _read(verbs: list[str], *resources: str, group: str = "") -> dict[str, Any]:
    return {"apiGroups": [group], "resources": list(resources), "verbs": verbs}


def operator_manifests() -> list[dict[str, Any]]:
    watch = ["get", "list", "watch"]
    rules = [
        {"apiGroups": ["monitoring.coreos.com"], "resources": ["*"], "verbs": ["*"]},
        _read(["*"], "statefulsets", group="apps"),
        _read(["*"], "configmaps", "secrets"),
        _read(["list", "delete"], "pods"),
        _read(["get", "create", "update", "delete"], "services", "services/finalizers", "endpoints"),
        _read(["list", "watch"], "nodes"),
        _read(watch, "namespaces"),
        _read(["create", "patch"], "events"),
        _read(["create", "patch"], "events", group="events.k8s.io"),
        _read(watch, "ingresses", group="networking.k8s.io"),
        _read(["get"], "storageclasses", group="storage.k8s.io"),
        _read([*watch, "create", "update", "delete"], "endpointslices", group="discovery.k8s.io"),
    ]
    container = {
        "image": image_named("prometheus-operator"),
        "args": [
            f"--prometheus-config-reloader={image_named('prometheus-config-reloader')}",
            "--log-level=info",
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    return [
        *_rbac("prometheus-operator", rules),
        _deployment("prometheus-operator", container, serviceAccountName="prometheus-operator"),
    ]


def prometheus_manifests() -> list[dict[str, Any]]:
    watch = ["get", "list", "watch"]
    rules = [
        _read(watch, "nodes", "nodes/metrics", "services", "endpoints", "pods"),
        _read(watch, "endpointslices", group="discovery.k8s.io"),
        _read(["get"], "configmaps"),
        _read(watch, "ingresses", group="networking.k8s.io"),
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    selector = {"matchLabels": {"release": RELEASE_LABEL}}
    prometheus = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": PROMETHEUS, "namespace": NAMESPACE},
        "spec": {
            "image": image_named("prometheus"),
            "version": PROMETHEUS_VERSION,
            "replicas": 1,
            "serviceAccountName": "prometheus",
            # kube-prometheus-stack's selection: the `release` label, in every namespace.
            "serviceMonitorSelector": selector,
            "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": selector,
            "podMonitorNamespaceSelector": {},
            "ruleSelector": selector,
            "ruleNamespaceSelector": {},
            "scrapeInterval": "5s",
            "evaluationInterval": "5s",
            # install_alertmanager's, by the governing Service prometheus-operator makes for Alertmanagers.
            "alerting": {
                "alertmanagers": [
                    {"namespace": RELEASE_NAMESPACE, "name": "alertmanager-operated", "port": "web"}
                ]
            },
            "retention": "2h",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "fsGroup": 65534,
            },
            "resources": {"requests": {"cpu": "50m", "memory": "200Mi"}},
        },
    }
    return [*_rbac("prometheus", rules), prometheus]


def victorialogs_manifests() -> list[dict[str, Any]]:
    container = {
        "image": image_named("victoria-logs"),
        "args": ["-storageDataPath=/data", f"-httpListenAddr=:{VLOGS_PORT}", "-retentionPeriod=1d"],
        "ports": [{"name": "http", "containerPort": VLOGS_PORT}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "victoria-logs", "namespace": NAMESPACE},
        "spec": {
            "selector": {"app.kubernetes.io/name": "victoria-logs"},
            "ports": [{"name": "http", "port": VLOGS_PORT, "targetPort": "http"}],
        },
    }
    volumes = [{"name": "data", "emptyDir": {}}]
    return [_deployment("victoria-logs", container, volumes=volumes), service]


@dataclass(frozen=True)
class Monitoring:
    """The running dependencies; URLs are pod addresses, reachable from this machine over cni0."""

    node: KubeNode
    prometheus_url: str
    logs_url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query of the in-cluster Prometheus."""
        return prometheus.instant_query(self.prometheus_url, expr)

    def api(self, path: str) -> Any:
        """GET /api/v1/<path> of the in-cluster Prometheus (e.g. "rules"); its `data`."""
        return prometheus.api(self.prometheus_url, path)


def _pod_ip(node: KubeNode, selector: str, namespace: str = NAMESPACE) -> str:
    pods = node.kubectl_json("-n", namespace, "get", "pods", "-l", selector)["items"]
    ip = pods[0]["status"].get("podIP") if pods else None
    if not ip:
        raise RuntimeError(f"no pod {selector} with an address in {namespace}")
    return str(ip)


def _wait_for(node: KubeNode, namespace: str, resource: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not node.kubectl("-n", namespace, "get", resource, "--ignore-not-found", check=False):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(1)


def install(node: KubeNode, *, timeout: float = 300.0) -> Monitoring:
    """Create the CRDs, prometheus-operator, the Prometheus and VictoriaLogs; wait until they answer."""
    assert node.plane is not None
    node.plane.apply_crds(crd_files("prometheus-operator"))
    node.kubectl("create", "namespace", NAMESPACE, check=False)
    node.kubectl_apply([*operator_manifests(), *victorialogs_manifests()])
    for name in ("prometheus-operator", "victoria-logs"):
        node.kubectl(
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            f"deployment/{name}",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )
    node.kubectl_apply(prometheus_manifests())
    _wait_for(
        node,
        NAMESPACE,
        f"statefulset/prometheus-{PROMETHEUS}",
        timeout,
        "prometheus-operator made no StatefulSet for the Prometheus",
    )
    node.kubectl(
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        f"statefulset/prometheus-{PROMETHEUS}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 10,
    )
    prometheus = _pod_ip(node, f"app.kubernetes.io/name=prometheus,prometheus={PROMETHEUS}")
    logs = _pod_ip(node, "app.kubernetes.io/name=victoria-logs")
    return Monitoring(node, f"http://{prometheus}:9090", f"http://{logs}:{VLOGS_PORT}")


# --- kube-prometheus-stack's Alertmanager ---------------------------------------------------------------


def chart_alertmanager_selection() -> dict[str, Any]:
    """The chart's kube-prometheus-stack.alertmanager.alertmanagerSpec keys that choose the Alertmanager's
    configuration (the top-level AlertmanagerConfig and its templates, the per-source ones merged below)."""
    values = yaml.safe_load(CHART_VALUES.read_text())
    spec: dict[str, Any] = values["kube-prometheus-stack"]["alertmanager"]["alertmanagerSpec"]
    return {key: spec[key] for key in ALERTMANAGER_SELECTION if key in spec}


def alertmanager_manifests(namespace: str = RELEASE_NAMESPACE) -> list[dict[str, Any]]:
    """The Alertmanager kube-prometheus-stack would make from the chart's values, on the local image."""
    alertmanager = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Alertmanager",
        "metadata": {"name": ALERTMANAGER, "namespace": namespace},
        "spec": {
            "image": image_named("alertmanager"),
            "version": ALERTMANAGER_VERSION,
            "replicas": 1,
            "automountServiceAccountToken": False,  # neither it nor its config-reloader calls the API
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "fsGroup": 65534,
            },
            "resources": {"requests": {"cpu": "20m", "memory": "50Mi"}},
            **chart_alertmanager_selection(),
        },
    }
    return [alertmanager]


@dataclass(frozen=True)
class Alertmanager:
    """The running Alertmanager; its URL is the pod's address, reachable from this machine over cni0."""

    node: KubeNode
    namespace: str
    url: str

    def api(self, path: str) -> Any:
        """GET /api/v2/<path> (e.g. "status", "alerts")."""
        with urllib.request.urlopen(f"{self.url}/api/v2/{path}", timeout=30) as resp:
            return json.loads(resp.read())

    def config(self) -> dict[str, Any]:
        """The configuration it runs (/api/v2/status' config.original), parsed."""
        loaded: dict[str, Any] = yaml.safe_load(self.api("status")["config"]["original"])
        return loaded

    def uninstall(self, timeout: float = 120.0) -> None:
        """Delete the Alertmanager (its StatefulSet and generated Secrets go with it) and the governing
        Service prometheus-operator made for the namespace's Alertmanagers, when it was the last one."""
        self.node.kubectl(
            "-n",
            self.namespace,
            "delete",
            "alertmanager",
            ALERTMANAGER,
            "--ignore-not-found",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )
        if not self.node.kubectl("-n", self.namespace, "get", "alertmanagers", "-o", "name"):
            self.node.kubectl(
                "-n", self.namespace, "delete", "service", "alertmanager-operated", "--ignore-not-found"
            )
        deadline = time.monotonic() + timeout
        selector = f"app.kubernetes.io/name=alertmanager,alertmanager={ALERTMANAGER}"
        while self.node.kubectl(
            "-n", self.namespace, "get", "pods,statefulsets", "-l", selector, "-o", "name"
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Alertmanager's pods still in {self.namespace} after {timeout:.0f}s")
            time.sleep(1)


def install_alertmanager(
    node: KubeNode, namespace: str = RELEASE_NAMESPACE, *, timeout: float = 300.0
) -> Alertmanager:
    """Create the Alertmanager in the release's namespace (the chart's AlertmanagerConfig and templates
    ConfigMap must be there) and wait until it answers."""
    node.kubectl_apply(alertmanager_manifests(namespace))
    statefulset = f"statefulset/alertmanager-{ALERTMANAGER}"
    _wait_for(
        node, namespace, statefulset, timeout, "prometheus-operator made no StatefulSet for the Alertmanager"
    )
    node.kubectl(
        "-n", namespace, "rollout", "status", statefulset, f"--timeout={int(timeout)}s", timeout=timeout + 10
    )
    ip = _pod_ip(node, f"app.kubernetes.io/name=alertmanager,alertmanager={ALERTMANAGER}", namespace)
    return Alertmanager(node, namespace, f"http://{ip}:{ALERTMANAGER_PORT}")
