"""Session-wide: `make cluster-up`'s node with its dependencies and the images of every component
(devstack/cluster.py; the machine checked as found afterwards), and a copy of the chart with stand-ins for
its dependencies (all disabled by values-node.yaml)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import images
from devstack.chart import CHART, make_chart_copy
from devstack.cluster import IMAGE_TAG, Cluster, running
from devstack.host import machine_state
from devstack.incluster import Monitoring
from devstack.kafka import KafkaBroker
from devstack.node import KubeNode
from devstack.tools import binary

RELEASE = "ingestion-observability"
NAMESPACE = "ingestion"
NODE_VALUES = CHART / "values-node.yaml"
IMAGES = {component: f"{images.IMAGE_PREFIX}/{component}:{IMAGE_TAG}" for component in images.COMPONENTS}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`make cluster-up`'s: the node, the host's Kafka on its address, the monitoring, the images built from
    images/*/Dockerfile and imported; afterwards, the machine as it was."""
    before = machine_state()
    with running(tmp_path_factory.mktemp("cluster")) as parts:
        yield parts
    assert machine_state() == before, "the node did not leave the machine as it found it"


@pytest.fixture(scope="session")
def node(stack: Cluster) -> KubeNode:
    return stack.node


@pytest.fixture(scope="session")
def monitoring(stack: Cluster) -> Monitoring:
    return stack.monitoring


@dataclass
class Helm:
    """helm and kubectl on the node, for the chart copy."""

    node: KubeNode
    chart: Path
    kafka: KafkaBroker

    def run(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(binary("helm")), f"--kubeconfig={self.node.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, (
            f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}\n{self.diagnosis()}"
        )
        return proc

    def values_args(self, extra: Sequence[str] = ()) -> list[str]:
        return [
            "-f",
            str(NODE_VALUES),
            "--set",
            f"kafka.externalBootstrapServers={self.kafka.bootstrap_servers}",
            *extra,
        ]

    def install(self) -> subprocess.CompletedProcess[str]:
        return self.run(
            "install",
            RELEASE,
            str(self.chart),
            "-n",
            NAMESPACE,
            "--create-namespace",
            *self.values_args(),
            "--wait",
            "--wait-for-jobs",
            "--timeout=5m",
        )

    def upgrade(self, *sets: str, wait: bool = True) -> subprocess.CompletedProcess[str]:
        extra = [arg for value in sets for arg in ("--set", value)]
        waiting = ["--wait", "--timeout=5m"] if wait else []
        return self.run(
            "upgrade", RELEASE, str(self.chart), "-n", NAMESPACE, *self.values_args(extra), *waiting
        )

    def installed(self) -> bool:
        listed = json.loads(self.run("list", "-n", NAMESPACE, "-o", "json").stdout)
        return any(item["name"] == RELEASE for item in listed)

    def diagnosis(self) -> str:
        pods = self.node.kubectl("get", "pods", "-A", "-o", "wide", check=False)
        events = self.node.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False)
        return f"pods:\n{pods}\nevents:\n{events[-4000:]}"


@pytest.fixture(scope="session")
def helm(stack: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Everything the chart needs is up, and a copy of it with stand-ins for its (disabled) dependencies."""
    return Helm(stack.node, make_chart_copy(tmp_path_factory.mktemp("chart") / "chart"), stack.kafka)


@pytest.fixture(scope="session")
def release(helm: Helm) -> Helm:
    """The release installed once (test_install does it and checks it; later tests reuse it)."""
    if not helm.installed():
        helm.install()
    return helm
