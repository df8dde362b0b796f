"""Every rendered manifest is valid: built-in kinds against Kubernetes' schemas (kubernetes-validate, strict:
unknown fields are errors), custom resources against their CRDs (prometheus-operator's, Strimzi's, ours)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import FULL_OVERRIDES, Render
from .support import KUBE_VERSION, Manifest, crd_errors, crd_schemas, need

_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {}


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    if not _SCHEMAS:
        _SCHEMAS.update(crd_schemas())
    return _SCHEMAS


def _is_custom(manifest: Manifest) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in _crd_schemas()


def test_builtin_kinds_match_kubernetes_schemas(value_set: list[Manifest]) -> None:
    kubernetes_validate = need("kubernetes_validate")
    errors: list[str] = []
    for manifest in value_set:
        if _is_custom(manifest):
            continue
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            errors.append(f"{name}: {'/'.join(map(str, err.path))}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"{name}: {manifest['apiVersion']} is no Kubernetes {KUBE_VERSION} kind nor a known CRD"
            )
    assert errors == []


def test_custom_resources_match_their_crds(value_set: list[Manifest]) -> None:
    custom = [m for m in value_set if _is_custom(m)]
    kinds = {(m["apiVersion"], m["kind"]) for m in custom}
    assert {
        ("kafka.strimzi.io/v1", "Kafka"),
        ("kafka.strimzi.io/v1", "KafkaNodePool"),
        ("kafka.strimzi.io/v1", "KafkaTopic"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    } <= kinds
    errors = {f"{m['kind']}/{m['metadata']['name']}": crd_errors(m, _crd_schemas()) for m in custom}
    assert {name: errs for name, errs in errors.items() if errs} == {}


def test_ingestion_sources_match_our_crd(render: Render) -> None:
    sources = [m for m in render((), (FULL_OVERRIDES,)) if m["kind"] == "IngestionSource"]
    assert [s["metadata"]["name"] for s in sources] == ["powerbi", "sharepoint"]
    assert [s["metadata"]["namespace"] for s in sources] == ["ingestion", "team-a"]
    for source in sources:
        assert source["apiVersion"] == "observability.ingestion.dev/v1alpha1"
        assert crd_errors(source, _crd_schemas()) == []


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        pytest.param(
            {
                "apiVersion": "kafka.strimzi.io/v1",
                "kind": "KafkaTopic",
                "metadata": {"name": "t"},
                "spec": {"partitions": "six"},
            },
            "spec/partitions",
            id="wrong-type",
        ),
        pytest.param(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "s"},
                "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "15s"}]},
            },
            "intervall",
            id="unknown-field",
        ),
        pytest.param(
            {
                "apiVersion": "observability.ingestion.dev/v1alpha1",
                "kind": "IngestionSource",
                "metadata": {"name": "s"},
                "spec": {"objets": ["a"]},
            },
            "source",
            id="missing-required",
        ),
    ],
)
def test_crd_validation_catches_mistakes(manifest: Manifest, fragment: str) -> None:
    assert any(fragment in error for error in crd_errors(manifest, _crd_schemas()))


def test_kubernetes_validation_catches_unknown_fields() -> None:
    kubernetes_validate = need("kubernetes_validate")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "livenesProbe": {}}]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
