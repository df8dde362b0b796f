#!/usr/bin/env bash
# Part "node": what a real single Kubernetes node on this machine needs (devstack/node.py, tests/e2e,
# `make cluster-up`), beside part "kube"'s kube-apiserver, etcd and helm:
#   Debian: containerd 1.6 + runc (crun fails on these hosts' hybrid cgroup mount), the CNI plugins,
#           iptables + conntrack (kube-proxy), buildah + debootstrap (the images, part "images");
#   bin/kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl: built from the same
#           k8s.io/kubernetes version as kube-apiserver (containerd 1.x is unlikely to work with kubelet 1.37);
#   bin/coredns; bin/prometheus-operator + bin/prometheus-config-reloader, bin/prometheus-k8s (Apache-2.0; their
#           images: part "images").
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=gomod.sh
source "$(dirname "$0")/gomod.sh"

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"      # as part "kube"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
# Not part "kube"'s v0.94.1 (its CRDs, a superset of v0.93's): the module proxy refuses that version of the
# pkg/client module the operator needs ("403 Forbidden: This module version is not available").
PROMOP_VERSION="${PROMOP_OPERATOR_VERSION:-v0.93.0}"
# Prometheus v3.x for the in-cluster Prometheus: Debian's package is built without Kubernetes service discovery
# ("field kubernetes_sd_configs not found in type config.ScrapeConfig"). The module's v0.3MM.P is v3.MM.P.
# bin/prometheus-k8s, not bin/prometheus: the other tests keep Debian's.
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
KUBE_NODE_CMDS=(kubelet kube-controller-manager kube-scheduler kube-proxy kubectl)
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack buildah debootstrap)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || { log "install by hand: ${missing[*]}"; exit 1; }
  log "apt-get install ${missing[*]}"
  as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  # policy-rc.d or not, the node starts its own containerd: the package's service is not wanted.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_kube_node() {
  local dir="$BUILD/kube-node" ldflags cmd pkgs=()
  wrapper_module "$dir" k8s.io/kubernetes "$KUBE_VERSION" "v0.${KUBE_VERSION#v1.}"
  ldflags="$(kube_ldflags "$KUBE_VERSION")"
  for cmd in "${KUBE_NODE_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  mkdir -p "$dir/bin"
  (cd "$dir" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ldflags" -o "$dir/bin/" "${pkgs[@]}")
  for cmd in "${KUBE_NODE_CMDS[@]}"; do
    mv -f "$dir/bin/$cmd" "$TOOLS_DIR/bin/$cmd"
    stamp "$cmd" "$KUBE_VERSION"
  done
}

build_coredns() {
  local gobin="$BUILD/coredns-$COREDNS_VERSION"
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  mv -f "$gobin/coredns" "$TOOLS_DIR/bin/coredns"
}

build_prometheus_operator() {
  local dir="$BUILD/prometheus-operator" m=github.com/prometheus-operator/prometheus-operator ldflags
  # Its go.mod replaces pkg/apis/monitoring and pkg/client by directories: the wrapper uses their same tags.
  wrapper_module "$dir" "$m" "$PROMOP_VERSION" "$PROMOP_VERSION"
  # The version the operator reports and puts in the config-reloader's default image (overridden anyway).
  ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMOP_VERSION#v}"
  mkdir -p "$dir/bin"
  (cd "$dir" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ldflags" -o "$dir/bin/" \
    "$m/cmd/operator" "$m/cmd/prometheus-config-reloader")
  mv -f "$dir/bin/operator" "$TOOLS_DIR/bin/prometheus-operator"
  mv -f "$dir/bin/prometheus-config-reloader" "$TOOLS_DIR/bin/prometheus-config-reloader"
  stamp prometheus-config-reloader "$PROMOP_VERSION"
}

build_prometheus() {
  local gobin="$BUILD/prometheus-$PROMETHEUS_MODULE_VERSION" minor version
  minor="${PROMETHEUS_MODULE_VERSION#v0.3}"
  version="3.$((10#${minor%%.*})).${minor#*.}"
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION"
  mv -f "$gobin/prometheus" "$TOOLS_DIR/bin/prometheus-k8s"
}

todo=()
for cmd in "${KUBE_NODE_CMDS[@]}"; do have "$cmd" "$KUBE_VERSION" || todo+=("$cmd"); done
if ((${#todo[@]})); then
  log "building ${KUBE_NODE_CMDS[*]} $KUBE_VERSION (about 5 min on a warm Go cache)"
  timed "kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl" build_kube_node
else
  log "kubelet and co. $KUBE_VERSION already built"
fi

if have coredns "$COREDNS_VERSION"; then
  log "coredns $COREDNS_VERSION already built"
else
  log "building coredns $COREDNS_VERSION (about 4 min)"
  timed coredns build_coredns
  stamp coredns "$COREDNS_VERSION"
fi

if have prometheus-operator "$PROMOP_VERSION" && have prometheus-config-reloader "$PROMOP_VERSION"; then
  log "prometheus-operator $PROMOP_VERSION already built"
else
  log "building prometheus-operator and prometheus-config-reloader $PROMOP_VERSION"
  timed prometheus-operator build_prometheus_operator
  stamp prometheus-operator "$PROMOP_VERSION"
fi

if have prometheus-k8s "$PROMETHEUS_MODULE_VERSION"; then
  log "prometheus (for the node) $PROMETHEUS_MODULE_VERSION already built"
else
  log "building prometheus $PROMETHEUS_MODULE_VERSION for the node (about 4 min)"
  timed prometheus build_prometheus
  stamp prometheus-k8s "$PROMETHEUS_MODULE_VERSION"
fi
