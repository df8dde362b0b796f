"""Shared by the operator tests: the CRD, the examples, and IngestionSource objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ingestion_operator.children import GROUP, KIND, VERSION

ROOT = Path(__file__).parents[2]
CRD_FILE = ROOT / "charts/ingestion-observability/crds/ingestionsources.observability.ingestion.dev.yaml"
EXAMPLES = ROOT / "k8s-operator/examples"


def crd() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    return data


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def source(name: str, spec: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}


def with_schema_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """`value` defaulted as the API server does: a property's default when absent, recursively
    (an object defaulted to {} gets its own properties' defaults)."""
    if schema.get("type") != "object" or not isinstance(value, dict):
        return value
    result = dict(value)
    for name, prop in schema.get("properties", {}).items():
        if name not in result and "default" in prop:
            result[name] = prop["default"]
        if name in result:
            result[name] = with_schema_defaults(result[name], prop)
    return result
