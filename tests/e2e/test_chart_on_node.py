"""The chart on a real Kubernetes node of this machine: images built and run, `helm install` with
values-node.yaml, prometheus-operator's Prometheus selecting the chart's ServiceMonitor and PrometheusRule by
the `release` label, the operator in the cluster with the chart's RBAC, exact totals through a rolling update
and a deleted pod, the real OpenLineage client's runs counted through the intake's Service, and nothing left
by `helm uninstall`. The tests run in this order and share the release."""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openlineage.client.event_v2 import RunState

from devstack import images, incluster
from devstack.cluster import TOPIC
from devstack.kube import load_manifests
from devstack.node import KubeNode
from devstack.stackcheck import scalar
from devstack.victorialogs import logsql
from ingestion_observability.render import RenderConfig, render_rules
from ingestion_observability.sample import sample_logs_path
from ingestion_operator.spec import parse
from tests.integration.lineage import lineage_client, run_event
from tests.integration.support import Aggregates, prometheus_aggregates, runs, send_events, wait_until

from .conftest import IMAGES, NAMESPACE, RELEASE, Helm

pytestmark = pytest.mark.e2e

COMPONENT = "app.kubernetes.io/component"
SAMPLE = json.loads(sample_logs_path().read_text())


def _aggregates(monitoring: incluster.Monitoring) -> Aggregates:
    # prometheus_aggregates only calls .query(expr), which Monitoring has with the same meaning.
    return prometheus_aggregates(monitoring.prometheus_url)


def _wait_exact(monitoring: incluster.Monitoring, expected: Aggregates, timeout: float = 300.0) -> None:
    wait_until(
        lambda: _aggregates(monitoring).exactly(expected),
        timeout=timeout,
        what="Prometheus' totals equal to the produced runs",
        seen=lambda: _aggregates(monitoring),
    )


def _scalar(monitoring: incluster.Monitoring, expr: str) -> float | None:
    return scalar(monitoring.prometheus_url, expr)


def _firing(monitoring: incluster.Monitoring, alert: str) -> list[dict[str, str]]:
    alerts: list[dict[str, Any]] = monitoring.api("alerts")["alerts"]
    return [a["labels"] for a in alerts if a["state"] == "firing" and a["labels"]["alertname"] == alert]


def _rule_files(monitoring: incluster.Monitoring) -> set[str]:
    return {group["file"] for group in monitoring.api("rules")["groups"]}


def _pods(node: KubeNode, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={RELEASE},{COMPONENT}={component}"
    items: list[dict[str, Any]] = node.kubectl_json("-n", NAMESPACE, "get", "pods", "-l", selector)["items"]
    return items


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return pod["metadata"].get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


Publisher = Callable[[list[dict[str, Any]], Callable[[], bool]], threading.Thread]


@pytest.fixture
def publishing(release: Helm) -> Iterator[Publisher]:
    """Publish records to the release's topic in the background: the first half at once, the second half
    once `meanwhile()` is true (a rollout or a pod deletion under way), so both sides of the event have
    records in flight. Every thread is joined, and its error raised, before the test ends."""
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def send(records: list[dict[str, Any]], meanwhile: Callable[[], bool]) -> None:
        try:
            half = len(records) // 2
            send_events(release.kafka.bootstrap_servers, TOPIC, records[:half])
            wait_until(meanwhile, timeout=180, what="the event to publish during")
            for start in range(half, len(records), 1_000):
                send_events(release.kafka.bootstrap_servers, TOPIC, records[start : start + 1_000])
        except BaseException as exc:
            errors.append(exc)
            raise

    def start(records: list[dict[str, Any]], meanwhile: Callable[[], bool]) -> threading.Thread:
        thread = threading.Thread(target=send, args=(records, meanwhile), daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


# --- 1. the images ---------------------------------------------------------------------------------------


def _pod(name: str, image: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "e2e-images"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            # No runAsUser: the image's own USER runs, and the kubelet refuses it unless numeric and not root.
            "securityContext": {"runAsNonRoot": True},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "securityContext": {
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    **container,
                }
            ],
        },
    }


def _finished(node: KubeNode, name: str) -> str:
    phase = ""

    def done() -> bool:
        nonlocal phase
        pod = node.kubectl_json("-n", "e2e-images", "get", "pod", name)
        phase = pod["status"].get("phase", "")
        return phase in ("Succeeded", "Failed")

    wait_until(done, timeout=120, what=f"pod {name} finished", seen=lambda: phase)
    return phase


def test_images_run_as_10001_on_a_read_only_root_and_answer_help(node: KubeNode) -> None:
    node.kubectl("create", "namespace", "e2e-images", check=False)
    for component, ref in IMAGES.items():
        assert images.config(ref)["User"] == "10001:10001", component
        probe = (
            "import os\n"
            "print(os.getuid(), os.getgid())\n"
            "try:\n    open('/probe', 'w')\n"
            "except OSError as e:\n    print('read-only' if e.errno == 30 else e)\n"
        )
        node.kubectl_apply(
            [
                _pod(f"{component}-help", ref, args=["--help"]),
                _pod(f"{component}-user", ref, command=["python", "-c", probe]),
            ]
        )
    for component in IMAGES:
        assert _finished(node, f"{component}-help") == "Succeeded", component
        assert "usage:" in node.kubectl("-n", "e2e-images", "logs", f"{component}-help").lower(), component
        assert _finished(node, f"{component}-user") == "Succeeded", component
        assert node.kubectl("-n", "e2e-images", "logs", f"{component}-user").split() == [
            "10001",
            "10001",
            "read-only",
        ], component
    node.kubectl("delete", "namespace", "e2e-images", "--wait=false")


# --- 2. helm install ------------------------------------------------------------------------------------


def test_install_runs_everything_and_prometheus_selects_the_charts_monitoring(
    release: Helm, monitoring: incluster.Monitoring
) -> None:
    node = release.node
    # helm's --wait wants replicas - maxUnavailable Ready pods of a Deployment: none for the consumer (1, 1).
    wait_until(
        lambda: all(
            _pods(node, c) and all(_ready(p) for p in _pods(node, c)) for c in ("consumer", "operator")
        ),
        timeout=120,
        what="the consumer and the operator Ready",
    )
    jobs = node.kubectl_json("-n", NAMESPACE, "get", "jobs", "-l", f"{COMPONENT}=producer")["items"]
    assert [job["status"].get("succeeded") for job in jobs] == [1]

    expected = {"": 72.0, '{etat="SUCCESS"}': 71.0, '{etat="FAILED"}': 1.0}
    wait_until(
        lambda: {s: _scalar(monitoring, f"count(ingestion_runs_total{s})") for s in expected} == expected,
        timeout=240,  # the operator's config reaches Prometheus through a Secret volume
        what="72 series, 71 SUCCESS, 1 FAILED",
        seen=lambda: {s: _scalar(monitoring, f"count(ingestion_runs_total{s})") for s in expected},
    )
    series = monitoring.query("ingestion_runs_total")
    assert {s["metric"]["job"] for s in series} == {"ingestion-consumer"}  # the ServiceMonitor's jobLabel
    assert not [s for s in series if {"pod", "instance"} & set(s["metric"])]  # its metricRelabelings
    _wait_exact(monitoring, Aggregates.of(SAMPLE), timeout=60)

    wait_until(
        lambda: any(f"{NAMESPACE}-{RELEASE}-rules" in file for file in _rule_files(monitoring)),
        timeout=120,
        what="the chart's PrometheusRule loaded",
        seen=lambda: _rule_files(monitoring),
    )
    wait_until(
        lambda: _firing(monitoring, "IngestionEchecDetecte"), timeout=120, what="IngestionEchecDetecte firing"
    )
    failed = {
        (s["metric"]["source"], s["metric"]["objet"]) for s in series if s["metric"]["etat"] == "FAILED"
    }
    assert {(a["source"], a["objet"]) for a in _firing(monitoring, "IngestionEchecDetecte")} == failed
    rows = logsql(monitoring.logs_url, "* | stats count() as n")
    assert rows and int(rows[0]["n"]) >= 72  # the consumer's Loki lines reached VictoriaLogs


# --- 3. the operator ------------------------------------------------------------------------------------


def test_operator_in_the_cluster_reconciles_an_ingestion_source(
    release: Helm, monitoring: incluster.Monitoring
) -> None:
    node = release.node
    example = images.REPO / "k8s-operator" / "examples" / "powerbi.yaml"
    (source,) = load_manifests(example.read_text())
    name = source["metadata"]["name"]
    node.kubectl("-n", NAMESPACE, "apply", "-f", str(example))

    def ready() -> bool:
        status = node.kubectl_json("-n", NAMESPACE, "get", "ingestionsource", name).get("status", {})
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))

    wait_until(ready, timeout=120, what=f"IngestionSource {name} Ready")
    table = node.kubectl("-n", NAMESPACE, "get", "ingestionsource", name).splitlines()
    assert table[0].split() == ["NAME", "SOURCE", "READY", "ALERTS", "JOBS", "AGE"]
    config = parse(source["spec"], RenderConfig(), NAMESPACE).config
    alerts = sum("alert" in rule for group in render_rules(config)["groups"] for rule in group["rules"])
    assert table[1].split()[:4] == [name, source["spec"]["source"], "True", str(alerts)]
    rule = node.kubectl_json("-n", NAMESPACE, "get", "prometheusrule", f"ingestion-{name}")
    assert rule["metadata"]["labels"]["release"] == incluster.RELEASE_LABEL
    dashboard = node.kubectl_json("-n", NAMESPACE, "get", "configmap", f"ingestion-dashboard-{name}")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    wait_until(
        lambda: any(f"{NAMESPACE}-ingestion-{name}-" in file for file in _rule_files(monitoring)),
        timeout=180,
        what="Prometheus loaded the per-source rules",
        seen=lambda: _rule_files(monitoring),
    )

    node.kubectl("-n", NAMESPACE, "delete", "ingestionsource", name, "--timeout=60s")
    children = [f"prometheusrule/ingestion-{name}", f"configmap/ingestion-dashboard-{name}"]
    wait_until(
        lambda: not node.kubectl("-n", NAMESPACE, "get", *children, "--ignore-not-found"),
        timeout=60,
        what=f"{children} deleted with their IngestionSource",
    )
    wait_until(
        lambda: not any(f"{NAMESPACE}-ingestion-{name}-" in file for file in _rule_files(monitoring)),
        timeout=180,
        what="Prometheus dropped the per-source rules",
    )


# --- 4, 5. exact totals through a rolling update and a deleted pod --------------------------------------


def test_rolling_update_while_publishing_is_exact(
    release: Helm, monitoring: incluster.Monitoring, publishing: Publisher
) -> None:
    node = release.node
    before = {pod["metadata"]["name"] for pod in _pods(node, "consumer")}
    records = list(runs(20_000, day=100))

    def rolling() -> bool:  # the old pod is going: maxSurge 0, it goes before its replacement comes
        return not [p for p in _pods(node, "consumer") if p["metadata"]["name"] in before and _ready(p)]

    sender = publishing(records, rolling)
    release.upgrade("consumer.logLevel=DEBUG")  # one env value (LOG_LEVEL): a new ReplicaSet
    sender.join(timeout=300)

    def replaced() -> bool:  # helm's --wait does not wait for it (see test_install)
        pods = _pods(node, "consumer")
        return bool(pods) and all(_ready(p) and p["metadata"]["name"] not in before for p in pods)

    wait_until(replaced, timeout=180, what="the new ReplicaSet's pod Ready, the old one gone")
    _wait_exact(monitoring, Aggregates.of(SAMPLE + records))


def test_a_consumer_pod_deleted_mid_stream_is_replaced_and_exact(
    release: Helm, monitoring: incluster.Monitoring, publishing: Publisher
) -> None:
    node = release.node
    (victim,) = [pod["metadata"]["name"] for pod in _pods(node, "consumer")]
    records = list(runs(20_000, day=110))
    published = SAMPLE + list(runs(20_000, day=100)) + records
    deleted = threading.Event()
    sender = publishing(records, deleted.is_set)
    wait_until(
        lambda: (_scalar(monitoring, "sum(ingestion_runs_total)") or 0) > len(published) - len(records),
        timeout=180,
        what="the consumer busy with the new records",
    )
    node.kubectl("-n", NAMESPACE, "delete", "pod", victim, "--wait=false")
    deleted.set()
    sender.join(timeout=300)

    def replaced() -> list[str]:
        return [
            p["metadata"]["name"]
            for p in _pods(node, "consumer")
            if _ready(p) and p["metadata"]["name"] != victim
        ]

    wait_until(replaced, timeout=180, what="the Deployment's replacement Ready")
    _wait_exact(monitoring, Aggregates.of(published))


# --- 6. the intake: the real OpenLineage client through its Service --------------------------------------

# The RunEvents' job, this test's alone: its namespace is the intake's source (intake.sourceFrom "namespace"),
# its name the objet. The test comes after the exact totals above: they count every run of the topic.
LINEAGE_SOURCE = "e2e_openlineage"
LINEAGE_OBJET = "export-commandes"
# Each run's duration (seconds between its START and its end) and, for the FAIL, its error message.
LINEAGE_RUNS: tuple[tuple[float, str | None], ...] = (
    (12.0, None),
    (30.0, None),
    (47.0, None),
    (21.0, "quota de l'API dépassé (HTTP 429)"),
)


def _intake_url(node: KubeNode) -> str:
    """The intake's Service as a client in the cluster would reach it; from this machine through kube-proxy's
    rules for its ClusterIP (this machine is the node)."""
    service = node.kubectl_json("-n", NAMESPACE, "get", "service", f"{RELEASE}-intake")
    assert service["spec"]["type"] == "ClusterIP"  # values-node.yaml keeps values.yaml's
    (port,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "http"]
    return f"http://{service['spec']['clusterIP']}:{port}"


def test_openlineage_client_posts_through_the_intake_service_and_prometheus_counts_its_runs(
    release: Helm, monitoring: incluster.Monitoring
) -> None:
    """values-node.yaml runs the intake (one replica, no tokens): the real client POSTs 3 COMPLETE and
    1 FAIL runs, each after its START, to its Service; Prometheus shows exactly those runs for their
    source and objet, with their durations, and the intake's own count of published events."""
    node = release.node
    (intake,) = _pods(node, "intake")
    assert _ready(intake)  # helm's --wait: the intake reached Kafka and knows the topic
    ol = lineage_client(_intake_url(node))  # no token: values-node.yaml turns auth off
    now = datetime.now(UTC)
    runs = [(str(uuid.uuid4()), duration, error) for duration, error in LINEAGE_RUNS]
    for run_id, duration, _ in runs:
        start = now - timedelta(seconds=duration)
        ol.emit(run_event(RunState.START, LINEAGE_SOURCE, LINEAGE_OBJET, run_id, start))
    for run_id, _, error in runs:
        state = RunState.COMPLETE if error is None else RunState.FAIL
        ol.emit(run_event(state, LINEAGE_SOURCE, LINEAGE_OBJET, run_id, now, error))

    where = f'source="{LINEAGE_SOURCE}",objet="{LINEAGE_OBJET}"'
    expected = {
        "SUCCESS": float(sum(1 for _, _, error in runs if error is None)),
        "FAILED": float(sum(1 for _, _, error in runs if error is not None)),
        "count": float(len(runs)),
        "sum": math.fsum(duration for _, duration, _ in runs),
        "published": 2.0 * len(runs),  # START and end of each run, acknowledged by Kafka
    }
    assert (expected["SUCCESS"], expected["FAILED"]) == (3.0, 1.0)

    def seen() -> dict[str, float | None]:
        return {
            etat: _scalar(monitoring, f'sum(ingestion_runs_total{{{where},etat="{etat}"}})')
            for etat in ("SUCCESS", "FAILED")
        } | {
            "count": _scalar(monitoring, f"sum(ingestion_duration_seconds_count{{{where}}})"),
            "sum": _scalar(monitoring, f"sum(ingestion_duration_seconds_sum{{{where}}})"),
            # nothing else posts to the intake in this module
            "published": _scalar(
                monitoring,
                'sum(ingestion_intake_events_total{handler="/api/v1/lineage",result="published"})',
            ),
        }

    def exact() -> bool:
        got = seen()
        return all(
            got[key] is not None and math.isclose(got[key] or 0.0, value, abs_tol=1e-6)
            for key, value in expected.items()
        )

    wait_until(
        exact,
        timeout=180,  # the intake's ServiceMonitor scrapes every 30s (values.yaml)
        what=f"Prometheus showing exactly {expected} for {where}",
        seen=seen,
    )


# --- 7. helm uninstall ----------------------------------------------------------------------------------


def test_uninstall_leaves_no_workload_service_or_rule(
    release: Helm, monitoring: incluster.Monitoring
) -> None:
    node = release.node
    release.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=5m")
    kinds = "deployments,replicasets,statefulsets,jobs,cronjobs,services,servicemonitors,prometheusrules,pdb"

    def left() -> list[str]:
        names = node.kubectl("-n", NAMESPACE, "get", f"{kinds},pods,configmaps,secrets", "-o", "name").split()
        return [n for n in names if n != "configmap/kube-root-ca.crt"]

    wait_until(lambda: not left(), timeout=120, what="nothing left in the namespace", seen=left)
    cluster_wide = node.kubectl("get", "clusterroles,clusterrolebindings", "-o", "name").split()
    assert not [n for n in cluster_wide if RELEASE in n]
    wait_until(
        lambda: not any(f"{NAMESPACE}-" in file for file in _rule_files(monitoring)),
        timeout=180,
        what="Prometheus dropped the chart's rules",
        seen=lambda: _rule_files(monitoring),
    )
    assert node.kubectl(
        "get", "crd", "ingestionsources.observability.ingestion.dev", "-o", "name"
    )  # crds/ stays
