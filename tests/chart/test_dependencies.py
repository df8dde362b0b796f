"""Chart.yaml's dependencies and Chart.lock: pinned, each behind a condition, and a lock helm accepts.

Chart.lock was written without network, so its digest is computed here the way helm does
(helm.sh/helm/v3/internal/resolver.HashReq: sha256 of Go's json.Marshal([2][]*chart.Dependency{req, lock})),
this implementation is checked against helm itself on local file:// dependencies, and `helm dependency build`
is run on the real Chart.lock: it verifies the digest before it needs any repository.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from devstack.chart import CHART, chart_lock, chart_yaml, default_values

from .support import run_helm


def _go_dependency(dep: dict[str, Any], *, locked: bool) -> dict[str, Any]:
    """helm's chart.Dependency as encoding/json marshals it: field order, omitempty, repository always."""
    out: dict[str, Any] = {"name": dep["name"]}
    if dep.get("version"):
        out["version"] = dep["version"]
    out["repository"] = dep.get("repository", "")
    if locked:
        return out
    for key in ("condition", "tags", "enabled", "import-values", "alias"):
        if dep.get(key):
            out[key] = dep[key]
    return out


def hash_req(req: list[dict[str, Any]], lock: list[dict[str, Any]]) -> str:
    data = [[_go_dependency(d, locked=False) for d in req], [_go_dependency(d, locked=True) for d in lock]]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Go's encoder escapes these for HTML safety.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_every_dependency_is_pinned_and_conditional() -> None:
    values = default_values()
    for dep in chart_yaml()["dependencies"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", dep["version"]), f"{dep['name']}: pin an exact version"
        assert dep["condition"] == f"{dep['name']}.enabled", dep
        assert isinstance(values[dep["name"]]["enabled"], bool), f"values.yaml: {dep['name']}.enabled"
    assert values["kafka-ui"]["enabled"] is False  # optional, off by default
    names = [dep["name"] for dep in chart_yaml()["dependencies"]]
    assert names == ["strimzi-kafka-operator", "kube-prometheus-stack", "loki", "kafka-ui"]


def test_chart_lock_lists_the_chart_yaml_versions() -> None:
    wanted = [(d["name"], d["repository"], d["version"]) for d in chart_yaml()["dependencies"]]
    locked = [(d["name"], d["repository"], d["version"]) for d in chart_lock()["dependencies"]]
    assert locked == wanted


def test_chart_lock_digest_is_helms_hash_of_the_dependencies() -> None:
    lock = chart_lock()
    assert lock["digest"] == hash_req(chart_yaml()["dependencies"], lock["dependencies"])


def test_hash_implementation_agrees_with_helm(tmp_path: Path, helm_home: Path) -> None:
    """helm dependency update on local charts (no network) writes a Chart.lock: our hash equals its digest,
    with a version range (escaped "<"), an alias, a condition and tags."""
    for name, version in (("alpha", "1.2.3"), ("beta", "0.51.0")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    parent = tmp_path / "parent"
    parent.mkdir()
    dependencies: list[dict[str, Any]] = [
        {
            "name": "alpha",
            "version": ">=1.0.0 <2.0.0",
            "repository": "file://../alpha",
            "condition": "alpha.enabled",
        },
        {
            "name": "beta",
            "version": "0.51.0",
            "repository": "file://../beta",
            "alias": "b-x",
            "tags": ["extra"],
        },
    ]
    chart = {"apiVersion": "v2", "name": "parent", "version": "0.1.0", "dependencies": dependencies}
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart, sort_keys=False))
    run_helm(["dependency", "update", parent], home=helm_home)
    written = yaml.safe_load((parent / "Chart.lock").read_text())
    assert [d["version"] for d in written["dependencies"]] == ["1.2.3", "0.51.0"]
    assert written["digest"] == hash_req(dependencies, written["dependencies"])


def _dependency_build(chart: Path, helm_home: Path) -> str:
    # No repositories are configured and none reachable: helm checks the digest first, then stops at the
    # first repository it would need (kafka-ui's, an HTTP repository that was never `helm repo add`ed).
    proc = run_helm(["dependency", "build", chart], home=helm_home, check=False)
    assert proc.returncode != 0
    return proc.stderr


def test_helm_dependency_build_accepts_the_lock(tmp_path: Path, helm_home: Path) -> None:
    chart = tmp_path / "ingestion-observability"
    shutil.copytree(CHART, chart)
    error = _dependency_build(chart, helm_home)
    assert "out of sync" not in error
    assert "no repository definition for https://kafbat.github.io/helm-charts" in error


def test_helm_dependency_build_rejects_a_stale_lock(tmp_path: Path, helm_home: Path) -> None:
    """The check above means something: the same chart with one version changed is refused."""
    chart = tmp_path / "ingestion-observability"
    shutil.copytree(CHART, chart)
    text = (chart / "Chart.yaml").read_text()
    (chart / "Chart.yaml").write_text(text.replace("version: 18.11.4", "version: 18.11.5"))
    assert "Chart.lock) is out of sync" in _dependency_build(chart, helm_home)
