"""One real control plane (etcd + kube-apiserver) with the IngestionSource, PrometheusRule and
AlertmanagerConfig CRDs, and one operator process (`ingestion-operator run --standalone`) for the session's
functional tests."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.kube import KubeControlPlane, crd_files
from devstack.process import ServiceProcess, free_port, http_ok
from tests.operator.support import CRD_FILE

NAMESPACE = "sources"  # the functional tests
BENCH_NAMESPACE = "bench"  # the 200 sources, with an operator of production settings
RESYNC_SECONDS = 2  # the drift-repair timer, short enough to run during the tests


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    with KubeControlPlane.start(tmp_path_factory.mktemp("operator-kube")) as plane:
        children = ("_prometheusrules.yaml", "_alertmanagerconfigs.yaml")
        crds = [p for p in crd_files("prometheus-operator") if p.name.endswith(children)]
        plane.apply_crds([CRD_FILE, *crds])
        for namespace in (NAMESPACE, BENCH_NAMESPACE):
            plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        yield plane


@contextlib.contextmanager
def running_operator(kube: KubeControlPlane, log_dir: Path, *flags: str) -> Iterator[ServiceProcess]:
    """`ingestion-operator run --standalone FLAGS...` against `kube`, once its liveness endpoint answers."""
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    argv: list[str | Path] = [
        Path(sys.executable).parent / "ingestion-operator",
        "run",
        "--standalone",
        f"--liveness={liveness}",
    ]
    process = ServiceProcess("ingestion-operator", [*argv, *flags], log_dir / "operator.log", env=kube.env())
    try:
        process.wait_until(lambda: http_ok(liveness), 60, "live (kopf liveness endpoint)")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def operator(kube: KubeControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log_dir = tmp_path_factory.mktemp("operator")
    with running_operator(
        kube, log_dir, f"--namespace={NAMESPACE}", f"--resync-seconds={RESYNC_SECONDS}"
    ) as process:
        yield process
