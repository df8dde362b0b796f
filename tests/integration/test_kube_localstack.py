"""The local control plane is a real one: etcd + kube-apiserver with RBAC, the prometheus-operator and
Strimzi CRDs validate and store objects, and helm talks to it (needs `bash scripts/tools.sh kube`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.kube import KubeApiError, KubeControlPlane, crd_files
from devstack.tools import binary

pytestmark = pytest.mark.integration

NAMESPACE = "default"
RULES = f"/apis/monitoring.coreos.com/v1/namespaces/{NAMESPACE}/prometheusrules"
TOPICS_V1 = f"/apis/kafka.strimzi.io/v1/namespaces/{NAMESPACE}/kafkatopics"
TOPICS_V1BETA2 = f"/apis/kafka.strimzi.io/v1beta2/namespaces/{NAMESPACE}/kafkatopics"


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    with KubeControlPlane.start(tmp_path_factory.mktemp("kube")) as plane:
        plane.apply_crds(crd_files("prometheus-operator", "strimzi"))
        yield plane
    assert not plane.etcd.alive()
    assert not plane.apiserver.alive()


def test_control_plane_is_ready_with_a_kubeconfig(kube: KubeControlPlane) -> None:
    assert kube.ready()
    config = yaml.safe_load(kube.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube.url
    version = kube.get("/version")
    assert version["major"] == "1"
    assert version["gitVersion"].startswith("v1.")
    names = {ns["metadata"]["name"] for ns in kube.get("/api/v1/namespaces")["items"]}
    assert {"default", "kube-system"} <= names


def test_crds_are_established(kube: KubeControlPlane) -> None:
    crds = kube.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    names = {crd["metadata"]["name"] for crd in crds}
    assert {
        "prometheusrules.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
        "podmonitors.monitoring.coreos.com",
        "kafkas.kafka.strimzi.io",
        "kafkanodepools.kafka.strimzi.io",
        "kafkatopics.kafka.strimzi.io",
    } <= names
    # Installing the same files again (an upgrade) replaces them in place.
    assert "kafkatopics.kafka.strimzi.io" in kube.apply_crds(crd_files("strimzi"))


def test_prometheus_rule_round_trip(kube: KubeControlPlane) -> None:
    rule: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ingestion-alerts", "labels": {"release": "test"}},
        "spec": {
            "groups": [
                {
                    "name": "ingestion",
                    "rules": [
                        {
                            "alert": "IngestionJobFailed",
                            "expr": "increase(ingestion_runs_total{status='failed'}[5m]) > 0",
                            "for": "1m",
                            "labels": {"severity": "critical"},
                            "annotations": {"summary": "An ingestion job failed"},
                        }
                    ],
                }
            ]
        },
    }
    kube.create(RULES, rule)
    stored = kube.get(f"{RULES}/ingestion-alerts")
    assert stored["spec"] == rule["spec"]
    assert stored["metadata"]["labels"] == {"release": "test"}

    # The CRD's schema is enforced: `for` must be a duration.
    bad = {**rule, "metadata": {"name": "bad-duration"}}
    bad["spec"] = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "soon"}]}]}
    with pytest.raises(KubeApiError) as err:
        kube.create(RULES, bad)
    assert err.value.status == 422


def test_kafka_topic_round_trip_v1_and_v1beta2(kube: KubeControlPlane) -> None:
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "ingestion-runs", "labels": {"strimzi.io/cluster": "ingestion"}},
        "spec": {"partitions": 3, "replicas": 1, "config": {"retention.ms": 604800000}},
    }
    kube.create(TOPICS_V1, topic)
    stored = kube.get(f"{TOPICS_V1}/ingestion-runs")
    assert stored["spec"] == topic["spec"]
    assert kube.get(f"{TOPICS_V1BETA2}/ingestion-runs")["spec"]["partitions"] == 3

    # Strimzi's schema is enforced (partitions >= 1) and, in v1, spec is required.
    with pytest.raises(KubeApiError) as err:
        kube.create(TOPICS_V1, {**topic, "metadata": {"name": "zero"}, "spec": {"partitions": 0}})
    assert err.value.status == 422
    with pytest.raises(KubeApiError) as err:
        kube.create(TOPICS_V1, {k: v for k, v in topic.items() if k != "spec"} | {"metadata": {"name": "x"}})
    assert err.value.status == 422


def test_rbac_is_enforced(kube: KubeControlPlane) -> None:
    nobody = {"Impersonate-User": "system:serviceaccount:default:nobody"}
    with pytest.raises(KubeApiError) as err:
        kube.request("GET", RULES, headers=nobody)
    assert err.value.status == 403

    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "rules-reader"},
        "rules": [
            {"apiGroups": ["monitoring.coreos.com"], "resources": ["prometheusrules"], "verbs": ["list"]}
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "nobody-reads-rules"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rules-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": "default"}],
    }
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}"
    kube.create(f"{rbac}/roles", role)
    kube.create(f"{rbac}/rolebindings", binding)
    assert kube.request("GET", RULES, headers=nobody)["kind"] == "PrometheusRuleList"


def test_helm_runs_against_the_control_plane(kube: KubeControlPlane, tmp_path: Path) -> None:
    helm = binary("helm")
    env = {
        **os.environ,
        **kube.env(),
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    version = subprocess.run(
        [helm, "version", "--short"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert version.stdout.startswith("v3.")
    listed = subprocess.run(
        [helm, "list", "--all-namespaces", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert yaml.safe_load(listed.stdout) == []
