"""values.yaml is documented line by line, and values.schema.json rejects bad values (one case per rule)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from .conftest import FULL_OVERRIDES, KIND_VALUES, Render, RenderError
from .support import CHART, default_values, need

_KEY = re.compile(r'^(?P<indent> *)(?P<key>"[^"]+"|[A-Za-z0-9_./-]+):(?: |$)')
_ITEM = re.compile(r"^(?P<indent> *)- ")


def undocumented_keys(text: str) -> list[str]:
    """Keys of a values file not preceded by a comment block holding a helm-docs `# --` line.
    Keys inside list items (e.g. a datasource) are the item's, documented by the list's key."""
    missing: list[str] = []
    lines = text.splitlines()
    item_indent: int | None = None
    for number, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if item_indent is not None and indent > item_indent:
            continue
        item_indent = None
        if match := _ITEM.match(line):
            item_indent = len(match["indent"])
            continue
        match = _KEY.match(line)
        if not match:
            continue
        block: list[str] = []
        above = number - 1
        while above >= 0 and lines[above].lstrip().startswith("#"):
            block.append(lines[above].strip())
            above -= 1
        if not any(comment.startswith("# --") for comment in block):
            missing.append(f"line {number + 1}: {match['key']}")
    return missing


@pytest.mark.parametrize("name", ["values.yaml", "values-kind.yaml"])
def test_every_value_is_documented(name: str) -> None:
    assert undocumented_keys((CHART / name).read_text()) == []


def test_documentation_check_finds_an_undocumented_key() -> None:
    text = "# -- documented\na: 1\nb:\n  # -- documented\n  c: 2\n  d: 3\nlist:\n  - x: 1\n    y: 2\n"
    assert undocumented_keys(text) == ["line 3: b", "line 6: d", "line 7: list"]


def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return data


def test_schema_is_valid_draft7_and_accepts_our_values_files() -> None:
    jsonschema = need("jsonschema")
    schema = _schema()
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    base = default_values()
    assert list(validator.iter_errors(base)) == []
    kind = yaml.safe_load(KIND_VALUES.read_text())
    merged = _merge(base, kind)
    assert [e.message for e in validator.iter_errors(merged)] == []
    assert [e.message for e in validator.iter_errors(_merge(base, FULL_OVERRIDES))] == []


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return override


def _set(path: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} from "a.b" (a key holding dots goes in brackets: "kafka.config.[min.insync]")."""
    keys = [k.strip("[]") for k in re.findall(r"\[[^\]]+\]|[^.]+", path)]
    out: dict[str, Any] = {}
    node = out
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return out


# (id, override path, bad value, the JSON pointer helm reports). One case per rule of values.schema.json.
# A None value deletes the key (helm merges overrides into the defaults, null removes).
SCHEMA_CASES: list[tuple[str, str, Any, str]] = [
    ("unknown-top-level-key", "consumerr", {}, ""),
    ("unknown-component-key", "consumer.replicas", 2, "/consumer"),
    (
        "pod-runs-as-root-allowed",
        "podSecurityContext.runAsNonRoot",
        False,
        "/podSecurityContext/runAsNonRoot",
    ),
    ("pod-uid-0", "podSecurityContext.runAsUser", 0, "/podSecurityContext/runAsUser"),
    (
        "pod-seccomp-unconfined",
        "podSecurityContext.seccompProfile.type",
        "Unconfined",
        "/podSecurityContext/seccompProfile/type",
    ),
    (
        "writable-root-fs",
        "containerSecurityContext.readOnlyRootFilesystem",
        False,
        "/containerSecurityContext/readOnlyRootFilesystem",
    ),
    (
        "privilege-escalation",
        "containerSecurityContext.allowPrivilegeEscalation",
        True,
        "/containerSecurityContext/allowPrivilegeEscalation",
    ),
    (
        "container-root-allowed",
        "containerSecurityContext.runAsNonRoot",
        False,
        "/containerSecurityContext/runAsNonRoot",
    ),
    ("privileged", "containerSecurityContext.privileged", True, "/containerSecurityContext/privileged"),
    (
        "capabilities-not-all-dropped",
        "containerSecurityContext.capabilities.drop",
        ["NET_RAW"],
        "/containerSecurityContext/capabilities/drop",
    ),
    (
        "capabilities-added",
        "containerSecurityContext.capabilities.add",
        ["NET_ADMIN"],
        "/containerSecurityContext/capabilities/add",
    ),
    ("no-memory-limit", "consumer.resources.limits.memory", None, "/consumer/resources/limits"),
    ("no-limits", "operator.resources.limits", None, "/operator/resources"),
    ("bad-quantity", "producer.resources.requests.memory", "lots", "/producer/resources/requests/memory"),
    ("bad-pull-policy", "consumer.image.pullPolicy", "Sometimes", "/consumer/image/pullPolicy"),
    ("empty-repository", "operator.image.repository", "", "/operator/image/repository"),
    ("bad-tag", "producer.image.tag", "not a tag", "/producer/image/tag"),
    ("privileged-port", "consumer.metricsPort", 80, "/consumer/metricsPort"),
    ("bad-log-level", "consumer.logLevel", "verbose", "/consumer/logLevel"),
    ("loki-url-without-scheme", "consumer.loki.url", "loki:3100", "/consumer/loki/url"),
    ("negative-replicas", "consumer.replicaCount", -1, "/consumer/replicaCount"),
    (
        "short-grace-period",
        "consumer.terminationGracePeriodSeconds",
        5,
        "/consumer/terminationGracePeriodSeconds",
    ),
    (
        "bad-scrape-interval",
        "consumer.serviceMonitor.interval",
        "30 seconds",
        "/consumer/serviceMonitor/interval",
    ),
    (
        "pdb-blocks-nothing",
        "consumer.podDisruptionBudget.maxUnavailable",
        0,
        "/consumer/podDisruptionBudget/maxUnavailable",
    ),
    ("env-without-name", "consumer.extraEnv", [{"value": "x"}], "/consumer/extraEnv/0"),
    ("probe-period-zero", "consumer.livenessProbe.periodSeconds", 0, "/consumer/livenessProbe/periodSeconds"),
    ("service-account-bad-name", "consumer.serviceAccount.name", "Bad_Name", "/consumer/serviceAccount/name"),
    ("no-kafka-node", "kafka.replicas", 0, "/kafka/replicas"),
    ("bad-storage-type", "kafka.storage.type", "hostPath", "/kafka/storage/type"),
    ("pvc-without-size", "kafka.storage.size", "", "/kafka/storage/size"),
    ("bad-kafka-version", "kafka.version", "latest", "/kafka/version"),
    ("bad-cluster-name", "kafka.clusterName", "Kafka_Cluster", "/kafka/clusterName"),
    ("bad-node-role", "kafka.nodePool.roles", ["zookeeper"], "/kafka/nodePool/roles/0"),
    ("listener-port-below-9092", "kafka.listener.port", 80, "/kafka/listener/port"),
    ("bootstrap-without-port", "kafka.externalBootstrapServers", "kafka", "/kafka/externalBootstrapServers"),
    ("bad-topic-name", "kafka.topics.logs.name", "bad topic!", "/kafka/topics/logs/name"),
    ("topic-without-partition", "kafka.topics.logs.partitions", 0, "/kafka/topics/logs/partitions"),
    (
        "unknown-topic",
        "kafka.topics.audit",
        {"name": "a", "partitions": 1, "replicas": 1, "retentionMs": 1},
        "/kafka/topics",
    ),
    ("missing-dlq-topic", "kafka.topics.dlq", None, "/kafka/topics"),
    ("state-topic-own-partitions", "kafka.topics.state.partitions", 3, "/kafka/topics/state"),
    (
        "negative-compaction-lag",
        "kafka.topics.state.minCompactionLagMs",
        -1,
        "/kafka/topics/state/minCompactionLagMs",
    ),
    ("bad-podmonitor-interval", "kafka.podMonitor.interval", "often", "/kafka/podMonitor/interval"),
    ("unknown-data-source", "producer.data.source", "s3", "/producer/data/source"),
    ("configmap-source-without-name", "producer.data.source", "configMap", "/producer/data/configMap/name"),
    (
        "pvc-source-without-claim",
        "producer.data.source",
        "persistentVolumeClaim",
        "/producer/data/persistentVolumeClaim/claimName",
    ),
    ("inline-source-without-content", "producer.data.source", "inline", "/producer/data/inline/content"),
    (
        "absolute-pvc-path",
        "producer.data.persistentVolumeClaim.path",
        "/etc/passwd",
        "/producer/data/persistentVolumeClaim/path",
    ),
    ("zero-speed", "producer.speed", 0, "/producer/speed"),
    ("short-job-deadline", "producer.job.activeDeadlineSeconds", 10, "/producer/job/activeDeadlineSeconds"),
    ("empty-schedule", "producer.cronJob.schedule", "", "/producer/cronJob/schedule"),
    ("bad-watched-namespace", "operator.watchNamespaces", ["Bad_NS"], "/operator/watchNamespaces/0"),
    ("duplicate-watched-namespace", "operator.watchNamespaces", ["a", "a"], "/operator/watchNamespaces"),
    ("operator-privileged-port", "operator.healthPort", 80, "/operator/healthPort"),
    ("zero-resync", "operator.resyncSeconds", 0, "/operator/resyncSeconds"),
    ("operator-jobs-unknown-key", "operator.jobs.intakeURL", "http://i:5000", "/operator/jobs"),
    (
        "operator-intake-url-without-scheme",
        "operator.jobs.intakeUrl",
        "intake:5000",
        "/operator/jobs/intakeUrl",
    ),
    (
        "operator-token-secret-bad-name",
        "operator.jobs.tokenSecret.name",
        "Intake_Tokens",
        "/operator/jobs/tokenSecret/name",
    ),
    (
        "operator-token-secret-bad-key",
        "operator.jobs.tokenSecret.key",
        "a/b",
        "/operator/jobs/tokenSecret/key",
    ),
    (
        "operator-zero-publish-timeout",
        "operator.jobs.publishTimeoutSeconds",
        0,
        "/operator/jobs/publishTimeoutSeconds",
    ),
    (
        "operator-endless-publish-timeout",
        "operator.jobs.publishTimeoutSeconds",
        3600,
        "/operator/jobs/publishTimeoutSeconds",
    ),
    (
        "source-without-spec-source",
        "ingestionSources",
        [{"name": "x", "spec": {"objets": ["a"]}}],
        "/ingestionSources/0/spec",
    ),
    (
        "source-bad-name",
        "ingestionSources",
        [{"name": "PowerBI", "spec": {"source": "PowerBI"}}],
        "/ingestionSources/0/name",
    ),
    (
        "source-unknown-key",
        "ingestionSources",
        [{"name": "x", "labels": {}, "spec": {"source": "x"}}],
        "/ingestionSources/0",
    ),
    (
        "grafana-password-literal",
        "kube-prometheus-stack.grafana.adminPassword",
        "hunter2",
        "/kube-prometheus-stack/grafana",
    ),
    (
        "grafana-no-admin-secret",
        "kube-prometheus-stack.grafana.admin.existingSecret",
        "",
        "/kube-prometheus-stack/grafana/admin/existingSecret",
    ),
    ("subchart-enabled-not-boolean", "loki.enabled", "yes", "/loki/enabled"),
    ("bad-release-label", "monitoring.releaseLabel", "-bad-", "/monitoring/releaseLabel"),
    ("bad-dashboard-label", "dashboards.label", "bad label", "/dashboards/label"),
    ("bad-name-override", "nameOverride", "Bad", "/nameOverride"),
    ("pull-secret-without-name", "imagePullSecrets", [{}], "/imagePullSecrets/0"),
    ("label-value-too-long", "commonLabels", {"team": "x" * 64}, "/commonLabels/team"),
]


@pytest.mark.parametrize(
    ("path", "value", "pointer"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES]
)
def test_schema_rejects(path: str, value: Any, pointer: str, render_error: RenderError) -> None:
    error = render_error((), (_set(path, value),))
    assert "values don't meet the specifications of the schema" in error, error
    assert f"at '{pointer}'" in error, error


def test_schema_cases_cover_distinct_rules() -> None:
    ids = [case[0] for case in SCHEMA_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"kafka": {"topics": {"logs": {"replicas": 5}}}}, "exceeds kafka.replicas", id="topic-replicas"
        ),
        pytest.param(
            {"kafka": {"config": {"min.insync.replicas": 3}, "topics": {"dlq": {"replicas": 2}}}},
            "every acks=all write would fail",
            id="min-insync",
        ),
        pytest.param(
            {"consumer": {"replicaCount": 7}},
            "a consumer without a partition is never Ready",
            id="idle-consumer",
        ),
        pytest.param({"kafka": {"enabled": False}}, "set kafka.externalBootstrapServers", id="no-kafka"),
        pytest.param({"loki": {"enabled": False}}, "set consumer.loki.url", id="no-loki"),
        pytest.param(
            {"kube-prometheus-stack": {"grafana": {"admin": {"existingSecret": "mine"}}}},
            "the Secret this chart creates",
            id="grafana-secret-mismatch",
        ),
    ],
)
def test_template_checks_across_values(
    overrides: dict[str, Any], message: str, render_error: RenderError
) -> None:
    assert message in render_error((), (overrides,))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"kafka": {"enabled": False, "externalBootstrapServers": "kafka-0:9092,kafka-1:9092"}},
            id="external-kafka",
        ),
        pytest.param(
            {"loki": {"enabled": False}, "consumer": {"loki": {"url": "https://logs.example.com"}}},
            id="external-loki",
        ),
        pytest.param(
            {"producer": {"data": {"source": "configMap", "configMap": {"name": "runs"}}}},
            id="configmap-data",
        ),
        pytest.param(
            {
                "producer": {
                    "data": {
                        "source": "persistentVolumeClaim",
                        "persistentVolumeClaim": {"claimName": "runs"},
                    }
                }
            },
            id="pvc-data",
        ),
        pytest.param({"kafka": {"storage": {"type": "ephemeral"}}}, id="ephemeral-kafka"),
        pytest.param(
            {
                "grafanaAdmin": {"createSecret": False},
                "kube-prometheus-stack": {"grafana": {"admin": {"existingSecret": "mine"}}},
            },
            id="own-grafana-secret",
        ),
        pytest.param({"consumer": {"podDisruptionBudget": {"maxUnavailable": "50%"}}}, id="pdb-percent"),
    ],
)
def test_schema_accepts_the_documented_alternatives(overrides: dict[str, Any], render: Render) -> None:
    assert render((), (overrides,))


def test_kind_values_only_override_existing_keys() -> None:
    """values-kind.yaml changes values of values.yaml; a typo there would silently be a new, unused key."""

    def paths(node: Any, prefix: str = "") -> set[str]:
        if not isinstance(node, dict) or not node:
            return {prefix}
        out: set[str] = set()
        for key, value in node.items():
            out |= paths(value, f"{prefix}.{key}" if prefix else str(key))
        return out

    base = default_values()
    subcharts = {"strimzi-kafka-operator", "kube-prometheus-stack", "loki", "kafka-ui"}
    for path in paths(yaml.safe_load(KIND_VALUES.read_text())):
        if path.split(".")[0] in subcharts:
            continue  # the subcharts' own keys: their schemas and docs apply
        node: Any = base
        for key in _split_known(path, base):
            if node == {}:
                break  # a free-form map in values.yaml (jvmOptions, config ...)
            assert isinstance(node, dict) and key in node, f"values-kind.yaml: {path} is not in values.yaml"
            node = node[key]


def _split_known(path: str, base: dict[str, Any]) -> list[str]:
    """Split a dotted path whose keys may contain dots (kafka.config.min.insync.replicas)."""
    parts = path.split(".")
    keys: list[str] = []
    node: Any = base
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            candidate = ".".join(parts[i:j])
            if isinstance(node, dict) and candidate in node:
                keys.append(candidate)
                node = node[candidate]
                i = j
                break
        else:
            keys.append(parts[i])
            return keys
    return keys
