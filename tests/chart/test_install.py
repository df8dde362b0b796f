"""helm install into a real kube-apiserver (etcd + kube-apiserver of the tools cache, no nodes): each object
is accepted, including by CRD schemas and their CEL rules and by strict field validation; upgrades keep what
they must; the operator's RBAC allows what it does and nothing else (asked through SubjectAccessReviews)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.kube import KubeApiError, KubeControlPlane

from .conftest import FULL_OVERRIDES, KIND_VALUES
from .support import Manifest, crd_files, parse_manifests, run_helm, values_args

pytestmark = pytest.mark.integration

NO_DEPENDENCIES: dict[str, Any] = {
    "strimzi-kafka-operator": {"enabled": False},
    "kube-prometheus-stack": {"enabled": False},
    "loki": {"enabled": False},
    "kafka-ui": {"enabled": False},
    "consumer": {"loki": {"url": "http://loki.monitoring.svc:3100"}},
    "monitoring": {"releaseLabel": "kube-prometheus-stack"},
}


class Cluster:
    """The control plane, helm pointed at it, and the discovery needed to find any object's URL."""

    def __init__(self, plane: KubeControlPlane, chart: Path, helm_home: Path, tmp: Path) -> None:
        self.plane = plane
        self.chart = chart
        self.helm_home = helm_home
        self.tmp = tmp
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}

    def helm(self, *args: str | Path, check: bool = True) -> Any:
        return run_helm(list(args), home=self.helm_home, check=check, extra_env=self.plane.env())

    def install(
        self,
        verb: str,
        release: str,
        namespace: str,
        files: tuple[Path, ...],
        overrides: tuple[dict[str, Any], ...],
    ) -> str:
        args: list[str | Path] = [verb, release, self.chart, "--namespace", namespace]
        if verb == "install":
            args.append("--create-namespace")
        args += values_args(files, overrides, tmp=self.tmp)
        stdout: str = self.helm(*args).stdout
        return stdout

    def manifests(self, release: str, namespace: str) -> list[Manifest]:
        return parse_manifests(self.helm("get", "manifest", release, "--namespace", namespace).stdout)

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(collection path prefix, namespaced) of a kind, from the API server's discovery."""
        if (api_version, kind) not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            for resource in self.plane.get(base)["resources"]:
                if "/" not in resource["name"]:
                    self._resources[(api_version, resource["kind"])] = (
                        f"{base}/{{ns}}{resource['name']}",
                        resource["namespaced"],
                    )
        return self._resources[(api_version, kind)]

    def collection(self, manifest: Manifest, namespace: str) -> str:
        template, namespaced = self._resource(manifest["apiVersion"], manifest["kind"])
        ns = manifest["metadata"].get("namespace", namespace)
        return template.format(ns=f"namespaces/{ns}/" if namespaced else "")

    def get(self, manifest: Manifest, namespace: str) -> Any:
        return self.plane.get(f"{self.collection(manifest, namespace)}/{manifest['metadata']['name']}")

    def can(self, user: str, verb: str, resource: str, *, namespace: str = "", group: str = "") -> bool:
        resource, _, subresource = resource.partition("/")
        attributes = {"verb": verb, "resource": resource, "group": group, "subresource": subresource}
        if namespace:
            attributes["namespace"] = namespace
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "resourceAttributes": attributes},
        }
        answer = self.plane.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        return bool(answer["status"].get("allowed"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, chart_copy: Path, helm_home: Path) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("kube")
    with KubeControlPlane.start(work / "plane") as plane:
        plane.apply_crds(crd_files())
        for namespace in ("team-a", "ingestion"):
            plane.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
        yield Cluster(plane, chart_copy, helm_home, tmp_path_factory.mktemp("install-values"))


def test_kind_values_install_without_dependencies(cluster: Cluster) -> None:
    notes = cluster.install("install", "kind", "kind", (KIND_VALUES,), (NO_DEPENDENCIES,))
    manifests = cluster.manifests("kind", "kind")
    kinds = {m["kind"] for m in manifests}
    assert {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "Deployment",
        "Job",
        "CronJob",
        "PrometheusRule",
        "ServiceMonitor",
        "PodMonitor",
        "Role",
        "ClusterRole",
    } <= kinds
    for manifest in manifests:
        stored = cluster.get(manifest, "kind")
        assert stored["metadata"]["name"] == manifest["metadata"]["name"]
        assert stored["metadata"]["labels"]["app.kubernetes.io/instance"] == "kind"
    rule = next(m for m in manifests if m["kind"] == "PrometheusRule")
    stored_rule = cluster.get(rule, "kind")
    assert stored_rule["spec"] == rule["spec"]  # the Prometheus templates ({{ $value }}) arrive untouched
    assert "kubectl -n kind port-forward svc/kind-ingestion-observability-consumer 8000:8000" in notes
    assert "create job --from=cronjob/kind-ingestion-observability-producer" in notes


def test_every_object_passes_strict_server_side_validation(cluster: Cluster, render: Any) -> None:
    """A dry-run create of each object of the full value set with fieldValidation=Strict: unknown or
    duplicate fields are errors, CRD schemas and CEL rules apply (IngestionSource's, Strimzi's)."""
    cluster.plane.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "strict"}}
    )
    manifests = render((), (FULL_OVERRIDES,), release="strict", namespace="strict")
    query = urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Strict"})
    rejected: dict[str, str] = {}
    for manifest in manifests:
        try:
            cluster.plane.create(f"{cluster.collection(manifest, 'strict')}?{query}", manifest)
        except KubeApiError as err:
            rejected[f"{manifest['kind']}/{manifest['metadata']['name']}"] = str(err)
    assert rejected == {}


def test_strict_validation_is_not_a_formality(cluster: Cluster) -> None:
    query = urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Strict"})
    source = {
        "apiVersion": "observability.ingestion.dev/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": "bad", "namespace": "team-a"},
        # CEL rule of our CRD: silenceAfterMinutes must exceed expectedEveryMinutes.
        "spec": {"source": "PowerBI", "schedule": {"expectedEveryMinutes": 90, "silenceAfterMinutes": 60}},
    }
    path = f"/apis/observability.ingestion.dev/v1alpha1/namespaces/team-a/ingestionsources?{query}"
    with pytest.raises(KubeApiError) as err:
        cluster.plane.create(path, source)
    assert err.value.status == 422
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t", "namespace": "team-a"},
        "spec": {"partitions": 1, "replica": 1},
    }
    with pytest.raises(KubeApiError) as err:
        cluster.plane.create(f"/apis/kafka.strimzi.io/v1/namespaces/team-a/kafkatopics?{query}", topic)
    assert "unknown field" in str(err.value)


def test_upgrade_keeps_the_grafana_password_and_the_finished_producer_job(cluster: Cluster) -> None:
    """Default values (the stand-in subcharts enabled): the Secret's password survives upgrades (lookup),
    an unchanged producer Job is left alone, a changed one is replaced (never patched: its template is
    immutable)."""
    notes = cluster.install("install", "prod", "prod", (), ())
    assert "kubectl -n prod port-forward svc/prod-grafana 3000:80" in notes
    assert "get secret prod-grafana-admin -o jsonpath='{.data.admin-password}'" in notes
    assert "kubectl -n prod port-forward svc/prometheus-operated 9090:9090" in notes
    secret_path = "/api/v1/namespaces/prod/secrets/prod-grafana-admin"
    password = cluster.plane.get(secret_path)["data"]["admin-password"]
    jobs_path = "/apis/batch/v1/namespaces/prod/jobs"

    def jobs() -> dict[str, str]:
        items = cluster.plane.get(jobs_path)["items"]
        return {
            j["metadata"]["name"]: j["metadata"]["uid"]
            for j in items
            if not j["metadata"].get("deletionTimestamp")
        }

    before = jobs()
    assert len(before) == 1

    cluster.install("upgrade", "prod", "prod", (), ({"consumer": {"logLevel": "DEBUG"}},))
    assert cluster.plane.get(secret_path)["data"]["admin-password"] == password
    assert jobs() == before

    cluster.install("upgrade", "prod", "prod", (), ({"producer": {"image": {"tag": "0.2.0"}}},))
    after = jobs()
    assert len(after) == 1 and set(after) != set(before)
    assert cluster.plane.get(secret_path)["data"]["admin-password"] == password

    cluster.helm("uninstall", "prod", "--namespace", "prod")
    assert jobs() == {}
    with pytest.raises(KubeApiError) as err:
        cluster.plane.get(secret_path)
    assert err.value.status == 404


def test_operator_rbac_allows_its_work_in_watched_namespaces_only(cluster: Cluster) -> None:
    overrides = {**NO_DEPENDENCIES, "operator": {"watchNamespaces": ["rbac", "team-a"]}}
    cluster.install("install", "rbac", "rbac", (KIND_VALUES,), (overrides,))
    operator = "system:serviceaccount:rbac:rbac-ingestion-observability-operator"
    group = "observability.ingestion.dev"
    for namespace in ("rbac", "team-a"):
        assert cluster.can(operator, "watch", "ingestionsources", namespace=namespace, group=group)
        assert cluster.can(operator, "patch", "ingestionsources/status", namespace=namespace, group=group)
        assert cluster.can(
            operator, "update", "ingestionsources/finalizers", namespace=namespace, group=group
        )
        assert cluster.can(
            operator, "create", "prometheusrules", namespace=namespace, group="monitoring.coreos.com"
        )
        assert cluster.can(operator, "delete", "configmaps", namespace=namespace)
        assert cluster.can(operator, "create", "events", namespace=namespace)
        assert cluster.can(
            operator, "create", "alertmanagerconfigs", namespace=namespace, group="monitoring.coreos.com"
        )
        assert cluster.can(operator, "get", "secrets", namespace=namespace)  # the notifications' webhooks
        assert not cluster.can(operator, "list", "secrets", namespace=namespace)
        assert not cluster.can(operator, "watch", "secrets", namespace=namespace)
        assert not cluster.can(operator, "create", "pods", namespace=namespace)
        assert not cluster.can(operator, "delete", "ingestionsources", namespace=namespace, group=group)
        # spec.jobs: the selected Jobs, their pods by label, the CronJobs' schedules.
        for verb in ("get", "list", "watch", "patch"):
            assert cluster.can(operator, verb, "jobs", namespace=namespace, group="batch"), verb
        for verb in ("create", "update", "delete", "deletecollection"):
            assert not cluster.can(operator, verb, "jobs", namespace=namespace, group="batch"), verb
        assert not cluster.can(operator, "patch", "jobs/status", namespace=namespace, group="batch")
        assert cluster.can(operator, "list", "pods", namespace=namespace)
        assert not cluster.can(operator, "get", "pods", namespace=namespace)
        assert not cluster.can(operator, "watch", "pods", namespace=namespace)
        assert not cluster.can(operator, "get", "pods/log", namespace=namespace)
        assert cluster.can(operator, "list", "cronjobs", namespace=namespace, group="batch")
        for verb in ("get", "watch", "patch"):
            assert not cluster.can(operator, verb, "cronjobs", namespace=namespace, group="batch"), verb
    for namespace in ("default", "kube-system", "kind"):
        assert not cluster.can(
            operator, "create", "prometheusrules", namespace=namespace, group="monitoring.coreos.com"
        )
        assert not cluster.can(operator, "list", "ingestionsources", namespace=namespace, group=group)
        assert not cluster.can(operator, "list", "configmaps", namespace=namespace)
        assert not cluster.can(operator, "get", "secrets", namespace=namespace)
        assert not cluster.can(operator, "list", "jobs", namespace=namespace, group="batch")
        assert not cluster.can(operator, "list", "pods", namespace=namespace)
    assert cluster.can(operator, "watch", "customresourcedefinitions", group="apiextensions.k8s.io")
    assert cluster.can(operator, "list", "namespaces")
    assert not cluster.can(operator, "delete", "customresourcedefinitions", group="apiextensions.k8s.io")
    assert not cluster.can(operator, "list", "secrets")
    assert not cluster.can(operator, "list", "jobs", group="batch")  # cluster-wide
    consumer = "system:serviceaccount:rbac:rbac-ingestion-observability-consumer"
    assert not cluster.can(consumer, "list", "configmaps", namespace="rbac")


def test_ingestion_sources_from_values_are_stored(cluster: Cluster) -> None:
    overrides = {
        **NO_DEPENDENCIES,
        "operator": {"watchNamespaces": ["sources"]},
        "ingestionSources": FULL_OVERRIDES["ingestionSources"][:1],
    }
    cluster.install("install", "sources", "sources", (KIND_VALUES,), (overrides,))
    stored = cluster.plane.get(
        "/apis/observability.ingestion.dev/v1alpha1/namespaces/sources/ingestionsources/powerbi"
    )
    assert stored["spec"]["source"] == "PowerBI"
    assert stored["spec"]["schedule"]["silenceAfterMinutes"] == 75  # the CRD's defaults apply
    examples = sorted((Path(__file__).resolve().parents[2] / "k8s-operator" / "examples").glob("*.yaml"))
    assert examples
    query = urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Strict"})
    for example in examples:  # what `make sources` applies is accepted too
        for doc in yaml.safe_load_all(example.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "IngestionSource":
                doc["metadata"]["namespace"] = "team-a"
                path = (
                    f"/apis/observability.ingestion.dev/v1alpha1/namespaces/team-a/ingestionsources?{query}"
                )
                cluster.plane.create(path, doc)


SOURCES_DRY_RUN = "/apis/observability.ingestion.dev/v1alpha1/namespaces/team-a/ingestionsources?" + (
    urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Strict"})
)


def _source(name: str, jobs: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "observability.ingestion.dev/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"source": "s", "jobs": jobs},
    }


def _selector(*expressions: dict[str, Any]) -> dict[str, Any]:
    return {"selector": {"matchExpressions": list(expressions)}}


def test_spec_jobs_accepts_a_label_selector_and_defaults_the_silence(cluster: Cluster) -> None:
    jobs = {
        "selector": {
            "matchLabels": {"app.kubernetes.io/part-of": "etl", "tier": "batch"},
            "matchExpressions": [
                {"key": "example.com/team", "operator": "In", "values": ["a", "b"]},
                {"key": "skip", "operator": "DoesNotExist"},
            ],
        },
        "objetLabel": "ingestion.example.com/objet",
    }
    stored = cluster.plane.create(SOURCES_DRY_RUN, _source("jobs", jobs))
    assert stored["spec"]["jobs"] == {**jobs, "silencePeriods": 2}  # the CRD's default
    stored = cluster.plane.create(
        SOURCES_DRY_RUN, _source("exists", _selector({"key": "a", "operator": "Exists"}))
    )
    assert stored["spec"]["jobs"]["selector"]["matchExpressions"] == [{"key": "a", "operator": "Exists"}]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        pytest.param({}, "spec.jobs.selector: Required value", id="no-selector"),
        pytest.param(
            {"selector": {}},
            "spec.jobs.selector: Invalid value: the selector needs matchLabels or matchExpressions",
            id="empty-selector",
        ),
        pytest.param(
            {"selector": {"matchLabels": {}, "matchExpressions": []}},
            "an empty selector would select every Job of the namespace",
            id="empty-lists",
        ),
        pytest.param(
            _selector({"key": "a", "operator": "Equals", "values": ["x"]}),
            'spec.jobs.selector.matchExpressions[0].operator: Unsupported value: "Equals"',
            id="unknown-operator",
        ),
        pytest.param(
            _selector({"operator": "Exists"}),
            "spec.jobs.selector.matchExpressions[0].key: Required value",
            id="no-key",
        ),
        pytest.param(
            _selector({"key": "a", "operator": "In"}),
            "spec.jobs.selector.matchExpressions[0].values: Invalid value: values must not be empty",
            id="in-without-values",
        ),
        pytest.param(
            _selector({"key": "a", "operator": "NotIn", "values": []}),
            "values must not be empty with the operators In and NotIn",
            id="notin-empty-values",
        ),
        pytest.param(
            _selector({"key": "a", "operator": "Exists", "values": ["x"]}),
            "values must be empty with the operators Exists and DoesNotExist",
            id="exists-with-values",
        ),
        pytest.param(
            {"selector": {"matchLabels": {"not a key": "x"}}},
            "spec.jobs.selector.matchLabels: Invalid value: label keys must be qualified names",
            id="bad-label-key",
        ),
        pytest.param(
            {"selector": {"matchLabels": {"a": "not a value"}}},
            "spec.jobs.selector.matchLabels.a in body should match",
            id="bad-label-value",
        ),
        pytest.param(
            {"selector": {"matchLabels": {"a": "b"}}, "objetLabel": "-objet"},
            "spec.jobs.objetLabel in body should match",
            id="bad-objet-label",
        ),
        pytest.param(
            {"selector": {"matchLabels": {"a": "b"}}, "silencePeriods": 0},
            "spec.jobs.silencePeriods in body should be greater than or equal to 1",
            id="zero-silence-periods",
        ),
        pytest.param(
            {"selector": {"matchLabels": {"a": "b"}}, "selectors": {}},
            'unknown field "spec.jobs.selectors"',
            id="unknown-field",
        ),
    ],
)
def test_spec_jobs_mistakes_are_refused_by_the_api_server(
    jobs: dict[str, Any], message: str, cluster: Cluster
) -> None:
    with pytest.raises(KubeApiError) as err:
        cluster.plane.create(SOURCES_DRY_RUN, _source("bad-jobs", jobs))
    assert message in str(err.value), str(err.value)
