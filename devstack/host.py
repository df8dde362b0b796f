"""The machine a node runs on (devstack/node.py): what the node changes on it, how to record that before
the node starts and put it back after it stops.

The node changes sysctls (ip_forward; kubelet's and kube-proxy's tunables), adds KUBE-*/CNI-* iptables chains,
the cni0 bridge and its veths, network namespaces, mounts under its work directory, kubepods cgroups and
a few host directories. `HostState.record()` notes what is there before a start, `restore()` removes the rest
after the stop; `machine_state()` is what a test compares before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .nodeconfig import BRIDGE, CNI_NETWORK

# The sysctls the node sets: ip_forward (pods' traffic is routed), kube-proxy's conntrack and localnet ones,
# kubelet's kernel tunables (protectKernelDefaults: false makes it set them). HostState.restore() resets each.
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
# Directories the kubelet, containerd and libcni use whatever their configuration: removed by restore() when
# record() did not find them; otherwise only our entries in them go.
HOST_DIRS = ("/var/log/containers", "/var/lib/kubelet", "/run/containerd", "/var/lib/cni")
# buildah's defaults, which the images' builds must not use (scripts/tools/55-images.sh, devstack/images.py).
BUILDAH_DIRS = ("/var/lib/containers", "/run/containers", "/etc/cni")


def run(argv: Sequence[str | os.PathLike[str]], *, check: bool = True, timeout: float = 120.0) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def node_ip() -> str:
    """The IPv4 address of the interface of the default route: the node's InternalIP."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "default"]))
    device = routes[0]["dev"]
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show", "dev", device])):
        for addr in link.get("addr_info", []):
            return str(addr["local"])
    raise RuntimeError(f"no IPv4 address on {device}")


def read_sysctl(name: str) -> str | None:
    with contextlib.suppress(OSError):
        return (Path("/proc/sys") / name).read_text().strip()
    return None


def write_sysctl(name: str, value: str) -> None:
    (Path("/proc/sys") / name).write_text(value + "\n")


def _iptables_chains() -> dict[str, list[str]]:
    """{"iptables/nat": [chains ...]} of our KUBE-*/CNI-* chains, IPv4 and IPv6."""
    found: dict[str, list[str]] = {}
    for tool in ("iptables", "ip6tables"):
        table = ""
        for line in run([f"{tool}-save"], check=False).splitlines():
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
        for line in run([f"{tool}-save"], check=False).splitlines():
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
            run([tool, "-w", "-t", table, "-D", *rule], check=False)
        for table, chains in ours.items():
            for chain in chains:
                run([tool, "-w", "-t", table, "-F", chain], check=False)
            for chain in chains:
                run([tool, "-w", "-t", table, "-X", chain], check=False)


def _netns() -> set[str]:
    with contextlib.suppress(OSError):
        return set(os.listdir("/run/netns"))
    return set()


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest last (as /proc/self/mountinfo lists them)."""
    prefix = str(directory)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def kubepods_cgroups() -> list[Path]:
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
    links = json.loads(run(["ip", "-j", "link", "show"]))
    return {
        "sysctls": {name: read_sysctl(name) for name in SYSCTLS},
        "iptables": _iptables_chains(),
        "links": sorted(
            link["ifname"] for link in links if link["ifname"] == BRIDGE or link["ifname"].startswith("veth")
        ),
        "netns": sorted(_netns()),
        "kubepods_cgroups": [str(p) for p in kubepods_cgroups()],
        "host_dirs": [d for d in (*HOST_DIRS, *BUILDAH_DIRS) if Path(d).exists()],
    }


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


@dataclass
class HostState:
    """What a node's start found on the machine, which `restore()` puts back after its stop."""

    sysctls: dict[str, str] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    chains: dict[str, list[str]] = field(default_factory=dict)
    absent_dirs: list[str] = field(default_factory=list)

    @classmethod
    def record(cls) -> HostState:
        return cls(
            sysctls={n: v for n in SYSCTLS if (v := read_sysctl(n)) is not None},
            netns=_netns(),
            chains=_iptables_chains(),
            absent_dirs=[d for d in HOST_DIRS if not Path(d).exists()],
        )

    def restore(self, work_dir: Path) -> None:
        """Remove what a node in `work_dir` added since `record()` (its processes stopped first)."""
        _remove_iptables_chains(self.chains)
        for name in _netns() - self.netns:
            path = Path("/run/netns") / name
            run(["umount", path], check=False)
            with contextlib.suppress(OSError):
                path.unlink()
        # A veth whose pod's namespace the kernel has not freed yet would outlive the bridge: deleted with it.
        for link in json.loads(run(["ip", "-j", "link", "show"])):
            if link.get("master") == BRIDGE:
                run(["ip", "link", "delete", link["ifname"]], check=False)
        if bridge_exists():
            run(["ip", "link", "delete", BRIDGE], check=False)
        for point in reversed(mounts_under(work_dir)):
            run(["umount", "--lazy", point], check=False)
        for directory in self.absent_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            for link in Path("/var/log/containers").iterdir():  # the kubelet's symlinks to our pod logs
                if link.is_symlink() and os.readlink(link).startswith(str(work_dir) + "/"):
                    link.unlink()
        with contextlib.suppress(OSError):
            for result in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):  # libcni's cache
                result.unlink()
        for cgroup in kubepods_cgroups():
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        for name, value in self.sysctls.items():
            if read_sysctl(name) != value:
                write_sysctl(name, value)
