"""A real single-node Kubernetes cluster on this machine, without Docker or kind: the chart's e2e tests and
`make cluster-up` run pods on it.

etcd + kube-apiserver (devstack/kube.py's pieces, listening on every address so pods reach it through the
`kubernetes` Service), kube-controller-manager, kube-scheduler, containerd 1.6 + runc, kubelet, kube-proxy
(iptables mode), the CNI bridge `cni0` and CoreDNS. No registry is reachable: the images are OCI archives
made by `make tools` (scripts/tools/55-images.sh) and imported into containerd at start.

Needs root. `stop()` puts the machine back as it was: the pods are deleted through the API (the kubelet
tears their networks down), every process it started is stopped by PID (apiserver before etcd), then the
KUBE-*/CNI-* iptables chains, the cni0 bridge, the network namespaces and mounts it made, the kubepods
cgroups and the sysctls the node changes (ip_forward; kubelet's and kube-proxy's tunables) are restored.
`machine_state()` is what a test compares before and after.

containerd 1.x is unlikely to support kubelet 1.37: that upgrade needs containerd 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .images import IMAGE_PREFIX, RUNC
from .kube import (
    ControlPlaneCerts,
    KubeApiError,
    KubeControlPlane,
    apiserver_argv,
    etcd_argv,
    write_kubeconfig,
)
from .process import LocalService, ServiceProcess, free_port, http_ok
from .tools import ToolMissingError, binary, tools_dir

NODE_NAME = "ingestion-node"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "cni0"
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN_DIR = "/usr/lib/cni"
# The sysctls the node sets: ip_forward (pods' traffic is routed), kube-proxy's conntrack and localnet ones,
# kubelet's kernel tunables (protectKernelDefaults: false makes it set them). Each is put back by stop().
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
OUR_CHAINS = re.compile(r"^(KUBE|CNI)-")
# Directories the kubelet, containerd and libcni use whatever their configuration: removed by stop() when
# start() did not find them; otherwise only our entries in them go.
HOST_DIRS = ("/var/log/containers", "/var/lib/kubelet", "/run/containerd", "/var/lib/cni")
# buildah's defaults, which the images' builds must not use (scripts/tools/55-images.sh, devstack/images.py).
BUILDAH_DIRS = ("/var/lib/containers", "/run/containers", "/etc/cni")
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")


# --- the machine ----------------------------------------------------------------------------------------


def _run(argv: Sequence[str | os.PathLike[str]], *, check: bool = True, timeout: float = 120.0) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def node_ip() -> str:
    """The IPv4 address of the interface of the default route: the node's InternalIP."""
    routes = json.loads(_run(["ip", "-j", "-4", "route", "show", "default"]))
    device = routes[0]["dev"]
    for link in json.loads(_run(["ip", "-j", "-4", "addr", "show", "dev", device])):
        for addr in link.get("addr_info", []):
            return str(addr["local"])
    raise RuntimeError(f"no IPv4 address on {device}")


def _read_sysctl(name: str) -> str | None:
    with contextlib.suppress(OSError):
        return (Path("/proc/sys") / name).read_text().strip()
    return None


def _write_sysctl(name: str, value: str) -> None:
    (Path("/proc/sys") / name).write_text(value + "\n")


def _iptables_chains() -> dict[str, list[str]]:
    """{"iptables/nat": [chains ...]} of our KUBE-*/CNI-* chains, IPv4 and IPv6."""
    found: dict[str, list[str]] = {}
    for tool in ("iptables", "ip6tables"):
        table = ""
        for line in _run([f"{tool}-save"], check=False).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and OUR_CHAINS.match(line[1:]):
                found.setdefault(f"{tool}/{table}", []).append(line[1:].split()[0])
    return found


def _remove_iptables_chains(keep: Mapping[str, list[str]]) -> None:
    """Delete the KUBE-*/CNI-* chains not in `keep` (those found at start) and the rules jumping to them."""
    for tool in ("iptables", "ip6tables"):
        table = ""
        ours: dict[str, list[str]] = {}
        jumps: list[tuple[str, list[str]]] = []
        for line in _run([f"{tool}-save"], check=False).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chain = line[1:].split()[0]
                if OUR_CHAINS.match(chain) and chain not in keep.get(f"{tool}/{table}", []):
                    ours.setdefault(table, []).append(chain)
            elif line.startswith("-A "):
                words = shlex.split(line)  # comments are quoted: "kubernetes service portals"
                target = words[words.index("-j") + 1] if "-j" in words else ""
                if words[1] not in ours.get(table, []) and target in ours.get(table, []):
                    jumps.append((table, words[1:]))
        for table, rule in jumps:
            _run([tool, "-w", "-t", table, "-D", *rule], check=False)
        for table, chains in ours.items():
            for chain in chains:
                _run([tool, "-w", "-t", table, "-F", chain], check=False)
            for chain in chains:
                _run([tool, "-w", "-t", table, "-X", chain], check=False)


def _netns() -> set[str]:
    with contextlib.suppress(OSError):
        return set(os.listdir("/run/netns"))
    return set()


def _mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest last (as /proc/self/mountinfo lists them)."""
    prefix = str(directory)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def _kubepods_cgroups() -> list[Path]:
    """The kubepods cgroups the kubelet made, in every hierarchy, children first."""
    found: list[Path] = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def machine_state() -> dict[str, Any]:
    """What the node may change on this machine; equal before a start and after its stop."""
    links = json.loads(_run(["ip", "-j", "link", "show"]))
    return {
        "sysctls": {name: _read_sysctl(name) for name in SYSCTLS},
        "iptables": _iptables_chains(),
        "links": sorted(
            link["ifname"] for link in links if link["ifname"] == BRIDGE or link["ifname"].startswith("veth")
        ),
        "netns": sorted(_netns()),
        "kubepods_cgroups": [str(p) for p in _kubepods_cgroups()],
        "host_dirs": [d for d in (*HOST_DIRS, *BUILDAH_DIRS) if Path(d).exists()],
    }


# --- configuration files --------------------------------------------------------------------------------


def _containerd_config(work: Path, pause_image: str) -> str:
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""\
version = 2
root = "{work}/containerd/root"
state = "{work}/containerd/state"
# Snapshotters and plugins that are not used here, and whose start-up probes or directories are not wanted.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{work}/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{work}/containerd/opt"

{cri}
  sandbox_image = "{pause_image}"
  # The VM lacks CAP_SYS_RESOURCE: without this every sandbox fails ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{work}/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{work}/cni/conf"
"""


def _cni_config(work: Path) -> dict[str, Any]:
    # No ipMasq: pods only talk to each other and to this node's addresses, nothing is routed further.
    return {
        "cniVersion": "1.0.0",
        "name": "ingestion-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(work / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _kubelet_config(plane: KubeControlPlane, sock: Path, ip: str, port: int, healthz: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "containerRuntimeEndpoint": f"unix://{sock}",
        # This VM: cgroup v1 (hybrid mount, no systemd), swap not refused.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods with dnsPolicy Default get no upstream: nothing leaves the machine
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(plane.certs.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        # A test node on a shared disk: no eviction, no image garbage collection (no image can be pulled).
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 60,
        "rotateCertificates": False,
        "podLogsDir": str(plane.work_dir.parent / "pod-logs"),
        "shutdownGracePeriod": "0s",
        # Secret and ConfigMap volumes follow their objects within seconds (prometheus-operator's config).
        "syncFrequency": "10s",
    }


def _kube_proxy_config(kubeconfig: Path, ip: str, healthz: int, metrics: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        "nodePortAddresses": [f"{ip}/32"],
        # Leave the machine's conntrack table and route_localnet as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False},
    }


COREDNS_COREFILE = f"""\
.:1053 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""


def _coredns_manifests(image: str) -> list[dict[str, Any]]:
    """CoreDNS as kubeadm deploys it, answering only for the cluster (no forwarding out of the machine)."""
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": "kube-system"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREDNS_COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534},
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 1053, "protocol": "TCP"},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]


# --- images ---------------------------------------------------------------------------------------------


def image_archives() -> dict[str, Path]:
    """{image name: OCI archive} of the images `make tools` built for the node (python-base excepted:
    it is only the local base of images/*/Dockerfile)."""
    directory = tools_dir() / "images"
    found = {
        ref.read_text().strip(): ref.with_suffix(".tar")
        for ref in sorted(directory.glob("*.ref"))
        if ref.stem != "python-base" and ref.with_suffix(".tar").is_file()
    }
    wanted = (
        "pause",
        "coredns",
        "prometheus",
        "prometheus-operator",
        "prometheus-config-reloader",
        "victoria-logs",
    )
    missing = [name for name in wanted if not any(ref.startswith(f"{IMAGE_PREFIX}/{name}:") for ref in found)]
    if missing:
        raise ToolMissingError(f"images {missing} not in {directory}: run `make tools`")
    return found


def image_named(name: str) -> str:
    """The full reference of one of the node's images, e.g. image_named("prometheus")."""
    for ref in image_archives():
        if ref.startswith(f"{IMAGE_PREFIX}/{name}:"):
            return ref
    raise ToolMissingError(f"no image {name} in the tools cache: run `make tools`")


# --- the node -------------------------------------------------------------------------------------------


@dataclass
class _Saved:
    """What start() found on the machine and stop() puts back."""

    sysctls: dict[str, str] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    chains: dict[str, list[str]] = field(default_factory=dict)
    absent_dirs: list[str] = field(default_factory=list)


class KubeNode(LocalService):
    """A running node: `kubeconfig` for kubectl and helm, `kubectl()` runs kubectl on it."""

    def __init__(self, work_dir: Path, ip: str, saved: _Saved) -> None:
        self.work_dir = work_dir
        self.ip = ip
        self._saved = saved
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
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            raise RuntimeError(f"{BRIDGE} exists: another node runs here (or one was not stopped)")
        archives = image_archives()
        work = Path(work_dir).resolve()
        if _mounts_under(work):
            raise RuntimeError(f"mounts of a previous node under {work}: it was not stopped")
        # A fresh cluster each time: a previous etcd would bring its pods and releases back.
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        saved = _Saved(
            sysctls={n: v for n in SYSCTLS if (v := _read_sysctl(n)) is not None},
            netns=_netns(),
            chains=_iptables_chains(),
            absent_dirs=[d for d in HOST_DIRS if not Path(d).exists()],
        )
        node = cls(work, ip or node_ip(), saved)
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
        _write_sysctl("net/ipv4/ip_forward", "1")
        (work / "cni" / "conf").mkdir(parents=True, exist_ok=True)
        (work / "cni" / "conf" / "10-bridge.conflist").write_text(json.dumps(_cni_config(work), indent=2))
        pause = next(ref for ref in archives if ref.startswith(f"{IMAGE_PREFIX}/pause:"))
        (work / "containerd.toml").write_text(_containerd_config(work, pause))
        self.containerd = self._spawn("containerd", ["containerd", "--config", work / "containerd.toml"])
        self.containerd.wait_until(lambda: self._ctr_ok("version"), 60, "serving")
        for archive in archives.values():
            self.import_image(archive)

        self.plane = _start_control_plane(work / "control-plane", self.ip, timeout)
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
        config = _kubelet_config(self.plane, self.containerd_socket, self.ip, free_port(), healthz)
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
            yaml.safe_dump(_kube_proxy_config(admin, self.ip, proxy_healthz, free_port()))
        )
        proxy = self._spawn("kube-proxy", [binary("kube-proxy"), f"--config={work / 'kube-proxy.yaml'}"])
        proxy.wait_until(lambda: http_ok(f"http://127.0.0.1:{proxy_healthz}/healthz"), timeout, "synced")
        self._wait(self._node_ready, timeout, "node Ready")
        self.kubectl_apply(_coredns_manifests(image_named("coredns")))
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
        return _run(
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
                _run([binary("kube-proxy"), "--cleanup"], check=False, timeout=60)
        finally:
            self._restore_machine()

    def _restore_machine(self) -> None:
        _remove_iptables_chains(self._saved.chains)
        for name in _netns() - self._saved.netns:
            path = Path("/run/netns") / name
            _run(["umount", path], check=False)
            with contextlib.suppress(OSError):
                path.unlink()
        # A veth whose pod's namespace the kernel has not freed yet would outlive the bridge: deleted with it.
        for link in json.loads(_run(["ip", "-j", "link", "show"])):
            if link.get("master") == BRIDGE:
                _run(["ip", "link", "delete", link["ifname"]], check=False)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            _run(["ip", "link", "delete", BRIDGE], check=False)
        for point in reversed(_mounts_under(self.work_dir)):
            _run(["umount", "--lazy", point], check=False)
        for directory in self._saved.absent_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            for link in Path("/var/log/containers").iterdir():  # the kubelet's symlinks to our pod logs
                if link.is_symlink() and os.readlink(link).startswith(str(self.work_dir) + "/"):
                    link.unlink()
        with contextlib.suppress(OSError):
            for result in Path("/var/lib/cni/results").glob("ingestion-node-*"):  # libcni's cache
                result.unlink()
        for cgroup in _kubepods_cgroups():
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        for name, value in self._saved.sysctls.items():
            if _read_sysctl(name) != value:
                _write_sysctl(name, value)


def _override(argv: list[str], flags: Mapping[str, str]) -> list[str]:
    """argv with each `--name=value` of `flags` replacing (or adding) that flag."""
    kept = [a for a in argv if a.split("=", 1)[0] not in flags]
    return kept + [f"{name}={value}" for name, value in flags.items()]


def _start_control_plane(work: Path, ip: str, timeout: float) -> KubeControlPlane:
    """etcd + kube-apiserver as devstack/kube.py starts them, changed for a node: pods reach the API at
    API_SERVICE_IP (so it listens on every address and advertises the node's), service accounts get tokens,
    the API server reaches the kubelet (logs, exec) as the admin."""
    work.mkdir(parents=True, exist_ok=True)
    certs = ControlPlaneCerts.generate(work / "pki", service_ip=API_SERVICE_IP)
    client_port, peer_port, port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    data = work / "etcd"
    data.mkdir(mode=0o700, exist_ok=True)
    etcd = ServiceProcess("etcd", etcd_argv(binary("etcd"), data, client_port, peer_port), work / "etcd.log")
    apiserver: ServiceProcess | None = None
    try:
        etcd.wait_until(lambda: http_ok(f"{etcd_url}/health"), timeout, "healthy")
        argv = _override(
            apiserver_argv(binary("kube-apiserver"), certs, port, etcd_url),
            {
                "--bind-address": "0.0.0.0",
                "--advertise-address": ip,
                "--service-cluster-ip-range": SERVICE_CIDR,
                "--disable-admission-plugins": "",
                "--endpoint-reconciler-type": "lease",
                "--kubelet-client-certificate": str(certs.client_cert),
                "--kubelet-client-key": str(certs.client_key),
                # The node's name is not in any DNS: reach the kubelet at its address.
                "--kubelet-preferred-address-types": "InternalIP",
            },
        )
        apiserver = ServiceProcess("kube-apiserver", argv, work / "kube-apiserver.log")
        url = f"https://127.0.0.1:{port}"
        write_kubeconfig(work / "kubeconfig", url, certs)
        plane = KubeControlPlane(work, certs, work / "kubeconfig", url, etcd_url, etcd, apiserver)
        apiserver.wait_until(plane.ready, timeout, "ready (/readyz)")
        return plane
    except BaseException:
        if apiserver is not None:
            apiserver.stop()
        etcd.stop()
        raise
