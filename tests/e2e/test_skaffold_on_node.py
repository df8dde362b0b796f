"""skaffold's node profile on the real node, as `make dev` runs it (`python -m devstack.skaffold node`):
buildah builds each component's target through skaffold's custom builder into the node's containerd, helm
installs the chart with values-node.yaml, the host's Kafka and the intake. `skaffold run` brings every pod to
Ready, `skaffold delete` leaves no workload nor Service, `skaffold dev` rebuilds and rolls out only the image
whose sources changed. skaffold works in a copy of the repository (the dev test changes a source file there).
The module leaves the node as it found it: the shared release is uninstalled first and installed again
after."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack import components, images
from devstack.skaffold import NodeInfo
from devstack.tools import binary
from tests.integration.support import wait_until

from .conftest import NAMESPACE, RELEASE, Helm

pytestmark = pytest.mark.e2e

COMPONENT = "app.kubernetes.io/component"
# What skaffold reads and builds from, copied: its config, the build context, the builder, the chart's values.
WORKSPACE_FILES = (
    "skaffold.yaml",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "images",
    "src",
    "devstack",
)
WORKSPACE_EXTRA = ("k8s-operator/pyproject.toml", "k8s-operator/src", "charts/ingestion-observability")
# The intake's own source: only the intake image is made of it (tests/chart/test_skaffold.py).
CHANGED = "src/ingestion_observability/intake/server.py"
BUILT = re.compile(r"Building \[([^\]]+)\]")


@dataclass
class Skaffold:
    """`python -m devstack.skaffold node` in the workspace, with the node's ready.json in `cluster_dir`."""

    workspace: Path
    cluster_dir: Path
    helm: Helm
    timings: dict[str, float] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "devstack.skaffold", "node", "--dir", str(self.cluster_dir), *args]

    def run(self, name: str, *args: str, timeout: float = 1500.0) -> str:
        start = time.monotonic()
        proc = subprocess.run(
            self.command(*args),
            cwd=self.workspace,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.timings[name] = time.monotonic() - start
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"skaffold {' '.join(args)}:\n{output[-6000:]}\n{self.helm.diagnosis()}"
        return output

    def kubectl_json(self, *args: str) -> Any:
        return self.helm.node.kubectl_json("-n", NAMESPACE, *args)


def _copy_workspace(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in (*WORKSPACE_FILES, *WORKSPACE_EXTRA):
        source = components.REPO / name
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    return dest


def _skaffold_images() -> set[str]:
    """IDs of the images skaffold's builds left in buildah's storage (tagged with 64 hex digits: input digests
    and image IDs). By ID: a build here may move a tag an earlier one had."""
    listed = images.buildah("images", "--no-trunc", "--format", "{{.ID}} {{.Name}}:{{.Tag}}").splitlines()
    pattern = re.compile(rf"{re.escape(images.IMAGE_PREFIX)}/[\w-]+:[0-9a-f]{{64}}")
    return {line.split()[0] for line in listed if pattern.fullmatch(line.split()[-1])}


def _remove_node_images(skaffold: Skaffold) -> None:
    ctr = ["ctr", "--address", str(skaffold.helm.node.containerd_socket), "--namespace", "k8s.io", "images"]
    listed = subprocess.run([*ctr, "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
    names = [n for n in listed if n.startswith(f"{images.IMAGE_PREFIX}/") and re.search(r":[0-9a-f]{64}$", n)]
    if names:
        subprocess.run([*ctr, "rm", *names], capture_output=True, check=True)


@pytest.fixture(scope="module")
def skaffold(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skaffold]:
    binary("skaffold")  # `make tools`, part "skaffold"
    was_installed = helm.installed()
    if was_installed:
        helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=5m")
    before = _skaffold_images()
    cluster_dir = tmp_path_factory.mktemp("skaffold-cluster")
    NodeInfo(helm.node.kubeconfig, helm.kafka.bootstrap_servers, helm.node.containerd_socket).write(
        cluster_dir
    )
    runner = Skaffold(_copy_workspace(tmp_path_factory.mktemp("workspace")), cluster_dir, helm)
    try:
        yield runner
    finally:
        print("\nskaffold timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in runner.timings.items()))
        if helm.installed():
            helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=5m")
        _remove_node_images(runner)
        for image_id in _skaffold_images() - before:
            images.buildah("rmi", "--force", image_id)
        if was_installed:
            helm.install()


def _workloads(skaffold: Skaffold) -> dict[str, dict[str, Any]]:
    """component → its Deployment or CronJob."""
    listed = skaffold.kubectl_json("get", "deployments,cronjobs")["items"]
    return {w["metadata"]["labels"][COMPONENT]: w for w in listed}


def _image(workload: dict[str, Any]) -> str:
    spec = workload["spec"]
    pod = (
        spec["jobTemplate"]["spec"]["template"]["spec"]
        if workload["kind"] == "CronJob"
        else spec["template"]["spec"]
    )
    image: str = pod["containers"][0]["image"]
    return image


def _ready(skaffold: Skaffold) -> bool:
    deployments = skaffold.kubectl_json("get", "deployments")["items"]
    return bool(deployments) and all(
        d["status"].get("updatedReplicas") == d["spec"]["replicas"] == d["status"].get("readyReplicas")
        and d["status"].get("replicas") == d["spec"]["replicas"]
        for d in deployments
    )


def _pods(skaffold: Skaffold, component: str) -> dict[str, str]:
    """uid → image of the running pods of a component."""
    pods = skaffold.kubectl_json("get", "pods", "-l", f"{COMPONENT}={component}")["items"]
    return {
        p["metadata"]["uid"]: p["spec"]["containers"][0]["image"]
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def test_skaffold_run_installs_the_chart_and_the_pods_become_ready(skaffold: Skaffold) -> None:
    output = skaffold.run("run", "run")
    assert sorted(BUILT.findall(output)) == sorted(f"{images.IMAGE_PREFIX}/{c}" for c in components.names())
    workloads = _workloads(skaffold)
    assert set(workloads) == set(components.names())  # the intake runs too
    for component, workload in workloads.items():
        assert re.fullmatch(rf"{images.IMAGE_PREFIX}/{component}:[0-9a-f]{{64}}", _image(workload))
    wait_until(lambda: _ready(skaffold), timeout=300, what="every Deployment Ready")
    for component in ("consumer", "operator", "intake"):
        assert _pods(skaffold, component), f"no running {component} pod"


def test_skaffold_delete_leaves_no_workload_nor_service(skaffold: Skaffold) -> None:
    skaffold.run("delete", "delete")
    kinds = "deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs,services,configmaps,secrets,pods"

    def left() -> list[str]:
        items = skaffold.kubectl_json("get", kinds)["items"]
        return [
            f"{i['kind']}/{i['metadata']['name']}"
            for i in items
            # the namespace's own: its root CA and (older clusters) the default token
            if i["metadata"]["name"] != "kube-root-ca.crt"
            and i.get("type") != "kubernetes.io/service-account-token"
        ]

    wait_until(lambda: not left(), timeout=180, what="nothing left in the namespace", seen=left)
    assert not skaffold.helm.installed()


class DevLoop:
    """`skaffold dev` in the background, its output in a file."""

    def __init__(self, skaffold: Skaffold, log: Path) -> None:
        self.log = log
        self.skaffold = skaffold
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                skaffold.command("dev", "--port-forward=off"),  # `make dev` forwards; a test needs no port
                cwd=skaffold.workspace,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: SIGINT to it is a Ctrl-C
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, after: int, timeout: float) -> str:
        """The output from offset `after` once it matches `pattern`."""

        def seen() -> bool:
            assert self.proc.poll() is None, f"skaffold dev exited:\n{self.output()[-6000:]}"
            return re.search(pattern, self.output()[after:]) is not None

        wait_until(seen, timeout=timeout, what=f"skaffold dev: {pattern}", seen=lambda: self.output()[-3000:])
        return self.output()[after:]

    def stop(self, timeout: float = 300.0) -> int:
        """Ctrl-C: skaffold cleans up (uninstalls the release) and exits."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise


def test_skaffold_dev_rebuilds_and_rolls_out_only_the_changed_image(
    skaffold: Skaffold, tmp_path: Path
) -> None:
    start = time.monotonic()
    dev = DevLoop(skaffold, tmp_path / "dev.log")
    try:
        first = dev.wait_for(r"Watching for changes", 0, timeout=1500)
        skaffold.timings["dev start"] = time.monotonic() - start
        wait_until(lambda: _ready(skaffold), timeout=300, what="every Deployment Ready")
        before = {c: _image(w) for c, w in _workloads(skaffold).items()}
        pods = {c: _pods(skaffold, c) for c in ("consumer", "operator", "intake")}
        mark = len(dev.output())

        changed = skaffold.workspace / CHANGED
        changed.write_text(changed.read_text() + "\n# changed by tests/e2e/test_skaffold_on_node.py\n")
        start = time.monotonic()
        after_change = dev.wait_for(r"Watching for changes", mark, timeout=1500)
        wait_until(lambda: _ready(skaffold), timeout=300, what="the intake rolled out")
        skaffold.timings["dev rebuild and rollout"] = time.monotonic() - start

        assert BUILT.findall(after_change) == [f"{images.IMAGE_PREFIX}/intake"], after_change[-4000:]
        after = {c: _image(w) for c, w in _workloads(skaffold).items()}
        assert after["intake"] != before["intake"]
        assert {c: i for c, i in after.items() if c != "intake"} == {
            c: i for c, i in before.items() if c != "intake"
        }
        wait_until(
            lambda: set(_pods(skaffold, "intake").values()) == {after["intake"]},
            timeout=300,
            what="the intake's pods on the new image",
        )
        for component in ("consumer", "operator"):  # not restarted
            assert _pods(skaffold, component) == pods[component]
        assert not set(_pods(skaffold, "intake")) & set(pods["intake"])
        assert BUILT.findall(first) == [], "dev starts from skaffold run's cache: nothing changed since"
    finally:
        stopped = time.monotonic()
        code = dev.stop()
        skaffold.timings["dev stop"] = time.monotonic() - stopped
    assert code == 0, dev.output()[-4000:]
    wait_until(
        lambda: not skaffold.helm.installed(), timeout=180, what="dev's cleanup uninstalled the release"
    )
