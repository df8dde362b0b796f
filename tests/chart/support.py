"""Helpers of the chart tests: a renderable copy of the chart (devstack/chart.py: its dependencies are
local stand-ins), helm, and schema validation of manifests.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# The chart and its copy are devstack/chart.py's (make cluster-up installs it too); CHART, REPO and
# default_values stay importable from here for the chart tests that read them.
from devstack.chart import CHART as CHART
from devstack.chart import REPO as REPO
from devstack.chart import default_values as default_values
from devstack.kube import crd_files as kube_crd_files
from devstack.kube import load_manifests
from devstack.tools import binary

RELEASE = "ingestion-observability"
NAMESPACE = "ingestion"
# The Kubernetes version of the tools' kube-apiserver (scripts/tools/40-kube.sh) and of our schema checks.
KUBE_VERSION = "1.36.0"

Manifest = dict[str, Any]


def need(module: str) -> Any:
    """Import a dev-extras package that ships no type hints (as Any)."""
    return importlib.import_module(module)


def helm_binary() -> Path:
    return binary("helm")


def helm_env(home: Path) -> dict[str, str]:
    """An environment where helm keeps its config, cache and data under `home` (no user repositories)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update(
        {
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        }
    )
    return env


def run_helm(
    args: Sequence[str | Path], *, home: Path, check: bool = True, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = helm_env(home)
    env.update(extra_env or {})
    proc = subprocess.run(
        [str(helm_binary()), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def values_args(
    values_files: Iterable[Path | str] = (), overrides: Iterable[Mapping[str, Any]] = (), *, tmp: Path
) -> list[str]:
    """-f arguments: the given files, then each override mapping written to a JSON file in `tmp`."""
    args: list[str] = []
    for file in values_files:
        args += ["-f", str(file)]
    for i, override in enumerate(overrides):
        path = tmp / f"override-{os.getpid()}-{id(override)}-{i}.json"
        path.write_text(json.dumps(override))
        args += ["-f", str(path)]
    return args


def parse_manifests(text: str) -> list[Manifest]:
    """Read as Kubernetes does (an unquoted `=`, as in a matcher's matchType, is a string)."""
    return [doc for doc in load_manifests(text) if isinstance(doc, dict)]


def by_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def one(manifests: Iterable[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = [m for m in by_kind(manifests, kind) if m["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (
        f"expected one {kind} *{name_suffix}, got {[m['metadata']['name'] for m in found]}"
    )
    return found[0]


def standin(manifests: Iterable[Manifest], name: str) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap", f"standin-{name}")["data"]
    return data


def pod_specs(manifests: Iterable[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    """(workload, pod spec) of every Deployment, StatefulSet, DaemonSet, Job and CronJob."""
    for m in manifests:
        kind = m.get("kind")
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield m, m["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield m, m["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- schemas of custom resources ------------------------------------------------------------------------


def crd_files() -> list[Path]:
    """Every CRD the chart's objects need: prometheus-operator's, Strimzi's (the tools cache) and ours."""
    return [*kube_crd_files("prometheus-operator", "strimzi"), *sorted((CHART / "crds").glob("*.yaml"))]


def _to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 (structural CRD) schema as a JSON Schema draft 4 one, strict like the API server:
    objects with `properties` accept no other field unless x-kubernetes-preserve-unknown-fields says so."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "example", "externalDocs", "default"):
            continue
        if key == "properties":
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _to_json_schema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    out.pop("nullable", None)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(files: Iterable[Path] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → JSON schema of every served version of the CRDs in `files`."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for file in crd_files() if files is None else files:
        for doc in load_manifests(file.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served"):
                    continue
                schema = _to_json_schema(version["schema"]["openAPIV3Schema"])
                # metadata is validated by the API server itself, not by the CRD's schema.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return schemas


def crd_errors(manifest: Manifest, schemas: Mapping[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Violations of the CRD schema (not its CEL rules: the API server checks those in test_install)."""
    schema = schemas[(manifest["apiVersion"], manifest["kind"])]
    validator = need("jsonschema").Draft4Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))
    ]
