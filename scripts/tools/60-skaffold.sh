#!/usr/bin/env bash
# Part "skaffold": the developer loop (`make dev`, skaffold.yaml, devstack/skaffold.py):
#   bin/skaffold  built from the Go module github.com/GoogleContainerTools/skaffold/v2 (module proxy only), as its
#                 Makefile's release build (tags, version stamp): the longest part of `make tools`;
#   podman        Debian's: its Docker-compatible API on buildah's storage (part "images") answers skaffold's
#                 questions about the local images of the node profile (no Docker here). Installed without
#                 its /etc/cni (a default network file): the node has its own CNI configuration, and
#                 /etc/cni stays absent (devstack/host.py BUILDAH_DIRS).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=gomod.sh
source "$(dirname "$0")/gomod.sh"

# The version the module proxy serves here; skaffold.yaml's apiVersion is the newest it reads
# (`skaffold schema list`, devstack/skaffold.py CONFIG_VERSION).
SKAFFOLD_VERSION="${SKAFFOLD_VERSION:-v2.16.1}"

if ! dpkg-query -W -f='${Status}' podman 2>/dev/null | grep -q 'install ok installed'; then
  command -v apt-get >/dev/null || { log "install podman by hand"; exit 1; }
  as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
  log "apt-get install podman"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    -o 'DPkg::Options::=--path-exclude=/etc/cni*' podman >/dev/null
fi

build_skaffold() {
  local m=github.com/GoogleContainerTools/skaffold/v2 dir="$BUILD/skaffold" src ldflags
  src="$(moddl "$m@$SKAFFOLD_VERSION" Dir)"
  rm -rf "$dir"
  mkdir -p "$dir"
  # A copy of the module, so that its go.mod's replace directives apply (`go install m@v` refuses them).
  cp -r "$src" "$dir/src"
  chmod -R u+w "$dir/src"
  ldflags="-s -w -X $m/pkg/skaffold/version.version=$SKAFFOLD_VERSION"
  ldflags+=" -X $m/pkg/skaffold/version.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  (cd "$dir/src" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags "timetzdata osusergo netgo release" \
    -ldflags "$ldflags" -o "$TOOLS_DIR/bin/skaffold" ./cmd/skaffold)
  rm -rf "$dir"
}

if have skaffold "$SKAFFOLD_VERSION"; then
  log "skaffold $SKAFFOLD_VERSION already built"
else
  log "building skaffold $SKAFFOLD_VERSION from its Go module (the longest part)"
  timed "skaffold" build_skaffold
  stamp skaffold "$SKAFFOLD_VERSION"
fi
