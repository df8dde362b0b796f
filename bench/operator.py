"""The operator: N IngestionSources reconciled to Ready on a real kube-apiserver (etcd + kube-apiserver,
nothing else), and the render time of one source's rules and dashboard.

Skipped, with the reason, when the operator package or the Kubernetes tools are not installed.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import procstat
from devstack.process import ServiceProcess, free_port, http_ok
from ingestion_observability.render import RenderConfig, render_dashboard, render_rules

ROOT = Path(__file__).resolve().parents[1]
CRD_FILE = ROOT / "charts/ingestion-observability/crds/ingestionsources.observability.ingestion.dev.yaml"
NAMESPACE = "bench"
OBJETS = ("a", "b", "c")


def _skip(reason: str) -> dict[str, Any]:
    return {"skipped": True, "reason": reason}


def render_ms_per_source(count: int) -> dict[str, float]:
    """`render_rules` + `render_dashboard` of one source (with its objets), in-process."""
    rules, dashboards = [], []
    for i in range(count):
        config = RenderConfig(source=f"bench_{i:03d}", objets=OBJETS)
        started = time.perf_counter()
        render_rules(config)
        middle = time.perf_counter()
        render_dashboard(config)
        rules.append(1000 * (middle - started))
        dashboards.append(1000 * (time.perf_counter() - middle))
    return {
        "rules_ms": round(statistics.median(rules), 2),
        "dashboard_ms": round(statistics.median(dashboards), 2),
        "total_ms": round(statistics.median(r + d for r, d in zip(rules, dashboards, strict=True)), 2),
    }


def measure(work: Path, count: int) -> dict[str, Any]:
    operator_bin = Path(sys.executable).parent / "ingestion-operator"
    if not operator_bin.is_file():
        return _skip("ingestion-operator is not installed (pip install -e k8s-operator)")
    try:
        from devstack.kube import KubeControlPlane, crd_files
        from devstack.tools import ToolMissingError
        from ingestion_operator.children import API_VERSION, GROUP, KIND, PLURAL, VERSION
    except ImportError as exc:
        return _skip(f"operator or Kubernetes launcher not importable: {exc}")
    if not CRD_FILE.is_file():
        return _skip(f"no IngestionSource CRD at {CRD_FILE.relative_to(ROOT)}")
    try:
        plane = KubeControlPlane.start(work / "kube")
    except ToolMissingError as exc:
        return _skip(f"Kubernetes tools missing: {exc}")
    with plane:
        rules_crd = [p for p in crd_files("prometheus-operator") if p.name.endswith("_prometheusrules.yaml")]
        plane.apply_crds([CRD_FILE, *rules_crd])
        plane.create("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        argv: list[str | Path] = [
            operator_bin,
            "run",
            "--standalone",
            f"--liveness={liveness}",
            f"--namespace={NAMESPACE}",
        ]
        operator = ServiceProcess("ingestion-operator", argv, work / "operator.log", env=plane.env())
        try:
            operator.wait_until(lambda: http_ok(liveness), 60, "live (kopf liveness endpoint)")
            cpu_before = procstat.cpu_seconds(operator.pid)
            bodies = [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "metadata": {"name": f"bench-{i:03d}"},
                    "spec": {"source": f"bench_{i:03d}", "objets": list(OBJETS)},
                }
                for i in range(count)
            ]
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:  # a client creating them in parallel, as a GitOps sync does
                list(pool.map(lambda body: plane.create(path, body), bodies))
            created = time.perf_counter() - started
            ready, deadline = 0, started + 600
            while ready < count:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{ready} of {count} IngestionSources Ready after 600 s")
                if not operator.alive():
                    raise RuntimeError(f"ingestion-operator exited:\n{operator.tail()}")
                time.sleep(0.2)
                ready = sum(_is_ready(item) for item in plane.get(path)["items"])
            elapsed = time.perf_counter() - started
            cpu = procstat.cpu_seconds(operator.pid) - cpu_before
            rss = procstat.rss_bytes(operator.pid)
        finally:
            operator.stop()
        rules = plane.get(f"/apis/monitoring.coreos.com/v1/namespaces/{NAMESPACE}/prometheusrules")["items"]
        maps = plane.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps")["items"]
    return {
        "sources": count,
        "created_seconds": round(created, 2),
        "ready_seconds": round(elapsed, 2),
        "sources_per_second": round(count / elapsed, 1),
        "operator_cpu_ms_per_source": round(1000 * cpu / count, 1),
        "operator_rss_mb": round(rss / 2**20, 1),
        "prometheus_rules": len(rules),
        "dashboard_config_maps": sum(m["metadata"]["name"].startswith("ingestion-dashboard-") for m in maps),
        "render_ms_per_source": render_ms_per_source(max(count, 20)),
    }


def _is_ready(item: dict[str, Any]) -> bool:
    conditions = item.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
