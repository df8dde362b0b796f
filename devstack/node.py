"""A real single-node Kubernetes cluster on this machine, without Docker or kind: the chart's e2e tests and
`make cluster-up` run pods on it.

etcd + kube-apiserver (devstack/kube.py's KubeControlPlane, listening on every address so pods reach it
through the `kubernetes` Service), kube-controller-manager, kube-scheduler, containerd 1.6 + runc, kubelet,
kube-proxy (iptables mode), the CNI bridge `cni0` and CoreDNS. No registry is reachable: the images are OCI
archives made by `make tools` (scripts/tools/55-images.sh) and imported into containerd at start.

Three modules: this one runs the node (KubeNode); devstack/nodeconfig.py holds what its components run with
(configuration files, CoreDNS manifests, images); devstack/host.py what it changes on the machine.

Needs root. `stop()` puts the machine back as it was: the pods are deleted through the API (the kubelet
tears their networks down), every process it started is stopped by PID (apiserver before etcd), then
host.HostState.restore() removes what the node added (iptables chains, bridge, namespaces, mounts, cgroups)
and resets the sysctls it changed. `machine_state()` is what a test compares before and after.

containerd 1.x is unlikely to support kubelet 1.37: that upgrade needs containerd 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .host import HostState, bridge_exists, mounts_under, node_ip, run, write_sysctl
from .images import IMAGE_PREFIX, RUNC
from .kube import KubeApiError, KubeControlPlane, write_kubeconfig
from .nodeconfig import (
    BRIDGE,
    CNI_BIN_DIR,
    NODE_NAME,
    SERVICE_CIDR,
    cni_config,
    containerd_config,
    coredns_manifests,
    image_archives,
    image_named,
    kube_proxy_config,
    kubelet_config,
)
from .process import LocalService, ServiceProcess, free_port, http_ok
from .tools import ToolMissingError, binary


class KubeNode(LocalService):
    """A running node: `kubeconfig` for kubectl and helm, `kubectl()` runs kubectl on it."""

    def __init__(self, work_dir: Path, ip: str, host: HostState) -> None:
        self.work_dir = work_dir
        self.ip = ip
        self._host = host
        self.plane: KubeControlPlane | None = None
        self.containerd: ServiceProcess | None = None
        self._processes: list[ServiceProcess] = []  # in start order; stopped in reverse

    @property
    def kubeconfig(self) -> Path:
        return self.work_dir / "kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.work_dir / "containerd" / "containerd.sock"

    @classmethod
    def start(cls, work_dir: Path, *, ip: str | None = None, timeout: float = 180.0) -> KubeNode:
        """Start the whole node in `work_dir` (emptied first) and wait until it runs pods and resolves
        Service names."""
        if os.geteuid() != 0:
            raise PermissionError("the local node needs root (containerd, kubelet, iptables)")
        for tool in ("containerd", "ctr", "iptables", "conntrack"):
            if shutil.which(tool) is None:
                raise ToolMissingError(f"{tool} not on PATH: run `make tools`")
        if not (Path(CNI_BIN_DIR) / "bridge").is_file() or not Path(RUNC).is_file():
            raise ToolMissingError(f"runc or the CNI plugins ({CNI_BIN_DIR}) missing: run `make tools`")
        if bridge_exists():
            raise RuntimeError(f"{BRIDGE} exists: another node runs here (or one was not stopped)")
        archives = image_archives()
        work = Path(work_dir).resolve()
        if mounts_under(work):
            raise RuntimeError(f"mounts of a previous node under {work}: it was not stopped")
        # A fresh cluster each time: a previous etcd would bring its pods and releases back.
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        node = cls(work, ip or node_ip(), HostState.record())
        try:
            node._start(archives, timeout)
        except BaseException:
            node.stop()
            raise
        return node

    def _spawn(self, name: str, argv: Sequence[str | os.PathLike[str]]) -> ServiceProcess:
        process = ServiceProcess(name, argv, self.work_dir / "logs" / f"{name}.log")
        self._processes.append(process)
        return process

    def _start(self, archives: Mapping[str, Path], timeout: float) -> None:
        work = self.work_dir
        write_sysctl("net/ipv4/ip_forward", "1")
        (work / "cni" / "conf").mkdir(parents=True, exist_ok=True)
        (work / "cni" / "conf" / "10-bridge.conflist").write_text(json.dumps(cni_config(work), indent=2))
        pause = next(ref for ref in archives if ref.startswith(f"{IMAGE_PREFIX}/pause:"))
        (work / "containerd.toml").write_text(containerd_config(work, pause))
        self.containerd = self._spawn("containerd", ["containerd", "--config", work / "containerd.toml"])
        self.containerd.wait_until(lambda: self._ctr_ok("version"), 60, "serving")
        for archive in archives.values():
            self.import_image(archive)

        self.plane = KubeControlPlane.start(
            work / "control-plane",
            address=self.ip,  # pods reach it through the `kubernetes` Service
            service_cidr=SERVICE_CIDR,
            kubelets=True,
            timeout=timeout,
        )
        self._processes += [self.plane.etcd, self.plane.apiserver]  # stopped in reverse: etcd last
        admin = self.plane.kubeconfig
        write_kubeconfig(self.kubeconfig, self.plane.url, self.plane.certs)
        certs = self.plane.certs
        self._spawn(
            "kube-controller-manager",
            [
                binary("kube-controller-manager"),
                f"--kubeconfig={admin}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--service-account-private-key-file={certs.sa_key}",
                f"--root-ca-file={certs.ca_cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*,-csrsigning,-csrapproving,-nodeipam",
                "--node-monitor-grace-period=20s",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [binary("kube-scheduler"), f"--kubeconfig={admin}", "--leader-elect=false", "--secure-port=0"],
        )
        kubelet_dir = work / "kubelet"
        kubelet_dir.mkdir(exist_ok=True)
        healthz = free_port()
        config = kubelet_config(
            certs.ca_cert, work / "pod-logs", self.containerd_socket, self.ip, free_port(), healthz
        )
        (work / "kubelet.yaml").write_text(yaml.safe_dump(config))
        kubelet = self._spawn(
            "kubelet",
            [
                binary("kubelet"),
                f"--config={work / 'kubelet.yaml'}",
                f"--kubeconfig={admin}",
                f"--root-dir={kubelet_dir}",
                f"--cert-dir={work / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.ip}",
                "--v=1",
            ],
        )
        kubelet.wait_until(lambda: http_ok(f"http://127.0.0.1:{healthz}/healthz"), timeout, "healthy")
        proxy_healthz = free_port()
        (work / "kube-proxy.yaml").write_text(
            yaml.safe_dump(kube_proxy_config(admin, self.ip, proxy_healthz, free_port()))
        )
        proxy = self._spawn("kube-proxy", [binary("kube-proxy"), f"--config={work / 'kube-proxy.yaml'}"])
        proxy.wait_until(lambda: http_ok(f"http://127.0.0.1:{proxy_healthz}/healthz"), timeout, "synced")
        self._wait(self._node_ready, timeout, "node Ready")
        self.kubectl_apply(coredns_manifests(image_named("coredns")))
        self.kubectl(
            "-n",
            "kube-system",
            "rollout",
            "status",
            "deployment/coredns",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )

    # -- helpers --

    def _ctr(self, *args: str, timeout: float = 300.0) -> str:
        return run(
            ["ctr", "--address", self.containerd_socket, "--namespace", "k8s.io", *args], timeout=timeout
        )

    def _ctr_ok(self, *args: str) -> bool:
        try:
            self._ctr(*args, timeout=10)
            return True
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def import_image(self, archive: Path) -> None:
        """Import an OCI archive (`buildah push ... oci-archive:`) into containerd, for the kubelet."""
        self._ctr("images", "import", str(archive))

    def kubectl(
        self, *args: str, input_text: str | None = None, timeout: float = 120.0, check: bool = True
    ) -> str:
        proc = subprocess.run(
            [str(binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout

    def kubectl_apply(self, manifests: Sequence[Mapping[str, Any]]) -> None:
        self.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump_all(manifests))

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self._processes:
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited while waiting for {what}:\n{process.tail()}")
            if check():
                return
            time.sleep(0.5)
        raise TimeoutError(f"{what}: not after {timeout:.0f}s")

    def _node_ready(self) -> bool:
        assert self.plane is not None
        try:
            node = self.plane.get(f"/api/v1/nodes/{NODE_NAME}")
        except KubeApiError:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- stop --

    def _delete_pods(self, timeout: float) -> None:
        """Delete every pod (controllers stopped first, so none comes back) and wait until the kubelet has
        stopped their sandboxes: their network namespaces and veths are torn down by CNI as they should."""
        assert self.plane is not None
        for process in self._processes:
            if process.name in ("kube-controller-manager", "kube-scheduler"):
                process.stop()
        with contextlib.suppress(KubeApiError, OSError):
            for pod in self.plane.get("/api/v1/pods")["items"]:
                meta = pod["metadata"]
                with contextlib.suppress(KubeApiError):
                    self.plane.request(
                        "DELETE",
                        f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}?gracePeriodSeconds=0",
                    )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._ctr_ok("version"):
            if not self._ctr("tasks", "ls", "-q", timeout=10).split():
                return
            time.sleep(0.5)

    def _kill_leftover_tasks(self) -> None:
        """Kill what the kubelet did not stop, and remove the containers (their shims exit with them)."""
        if self.containerd is None or not self.containerd.alive():
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            for task in self._ctr("tasks", "ls", "-q", timeout=10).split():
                self._ctr("tasks", "kill", "--signal", "SIGKILL", task, timeout=10)
            time.sleep(1)
            for container in self._ctr("containers", "ls", "-q", timeout=10).split():
                with contextlib.suppress(RuntimeError):
                    self._ctr("tasks", "delete", "--force", container, timeout=10)
                with contextlib.suppress(RuntimeError):
                    self._ctr("containers", "delete", container, timeout=10)

    def _shim_pids(self) -> list[int]:
        """containerd-shim processes of this containerd (they leave its process group on purpose)."""
        needle = str(self.containerd_socket).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = (proc / "cmdline").read_bytes()
                    if b"containerd-shim" in cmdline and needle in cmdline:
                        pids.append(int(proc.name))
        return pids

    def stop(self) -> None:
        try:
            if self.plane is not None and self.plane.apiserver.alive():
                self._delete_pods(timeout=60)
            self._kill_leftover_tasks()
            shims = self._shim_pids() if self.containerd is not None else []
            for process in reversed(self._processes):
                process.stop()
            for pid in shims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            if any(p.name == "kube-proxy" for p in self._processes):
                # Its own rules first, then whatever the kubelet or CNI plugins left (canary chains...).
                run([binary("kube-proxy"), "--cleanup"], check=False, timeout=60)
        finally:
            self._host.restore(self.work_dir)
