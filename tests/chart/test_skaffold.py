"""skaffold.yaml and kind/cluster.yaml agree with the chart: image names, value keys, values files, the
Services they port-forward to."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from .conftest import Render
from .support import CHART, NAMESPACE, RELEASE, REPO, by_kind, default_values, one, pod_specs

SKAFFOLD = REPO / "skaffold.yaml"
COMPONENTS = ("consumer", "producer", "operator")


def _config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SKAFFOLD.read_text())
    return data


def _release() -> dict[str, Any]:
    (release,) = _config()["deploy"]["helm"]["releases"]
    return dict(release)


def _sanitized(image: str) -> str:
    """skaffold's util.SanitizeHelmTemplateValue: the artifact name as a template variable suffix."""
    return re.sub(r"[./:-]", "_", image)


def test_config_version_and_local_unpushed_builds() -> None:
    config = _config()
    assert config["apiVersion"] == "skaffold/v4beta14"
    assert config["kind"] == "Config"
    assert config["build"]["local"]["push"] is False
    assert config["build"]["local"]["useBuildkit"] is True  # the Dockerfiles use RUN --mount


def test_each_image_is_built_from_its_dockerfile_in_the_repository_context() -> None:
    artifacts = {a["image"]: a for a in _config()["build"]["artifacts"]}
    assert set(artifacts) == {f"ingestion-observability/{c}" for c in COMPONENTS}
    for component in COMPONENTS:
        artifact = artifacts[f"ingestion-observability/{component}"]
        assert artifact.get("context", ".") == "."
        dockerfile = REPO / artifact["docker"]["dockerfile"]
        assert dockerfile == REPO / "images" / component / "Dockerfile" and dockerfile.is_file()


def test_value_templates_set_each_images_repository_and_tag() -> None:
    templates = _release()["setValueTemplates"]
    values = default_values()
    expected: dict[str, str] = {}
    for component in COMPONENTS:
        suffix = _sanitized(f"ingestion-observability/{component}")
        expected[f"{component}.image.repository"] = f"{{{{.IMAGE_REPO_{suffix}}}}}"
        expected[f"{component}.image.tag"] = f"{{{{.IMAGE_TAG_{suffix}}}}}"
        assert {"repository", "tag"} <= set(values[component]["image"])
    assert templates == expected


def test_release_uses_the_chart_and_its_kind_values() -> None:
    release = _release()
    assert release["name"] == RELEASE
    assert release["namespace"] == NAMESPACE
    assert REPO / release["chartPath"] == CHART
    assert [REPO / f for f in release["valuesFiles"]] == [CHART / "values-kind.yaml"]
    assert release["skipBuildDependencies"] is True  # `make chart-deps` runs helm dependency build once


def test_value_templates_drive_the_rendered_images(render: Render) -> None:
    """What skaffold passes with --set-string, given a build, ends up as the containers' images."""
    release = _release()
    built = {c: (f"ingestion-observability/{c}", f"abc{i}") for i, c in enumerate(COMPONENTS)}
    variables = {}
    for repo, tag in built.values():
        variables[f"IMAGE_REPO_{_sanitized(repo)}"] = repo
        variables[f"IMAGE_TAG_{_sanitized(repo)}"] = tag
    overrides: dict[str, Any] = {}
    for key, template in release["setValueTemplates"].items():
        value = re.sub(r"\{\{\.(\w+)\}\}", lambda m: variables[m[1]], template)
        node = overrides
        *parents, last = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    manifests = render((CHART / "values-kind.yaml",), (overrides,))
    for workload, pod in pod_specs(manifests):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        repo, tag = built[component]
        assert pod["containers"][0]["image"] == f"{repo}:{tag}"


def test_port_forwards_reach_grafana_prometheus_and_the_consumer(render: Render) -> None:
    forwards = {f["localPort"]: f for f in _config()["portForward"]}
    assert set(forwards) == {3000, 9090, 8000}
    for forward in forwards.values():
        assert forward["resourceType"] == "service" and forward["namespace"] == NAMESPACE
    manifests = render((CHART / "values-kind.yaml",))
    consumer = one(manifests, "Service", "-consumer")
    assert forwards[8000]["resourceName"] == consumer["metadata"]["name"]
    assert forwards[8000]["port"] == consumer["spec"]["ports"][0]["port"]
    # Services of the subcharts (not rendered here): grafana's "<release>-grafana" on 80, and the Service
    # prometheus-operator creates for every Prometheus.
    assert forwards[3000]["resourceName"] == f"{RELEASE}-grafana" and forwards[3000]["port"] == 80
    assert forwards[9090]["resourceName"] == "prometheus-operated" and forwards[9090]["port"] == 9090


def _apply_patches(config: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-patch subset skaffold profiles here use (add to an object key or the end of a list)."""
    result = copy.deepcopy(config)
    for patch in patches:
        assert patch["op"] == "add"
        *parents, last = patch["path"].strip("/").split("/")
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if last == "-":
            node.append(patch["value"])
        else:
            node[last] = patch["value"]
    return result


def test_kafka_ui_profile_enables_the_subchart_and_forwards_it(render: Render) -> None:
    config = _config()
    (profile,) = [p for p in config["profiles"] if p["name"] == "kafka-ui"]
    patched = _apply_patches(config, profile["patches"])
    (release,) = patched["deploy"]["helm"]["releases"]
    assert release["setValues"] == {"kafka-ui.enabled": True}
    assert default_values()["kafka-ui"]["enabled"] is False
    forward = patched["portForward"][-1]
    assert forward["resourceName"] == f"{RELEASE}-kafka-ui" and forward["localPort"] == 8080
    manifests = render((CHART / "values-kind.yaml",), ({"kafka-ui": {"enabled": True}},))
    assert [m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"] == "standin-kafka-ui"]


def test_kind_cluster_config() -> None:
    config = yaml.safe_load((REPO / "kind" / "cluster.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["name"] == "ingestion-observability"
    assert [node["role"] for node in config["nodes"]] == ["control-plane"]
