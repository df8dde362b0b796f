"""What the node's components run with (devstack/node.py): containerd's, the CNI bridge's, the kubelet's and
kube-proxy's configurations, CoreDNS's manifests, and the images `make tools` made for the node.

Pure data: nothing here starts a process or changes the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .images import IMAGE_PREFIX, RUNC
from .tools import ToolMissingError, tools_dir

NODE_NAME = "ingestion-node"
SERVICE_CIDR = "10.96.0.0/16"  # the `kubernetes` Service's address is its first: 10.96.0.1
DNS_SERVICE_IP = "10.96.0.10"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "cni0"
CNI_NETWORK = "ingestion-node"  # the CNI network's name; libcni caches its results under it
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN_DIR = "/usr/lib/cni"


def containerd_config(work: Path, pause_image: str) -> str:
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


def cni_config(work: Path) -> dict[str, Any]:
    # No ipMasq: pods only talk to each other and to this node's addresses, nothing is routed further.
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
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


def kubelet_config(
    ca_cert: Path, pod_logs: Path, sock: Path, ip: str, port: int, healthz: int
) -> dict[str, Any]:
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
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        # A test node on a shared disk: no eviction, no image garbage collection (no image can be pulled).
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 60,
        "rotateCertificates": False,
        "podLogsDir": str(pod_logs),
        "shutdownGracePeriod": "0s",
        # Secret and ConfigMap volumes follow their objects within seconds (prometheus-operator's config).
        "syncFrequency": "10s",
    }


def kube_proxy_config(kubeconfig: Path, ip: str, healthz: int, metrics: int) -> dict[str, Any]:
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


# --- manifests ------------------------------------------------------------------------------------------

# The securityContext of every container the node runs for the tests (the restricted Pod Security level).
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def rbac(namespace: str, account: str, role: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ServiceAccount `account` and the ClusterRole `role` of `rules` bound to it."""
    meta = {"name": account, "namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
    ]


def deployment(namespace: str, name: str, labels: dict[str, str], pod: dict[str, Any]) -> dict[str, Any]:
    """One replica of the pod spec `pod`, selected by `labels`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def coredns_manifests(image: str) -> list[dict[str, Any]]:
    """CoreDNS as kubeadm deploys it, answering only for the cluster (no forwarding out of the machine)."""
    labels = {"k8s-app": "kube-dns"}
    namespace = "kube-system"
    meta = {"name": "coredns", "namespace": namespace}
    rules = [
        {
            "apiGroups": [""],
            "resources": ["endpoints", "services", "pods", "namespaces"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    ]
    container = {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 1053, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "securityContext": RESTRICTED,
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
    }
    pod = {
        "serviceAccountName": "coredns",
        "dnsPolicy": "Default",
        "priorityClassName": "system-cluster-critical",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534},
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
    }
    return [
        *rbac(namespace, "coredns", "system:coredns", rules),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREDNS_COREFILE}},
        deployment(namespace, "coredns", labels, pod),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": namespace, "labels": labels},
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
    it is only the local base of images/Dockerfile)."""
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
