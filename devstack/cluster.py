"""`make cluster-up` / `make cluster-down`: the local node (devstack/node.py) with what the chart needs around
it (devstack/incluster.py: prometheus-operator, Prometheus, VictoriaLogs; the host's Kafka on the node's
address) and the images (images.COMPONENTS) built into it, kept running in the background until `down`.

`up` starts a detached `serve` process that owns everything and stops it all (by PID, machine restored) on
SIGTERM; `down` sends that SIGTERM and waits. `up` prints the kubeconfig and the helm command of the chart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NamedTuple

from . import images, incluster
from .chart import CHART, make_chart_copy
from .kafka import KafkaBroker
from .node import KubeNode

TOPIC = "ingestion-logs"  # the chart's kafka.topics.logs.name
PARTITIONS = 3  # values-node.yaml's kafka.topics.logs.partitions
IMAGE_TAG = "node"  # values-node.yaml's image tags


class Cluster(NamedTuple):
    node: KubeNode
    kafka: KafkaBroker
    monitoring: incluster.Monitoring


@contextlib.contextmanager
def running(work: Path) -> Iterator[Cluster]:
    """The node, the host's Kafka (topics created; the consumer makes `<topic>.state`), the monitoring and
    the images of images.COMPONENTS (values-node.yaml's tag) in the node."""
    shutil.rmtree(work / "kafka", ignore_errors=True)  # no topic, offset nor state of a previous cluster
    with KubeNode.start(work / "node") as node, KafkaBroker.start(work / "kafka", host=node.ip) as kafka:
        kafka.create_topics([TOPIC], partitions=PARTITIONS)
        kafka.create_topics([f"{TOPIC}.dlq"], partitions=1)
        monitoring = incluster.install(node)
        for component in images.COMPONENTS:
            node.import_image(images.build_archive(component, IMAGE_TAG, work / "images"))
        yield Cluster(node, kafka, monitoring)


def helm_command(work: Path, node: KubeNode, kafka: KafkaBroker) -> str:
    """`helm install` of a copy of the chart whose dependencies are stand-ins (none can be fetched here, and
    values-node.yaml disables them all)."""
    chart = work / "chart"
    shutil.rmtree(chart, ignore_errors=True)
    make_chart_copy(chart)
    return (
        f"KUBECONFIG={node.kubeconfig} helm install ingestion-observability {chart}"
        " -n ingestion --create-namespace"
        f" -f {CHART / 'values-node.yaml'} --set kafka.externalBootstrapServers={kafka.bootstrap_servers}"
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve(work: Path) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    (work / "serve.pid").write_text(str(os.getpid()))
    try:
        with running(work) as (node, kafka, monitoring):
            info = {
                "kubeconfig": str(node.kubeconfig),
                "kafka": kafka.bootstrap_servers,
                "containerd": str(node.containerd_socket),  # `make dev`'s builder imports images there
                "prometheus": monitoring.prometheus_url,
                "logs": monitoring.logs_url,
                "helm": helm_command(work, node, kafka),
            }
            (work / "ready.json").write_text(json.dumps(info, indent=2))
            while True:
                time.sleep(3600)
    finally:
        (work / "ready.json").unlink(missing_ok=True)
        (work / "serve.pid").unlink(missing_ok=True)


def up(work: Path, timeout: float) -> int:
    work.mkdir(parents=True, exist_ok=True)
    if (work / "serve.pid").exists():
        print(f"already running ({work / 'serve.pid'}); `make cluster-down` first", file=sys.stderr)
        return 1
    with (work / "serve.log").open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "devstack.cluster", "serve", "--dir", str(work)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this command, untouched by its terminal's signals
        )
    deadline = time.monotonic() + timeout
    while not (work / "ready.json").exists():
        if child.poll() is not None or time.monotonic() > deadline:
            print((work / "serve.log").read_text()[-4000:], file=sys.stderr)
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                child.wait(timeout=300)
            return 1
        time.sleep(1)
    info = json.loads((work / "ready.json").read_text())
    print(
        f"node up. kubeconfig: {info['kubeconfig']}\n"
        f"  Kafka {info['kafka']}, Prometheus {info['prometheus']}, "
        f"VictoriaLogs {info['logs']}\n  the chart: {info['helm']}\n  stop: make cluster-down"
    )
    return 0


def down(work: Path, timeout: float) -> int:
    pid_file = work / "serve.pid"
    if not pid_file.exists():
        print("not running")
        return 0
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if pid_file.exists():
        print(f"still stopping after {timeout:.0f}s: see {work / 'serve.log'}", file=sys.stderr)
        return 1
    print("node stopped, machine restored")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "serve"])
    parser.add_argument("--dir", default=".cluster", help="work directory (logs, kubeconfig, data)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    work = Path(args.dir).resolve()
    if args.command == "serve":
        return serve(work)
    return up(work, args.timeout) if args.command == "up" else down(work, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
