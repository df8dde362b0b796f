"""Policies over the rendered manifests: hardened containers, least-privilege RBAC, what Prometheus and
Grafana need to find our objects, and the wiring between the parts (Kafka, Loki, Grafana)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from ingestion_observability import catalog
from ingestion_observability.render import load_config

from .conftest import FULL_OVERRIDES, KIND_VALUES, Render
from .support import (
    CHART,
    NAMESPACE,
    RELEASE,
    Manifest,
    by_kind,
    containers,
    env_of,
    one,
    pod_specs,
    standin,
)

OUR_IMAGES = {
    "consumer": "ingestion-observability/consumer",
    "intake": "ingestion-observability/intake",
    "producer": "ingestion-observability/producer",
    "operator": "ingestion-observability/operator",
}


def _security(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A security setting as Kubernetes resolves it: the container's, else the pod's."""
    value = container.get("securityContext", {}).get(key)
    return pod.get("securityContext", {}).get(key) if value is None else value


# --- containers -------------------------------------------------------------------------------------------


def test_every_container_is_hardened(value_set: list[Manifest]) -> None:
    checked = 0
    for workload, pod in pod_specs(value_set):
        for container in containers(pod):
            where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
            assert _security(pod, container, "runAsNonRoot") is True, where
            assert (_security(pod, container, "runAsUser") or 0) > 0, where
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context.get("privileged", False) is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert not context["capabilities"].get("add"), where
            assert _security(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}, where
            checked += 1
        assert pod.get("hostNetwork", False) is False and pod.get("hostPID", False) is False
    assert checked >= 4  # consumer, operator, producer Job and CronJob


def test_every_container_has_requests_and_limits(value_set: list[Manifest]) -> None:
    for workload, pod in pod_specs(value_set):
        for container in containers(pod):
            resources = container["resources"]
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert {"cpu", "memory"} <= set(resources["limits"]), where


def test_long_running_containers_have_liveness_and_readiness_probes(value_set: list[Manifest]) -> None:
    deployments = by_kind(value_set, "Deployment")
    names = {d["metadata"]["name"] for d in deployments}
    assert names - {f"{RELEASE}-intake"} == {f"{RELEASE}-consumer", f"{RELEASE}-operator"}  # intake: optional
    for deployment in deployments:
        for container in containers(deployment["spec"]["template"]["spec"]):
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe"):
                get = container[probe]["httpGet"]
                assert get["port"] in ports, (
                    f"{deployment['metadata']['name']}: {probe} on an undeclared port"
                )

    consumer = containers(one(value_set, "Deployment", "-consumer")["spec"]["template"]["spec"])[0]
    assert consumer["ports"][0]["containerPort"] == 8000
    assert env_of(consumer)["METRICS_PORT"] == "8000"
    assert consumer["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert consumer["readinessProbe"]["httpGet"]["path"] == "/readyz"

    operator = containers(one(value_set, "Deployment", "-operator")["spec"]["template"]["spec"])[0]
    # The probe asks kopf's liveness endpoint, served where INGESTION_OPERATOR_LIVENESS says.
    port = operator["ports"][0]["containerPort"]
    assert env_of(operator)["INGESTION_OPERATOR_LIVENESS"] == f"http://0.0.0.0:{port}/healthz"
    assert operator["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_batch_pods_are_bounded(value_set: list[Manifest]) -> None:
    """Jobs have no probes (a one-shot CLI serves no endpoint): a deadline and a retry limit bound them."""
    jobs = by_kind(value_set, "Job") + [c["spec"]["jobTemplate"] for c in by_kind(value_set, "CronJob")]
    assert len(jobs) == 2
    for job in jobs:
        assert job["spec"]["activeDeadlineSeconds"] > 0
        assert 0 < job["spec"]["backoffLimit"] <= 10
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert "ttlSecondsAfterFinished" not in job["spec"]  # helm would recreate a collected Job on upgrade


def test_images_and_pull_policies_come_from_values(render: Render) -> None:
    overrides = {
        name: {
            "image": {"repository": f"registry.example.com/{name}", "tag": f"1.0.{i}", "pullPolicy": "Always"}
        }
        for i, name in enumerate(OUR_IMAGES)
    }
    for workload, pod in pod_specs(render((), (overrides,))):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        (container,) = pod["containers"]
        i = list(OUR_IMAGES).index(component)
        assert container["image"] == f"registry.example.com/{component}:1.0.{i}"
        assert container["imagePullPolicy"] == "Always"


def test_default_images_are_tagged_with_the_app_version(value_set: list[Manifest]) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for workload, pod in pod_specs(value_set):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        (container,) = pod["containers"]
        repository, tag = container["image"].rsplit(":", 1)
        assert repository == OUR_IMAGES[component]
        assert tag in (app_version, "dev") and tag != "latest"


def test_only_the_operator_gets_an_api_token(value_set: list[Manifest]) -> None:
    components = set()
    for workload, pod in pod_specs(value_set):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        assert pod["automountServiceAccountToken"] is (component == "operator")
        assert pod["serviceAccountName"] == f"{RELEASE}-{component}"
        components.add(component)
    accounts = {sa["metadata"]["name"] for sa in by_kind(value_set, "ServiceAccount")}
    assert accounts == {f"{RELEASE}-{c}" for c in components}
    assert components - {"intake"} == set(OUR_IMAGES) - {"intake"}  # the intake is off by default


# --- RBAC ------------------------------------------------------------------------------------------------


def _rules(manifests: list[Manifest], kind: str) -> list[dict[str, Any]]:
    return [rule for role in by_kind(manifests, kind) for rule in role["rules"]]


def test_rbac_has_no_wildcards(value_set: list[Manifest]) -> None:
    for kind in ("Role", "ClusterRole"):
        for rule in _rules(value_set, kind):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field] and not any("*" in item for item in rule[field]), rule
            assert "resourceNames" not in rule or rule["resourceNames"]


def test_cluster_role_only_observes_what_kopf_needs(value_set: list[Manifest]) -> None:
    (cluster_role,) = by_kind(value_set, "ClusterRole")
    granted = {
        (g, r, v)
        for rule in cluster_role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
    }
    (binding,) = by_kind(value_set, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NAMESPACE}
    ]


def test_operator_role_grants_what_the_operator_does_and_nothing_else(value_set: list[Manifest]) -> None:
    for role in by_kind(value_set, "Role"):
        granted = {
            (g, r, v)
            for rule in role["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }
        group = "observability.ingestion.dev"
        assert {(group, "ingestionsources", v) for v in ("get", "list", "watch", "patch")} <= granted
        assert (group, "ingestionsources/status", "patch") in granted
        assert (group, "ingestionsources/finalizers", "update") in granted
        children = (
            ("prometheusrules", "monitoring.coreos.com"),
            ("alertmanagerconfigs", "monitoring.coreos.com"),
            ("configmaps", ""),
        )
        for resource, group_name in children:
            for verb in ("get", "list", "watch", "create", "update", "delete"):
                assert (group_name, resource, verb) in granted
        assert ("", "events", "create") in granted
        # The notifications' Secrets: read by name, never listed nor watched.
        assert {(g, v) for g, r, v in granted if r == "secrets"} == {("", "get")}
        # spec.jobs: the selected Jobs watched and patched (finalizer, annotation), re-read before a run is
        # published; their pods listed by label (never read by name, nor their logs); CronJobs only listed.
        assert {(g, v) for g, r, v in granted if r == "jobs"} == {
            ("batch", "get"),
            ("batch", "list"),
            ("batch", "watch"),
            ("batch", "patch"),
        }
        assert {(g, v) for g, r, v in granted if r == "pods"} == {("", "list")}
        assert {(g, v) for g, r, v in granted if r == "cronjobs"} == {("batch", "list")}
        resources = {r for _, r, _ in granted}
        assert resources == {
            "ingestionsources",
            "ingestionsources/status",
            "ingestionsources/finalizers",
            "prometheusrules",
            "alertmanagerconfigs",
            "configmaps",
            "secrets",
            "events",
            "jobs",
            "pods",
            "cronjobs",
        }
        assert not any(v in ("escalate", "bind", "impersonate") for _, _, v in granted)


@pytest.mark.parametrize(
    ("watch", "expected"),
    [
        pytest.param([], [NAMESPACE], id="release-namespace"),
        pytest.param(["team-a", "team-b"], ["team-a", "team-b"], id="listed"),
        pytest.param([NAMESPACE, "team-a"], [NAMESPACE, "team-a"], id="release-and-listed"),
    ],
)
def test_operator_roles_follow_the_watched_namespaces(
    watch: list[str], expected: list[str], render: Render
) -> None:
    manifests = render((), ({"operator": {"watchNamespaces": watch}},))
    assert sorted(r["metadata"]["namespace"] for r in by_kind(manifests, "Role")) == sorted(expected)
    bindings = by_kind(manifests, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(expected)
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NAMESPACE}
        ]
    operator = containers(one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"])[0]
    assert env_of(operator)["INGESTION_OPERATOR_NAMESPACES"] == ",".join(expected)
    assert env_of(operator)["INGESTION_OPERATOR_STANDALONE"] == "true"
    deployment = one(manifests, "Deployment", "-operator")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}


# --- Prometheus and Grafana ------------------------------------------------------------------------------


MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def test_monitoring_objects_carry_the_release_label(value_set: list[Manifest]) -> None:
    found = [m for m in value_set if m["kind"] in MONITORING_KINDS]
    assert {m["kind"] for m in found} == set(MONITORING_KINDS)
    for manifest in found:
        assert manifest["metadata"]["labels"]["release"] == RELEASE, manifest["metadata"]["name"]


def test_release_label_follows_an_external_kube_prometheus_stack(render: Render) -> None:
    manifests = render((), ({"monitoring": {"releaseLabel": "kps", "extraLabels": {"team": "data"}}},))
    for manifest in (m for m in manifests if m["kind"] in MONITORING_KINDS):
        assert manifest["metadata"]["labels"]["release"] == "kps"
        assert manifest["metadata"]["labels"]["team"] == "data"
    operator = containers(one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"])[0]
    assert env_of(operator)["INGESTION_OPERATOR_RELEASE"] == "kps"  # the operator's rules get it too


def test_dashboard_configmaps_carry_the_sidecar_label(value_set: list[Manifest]) -> None:
    dashboards = [m for m in by_kind(value_set, "ConfigMap") if "dashboard" in m["metadata"]["name"]]
    assert len(dashboards) == 1
    (dashboard,) = dashboards
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Ingestion"
    generated = (CHART / "files" / "dashboards" / "ingestion-overview.json").read_text()
    assert json.loads(dashboard["data"]["ingestion-overview.json"]) == json.loads(generated)
    operator = containers(one(value_set, "Deployment", "-operator")["spec"]["template"]["spec"])[0]
    assert env_of(operator)["INGESTION_OPERATOR_DASHBOARD_LABEL"] == "grafana_dashboard=1"
    assert env_of(operator)["INGESTION_OPERATOR_FOLDER_ANNOTATION"] == "grafana_folder"


def test_prometheus_rule_is_the_generated_file_untouched(value_set: list[Manifest]) -> None:
    rule = one(value_set, "PrometheusRule")
    generated_text = (CHART / "files" / "rules" / "ingestion-rules.yaml").read_text()
    assert rule["spec"] == yaml.safe_load(generated_text)
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    # the seed's nine, IngestionExecutionBloquee, IngestionConsumerNonPret and the two volume alerts
    assert len(alerts) == 13
    descriptions = " ".join(a["annotations"].get("description", "") for a in alerts)
    assert "{{ $value }}" in descriptions and "{{ $labels.source }}" in descriptions


def test_consumer_is_scraped_as_job_ingestion_consumer(value_set: list[Manifest]) -> None:
    service = one(value_set, "Service", "-consumer")
    monitor = one(value_set, "ServiceMonitor", "-consumer")
    deployment = one(value_set, "Deployment", "-consumer")
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "ingestion-consumer"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert service["spec"]["ports"][0]["port"] == 8000
    rules_text = (CHART / "files" / "rules" / "ingestion-rules.yaml").read_text()
    assert 'up{job="ingestion-consumer"}' in rules_text


def test_business_series_drop_pod_and_instance(value_set: list[Manifest]) -> None:
    """The catalog's relabelings, exactly: they are what keeps one series per (source, objet) across pods."""
    [endpoint] = one(value_set, "ServiceMonitor", "-consumer")["spec"]["endpoints"]
    assert endpoint["metricRelabelings"] == list(catalog.BUSINESS_RELABELINGS)


def test_consumer_rollout_never_waits_for_a_partitionless_pod(value_set: list[Manifest]) -> None:
    strategy = one(value_set, "Deployment", "-consumer")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_disruption_budget_selects_the_consumer(value_set: list[Manifest]) -> None:
    pdb = one(value_set, "PodDisruptionBudget", "-consumer")
    pod_labels = one(value_set, "Deployment", "-consumer")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_grafana_gets_loki_and_prometheus_datasources_and_a_secret_password(
    value_set: list[Manifest],
) -> None:
    kps = standin(value_set, "kube-prometheus-stack")
    datasources = yaml.safe_load(kps["additionalDataSources"])
    (loki,) = [d for d in datasources if d["type"] == "loki"]
    assert loki["uid"] == "loki"
    assert loki["url"] == f"http://{RELEASE}-loki.{NAMESPACE}.svc:3100"
    assert kps["defaultDatasourceUid"] == "prometheus"
    secret = one(value_set, "Secret", "-grafana-admin")
    assert kps["adminExistingSecret"] == secret["metadata"]["name"]
    assert set(secret["data"]) == {"admin-user", "admin-password"}
    values_text = (CHART / "values.yaml").read_text() + KIND_VALUES.read_text()
    assert "adminPassword" not in values_text


def test_dashboard_datasources_are_the_provisioned_uids() -> None:
    dashboard = json.loads((CHART / "files" / "dashboards" / "ingestion-overview.json").read_text())
    uids: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict) and "uid" in node["datasource"]:
                uids.add(node["datasource"]["uid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    assert uids == {"prometheus", "loki"}


# --- wiring ----------------------------------------------------------------------------------------------


def test_consumer_and_producer_reach_the_strimzi_cluster_and_topics(value_set: list[Manifest]) -> None:
    kafka = one(value_set, "Kafka")
    cluster = kafka["metadata"]["name"]
    bootstrap = f"{cluster}-kafka-bootstrap.{NAMESPACE}.svc:{kafka['spec']['kafka']['listeners'][0]['port']}"
    topics = {t["spec"]["topicName"]: t for t in by_kind(value_set, "KafkaTopic")}
    assert set(topics) == {"ingestion-logs", "ingestion-logs.dlq", "ingestion-logs.state"}
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    assert one(value_set, "KafkaNodePool")["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    consumer = env_of(containers(one(value_set, "Deployment", "-consumer")["spec"]["template"]["spec"])[0])
    assert consumer["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    assert consumer["KAFKA_TOPIC"] == "ingestion-logs"
    assert consumer["KAFKA_DLQ_TOPIC"] == "ingestion-logs.dlq"
    assert consumer["KAFKA_GROUP_ID"] == "ingestion-consumer-group"
    assert consumer["KAFKA_STATE_TOPIC"] == "ingestion-logs.state"
    assert consumer["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert consumer["KAFKA_TRANSACTIONAL_ID"] == "$(KAFKA_GROUP_ID)-$(POD_NAME)"
    for _, pod in pod_specs(m for m in value_set if m["kind"] in ("Job", "CronJob")):
        producer = env_of(pod["containers"][0])
        assert producer["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
        assert producer["KAFKA_TOPIC"] == "ingestion-logs"
    assert kafka["spec"]["kafkaExporter"]["topicRegex"] == "ingestion-logs.*"
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_kafka_sizes_follow_the_values(render: Render) -> None:
    default = render()
    kind = render((KIND_VALUES,))
    assert one(default, "KafkaNodePool")["spec"]["replicas"] == 3
    assert one(default, "KafkaNodePool")["spec"]["storage"]["type"] == "persistent-claim"
    assert one(kind, "KafkaNodePool")["spec"]["replicas"] == 1
    assert one(kind, "KafkaNodePool")["spec"]["storage"] == {"type": "ephemeral", "sizeLimit": "2Gi"}
    assert {t["spec"]["replicas"] for t in by_kind(kind, "KafkaTopic")} == {1}
    assert one(kind, "Kafka")["spec"]["kafka"]["config"]["min.insync.replicas"] == 1
    retention = {
        t["spec"]["topicName"]: t["spec"]["config"].get("retention.ms")
        for t in by_kind(default, "KafkaTopic")
    }
    assert retention == {
        "ingestion-logs": "604800000",
        "ingestion-logs.dlq": "2592000000",
        "ingestion-logs.state": None,
    }


@pytest.mark.parametrize("partitions", [6, 12])
def test_state_topic_is_compacted_with_the_input_partitions(partitions: int, render: Render) -> None:
    topics = {
        t["spec"]["topicName"]: t["spec"]
        for t in by_kind(
            render((), ({"kafka": {"topics": {"logs": {"partitions": partitions}}}},)), "KafkaTopic"
        )
    }
    state = topics["ingestion-logs.state"]
    assert state["partitions"] == topics["ingestion-logs"]["partitions"] == partitions
    assert state["config"] == {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": "0",
        "segment.ms": "3600000",
    }


def test_loki_url_of_the_consumer_is_grafanas_loki_datasource(value_set: list[Manifest]) -> None:
    consumer = env_of(containers(one(value_set, "Deployment", "-consumer")["spec"]["template"]["spec"])[0])
    datasources = yaml.safe_load(standin(value_set, "kube-prometheus-stack")["additionalDataSources"])
    assert consumer["LOKI_URL"] == next(d["url"] for d in datasources if d["uid"] == "loki")


@pytest.mark.parametrize(
    ("release", "loki_service"),
    [
        pytest.param("ingestion", "ingestion-loki", id="plain"),
        pytest.param("my-loki", "my-loki", id="contains-loki"),
    ],
)
def test_loki_service_name_follows_the_loki_charts_rule(
    release: str, loki_service: str, render: Render
) -> None:
    manifests = render(release=release)
    consumer = env_of(containers(one(manifests, "Deployment", "-consumer")["spec"]["template"]["spec"])[0])
    url = f"http://{loki_service}.{NAMESPACE}.svc:3100"
    assert consumer["LOKI_URL"] == url
    datasources = yaml.safe_load(standin(manifests, "kube-prometheus-stack")["additionalDataSources"])
    assert datasources[0]["url"] == url
    assert standin(manifests, "kube-prometheus-stack")["adminExistingSecret"] == f"{release}-grafana-admin"


def test_loki_credentials_come_from_a_secret(render: Render) -> None:
    consumer = containers(
        one(render((), (FULL_OVERRIDES,)), "Deployment", "-consumer")["spec"]["template"]["spec"]
    )[0]
    env = {e["name"]: e for e in consumer["env"]}
    assert env["LOKI_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "loki-auth", "key": "password"}}
    assert env["LOKI_USERNAME"]["value"] == "ingest"
    assert env["LOKI_TENANT_ID"]["value"] == "ingestion"


def test_kafka_ui_points_at_the_bootstrap_service(render: Render) -> None:
    manifests = render((), (FULL_OVERRIDES,))
    config = yaml.safe_load(standin(manifests, "kafka-ui")["config.yml"])
    consumer = env_of(containers(one(manifests, "Deployment", "-consumer")["spec"]["template"]["spec"])[0])
    assert config["kafka"]["clusters"][0]["bootstrapServers"] == consumer["KAFKA_BOOTSTRAP_SERVERS"]


def test_producer_job_name_changes_only_with_its_spec(render: Render) -> None:
    def job_name(*overrides: dict[str, Any]) -> str:
        name: str = one(render((), overrides), "Job")["metadata"]["name"]
        return name

    base = job_name()
    assert base.startswith(f"{RELEASE}-producer-") and len(base) <= 63
    assert job_name({"consumer": {"logLevel": "DEBUG"}}) == base  # other parts: same Job, nothing re-sent
    assert job_name({"producer": {"image": {"tag": "0.2.0"}}}) != base
    assert job_name({"producer": {"rebaseTime": False}}) != base
    inline = {"producer": {"data": {"source": "inline", "inline": {"content": "[]"}}}}
    assert job_name(inline) != job_name(
        {"producer": {"data": {"source": "inline", "inline": {"content": "[{}]"}}}}
    )


def test_producer_reads_the_configured_data(render: Render) -> None:
    sample = one(render(), "Job")["spec"]["template"]["spec"]
    assert "LOGS_FILE_PATH" not in env_of(sample["containers"][0])  # the image's packaged sample
    assert sample["containers"][0]["args"] == ["--rebase-time"]

    manifests = render((), (FULL_OVERRIDES,))
    data = one(manifests, "ConfigMap", "-producer-data")
    assert data["data"] == {"runs.ndjson": '{"ID": 1}'}
    pod = one(manifests, "Job")["spec"]["template"]["spec"]
    assert env_of(pod["containers"][0])["LOGS_FILE_PATH"] == "/data/runs.ndjson"
    volume = next(v for v in pod["volumes"] if v["name"] == "data")
    assert volume["configMap"]["name"] == data["metadata"]["name"]

    pvc = {
        "producer": {
            "data": {
                "source": "persistentVolumeClaim",
                "persistentVolumeClaim": {"claimName": "runs", "path": "2025/logs.json"},
            }
        }
    }
    pod = one(render((), (pvc,)), "Job")["spec"]["template"]["spec"]
    assert env_of(pod["containers"][0])["LOGS_FILE_PATH"] == "/data/2025/logs.json"
    volume = next(v for v in pod["volumes"] if v["name"] == "data")
    assert volume["persistentVolumeClaim"] == {"claimName": "runs", "readOnly": True}


def test_producer_can_run_again_from_the_suspended_cronjob(value_set: list[Manifest]) -> None:
    cronjob = one(value_set, "CronJob", "-producer")
    job = one(value_set, "Job")
    assert cronjob["spec"]["suspend"] is True
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"] == job["spec"]["template"]["spec"]


def test_operator_render_defaults_are_a_valid_render_config(render: Render, tmp_path: Any) -> None:
    manifests = render((), (FULL_OVERRIDES,))
    defaults = one(manifests, "ConfigMap", "-operator-defaults")
    path = tmp_path / "defaults.yaml"
    path.write_text(defaults["data"]["defaults.yaml"])
    assert load_config(path).runbook_base_url == "https://runbooks.example.com/ingestion"
    operator = containers(one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"])[0]
    assert env_of(operator)["INGESTION_OPERATOR_DEFAULTS"] == "/etc/ingestion-operator/defaults.yaml"
    assert {"name": "defaults", "mountPath": "/etc/ingestion-operator", "readOnly": True} in operator[
        "volumeMounts"
    ]


def test_subcharts_can_be_left_out(render: Render) -> None:
    manifests = render(
        (),
        (
            {
                "strimzi-kafka-operator": {"enabled": False},
                "kube-prometheus-stack": {"enabled": False},
                "loki": {"enabled": False},
                "consumer": {"loki": {"url": "http://loki.monitoring.svc:3100"}},
                "monitoring": {"releaseLabel": "kube-prometheus-stack"},
            },
        ),
    )
    assert not [m for m in manifests if m["metadata"].get("labels", {}).get("standin")]
    assert not by_kind(manifests, "Secret")  # Grafana's secret goes with kube-prometheus-stack
    consumer = env_of(containers(one(manifests, "Deployment", "-consumer")["spec"]["template"]["spec"])[0])
    assert consumer["LOKI_URL"] == "http://loki.monitoring.svc:3100"


def test_every_object_has_the_standard_labels(value_set: list[Manifest]) -> None:
    for manifest in value_set:
        labels = manifest["metadata"].get("labels", {})
        if labels.get("standin"):
            continue
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "ingestion-observability", name
        assert labels["app.kubernetes.io/instance"] == RELEASE, name
        assert labels["app.kubernetes.io/managed-by"] == "Helm", name
        assert labels["helm.sh/chart"].startswith("ingestion-observability-"), name
        assert manifest["metadata"].get("namespace", NAMESPACE) in (NAMESPACE, "team-a") or manifest[
            "kind"
        ].startswith("Cluster")
        assert len(manifest["metadata"]["name"]) <= 63, name
