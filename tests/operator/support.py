"""Shared by the operator tests: the CRD, the examples, IngestionSource objects, an in-memory API."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ingestion_operator.apply import ApplyError
from ingestion_operator.children import API_VERSION, KIND, Kind

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
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


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


class FakeApi:
    """Stores objects like the API server does (uid, resourceVersion) and records every write."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[str] = []
        self.version = 0
        self.create_race: dict[str, Any] | None = None  # created by "someone else" just before our create
        self.replace_race: dict[str, Any] | None = None  # written by "someone else" just before our replace
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}  # (namespace, name) -> data
        self.secret_reads: list[str] = []
        self.cronjobs: dict[str, list[dict[str, Any]]] = {}  # namespace -> its CronJobs
        self.cronjobs_error: ApplyError | None = None  # raised by list_cronjobs (e.g. Forbidden)
        self.cronjob_reads: list[str] = []

    def _store(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored["metadata"].setdefault("uid", f"child-{self.version}")
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(kind.kind, namespace, stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind.kind, namespace, name))
        return copy.deepcopy(found)

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if self.create_race is not None:
            self._store(kind, namespace, self.create_race)
            self.create_race = None
        if (kind.kind, namespace, body["metadata"]["name"]) in self.objects:
            raise ApplyError("already exists", reason="AlreadyExists", retryable=True)
        self.writes.append("create")
        return self._store(kind, namespace, body)

    def replace(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if self.replace_race is not None:
            self._store(kind, namespace, self.replace_race)
            self.replace_race = None
        live = self.objects[(kind.kind, namespace, body["metadata"]["name"])]
        if body["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"]:
            raise ApplyError("conflict", reason="Conflict", retryable=True)
        self.writes.append("replace")
        return self._store(kind, namespace, body)

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        self.secret_reads.append(f"{namespace}/{name}")
        data = self.secrets.get((namespace, name))
        return None if data is None else frozenset(key for key, value in data.items() if value)

    def list_cronjobs(self, namespace: str) -> list[dict[str, Any]]:
        self.cronjob_reads.append(namespace)
        if self.cronjobs_error is not None:
            raise self.cronjobs_error
        return copy.deepcopy(self.cronjobs.get(namespace, []))

    def delete(self, kind: Kind, namespace: str, name: str, uid: str, resource_version: str) -> None:
        live = self.objects[(kind.kind, namespace, name)]
        assert (live["metadata"]["uid"], live["metadata"]["resourceVersion"]) == (uid, resource_version)
        self.writes.append("delete")
        del self.objects[(kind.kind, namespace, name)]
