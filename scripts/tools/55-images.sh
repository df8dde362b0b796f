#!/usr/bin/env bash
# Part "images": the container images of the local node (devstack/node.py), built with buildah (no Docker, no
# registry can be pulled from here), each kept as an OCI archive images/<name>.tar (+ <name>.ref, its name)
# that the node imports into containerd at start:
#   python-base  debootstrap'd bookworm (minbase) + python3, venv, pip, with this machine's CA certificates
#                (pip in builds reaches PyPI): the local base of images/Dockerfile (ARG PYTHON_IMAGE);
#   pause        the sandbox image, a static C program;
#   prometheus, coredns, prometheus-operator, prometheus-config-reloader, victoria-logs: the static Go
#                binaries of parts "node" and "victorialogs" on an empty rootfs (Debian's prometheus has no
#                Kubernetes service discovery, so prometheus is part "node"'s build);
#   alertmanager part "alertmanager"'s alertmanager and amtool, laid out as upstream's image for the
#                prometheus-operator's StatefulSet (see alertmanager_image).
# Names are localhost/ingestion-observability/<name>, never an official image's name. buildah's storage is
# images/storage (overlay); runc everywhere (crun fails on these hosts' hybrid cgroup mount).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

IMAGES="$TOOLS_DIR/images"
REPO_PREFIX=localhost/ingestion-observability
RECIPE=2 # bump when a recipe below changes: every image is rebuilt
PAUSE_VERSION=1.0
mkdir -p "$IMAGES"

# Storage and engine settings of every buildah call, here and in devstack/images.py (same files).
cat >"$IMAGES/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$IMAGES/storage"
runroot = "$IMAGES/storage-run"
EOF
# netns = "host": buildah never sets up a CNI network of its own (a bridge, iptables chains, ip_forward=1);
# its CNI directory (made at every start) in the cache, not /etc/cni; podman's (part "skaffold") run files
# too, not /run/libpod.
cat >"$IMAGES/containers.conf" <<EOF
[containers]
netns = "host"
[network]
network_config_dir = "$IMAGES/cni"
[engine]
tmp_dir = "$IMAGES/podman-run"
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[engine.runtimes]
runc = ["/usr/sbin/runc"]
EOF
export CONTAINERS_STORAGE_CONF="$IMAGES/storage.conf" CONTAINERS_CONF="$IMAGES/containers.conf"
export BUILDAH_RUNTIME=/usr/sbin/runc BUILDAH_ISOLATION=oci
# buildah keeps a blob cache in /var/lib/containers/cache whatever its configuration: not left behind.
[[ -e /var/lib/containers ]] || trap 'rm -rf /var/lib/containers' EXIT

# fresh NAME VERSION: true when images/NAME.tar was made for VERSION with this RECIPE.
fresh() { [[ -f "$IMAGES/$1.tar" && "$(cat "$IMAGES/.$1.version" 2>/dev/null)" == "$2/$RECIPE" ]]; }

# save NAME TAG: the image NAME:TAG is committed; export it as images/NAME.tar, note its name, drop the
# previous build from buildah's storage.
save() {
  local ref="$REPO_PREFIX/$1:$2" old
  old="$(cat "$IMAGES/$1.ref" 2>/dev/null || true)"
  [[ -z "$old" || "$old" == "$ref" ]] || buildah rmi "$old" >/dev/null 2>&1 || true
  rm -f "$IMAGES/$1.tar"
  buildah push --quiet "$ref" "oci-archive:$IMAGES/$1.tar:$ref" >/dev/null
  echo "$ref" >"$IMAGES/$1.ref"
  echo "$2/$RECIPE" >"$IMAGES/.$1.version"
  log "image $ref ready"
}

# static_image NAME TAG BINARY: BINARY alone as /bin/NAME (the path prometheus-operator runs its config-reloader
# by), run as nobody.
static_image() {
  local name="$1" tag="$2" bin="$3" ctr
  ctr="$(buildah from scratch)"
  buildah copy --quiet --chmod 0755 "$ctr" "$bin" "/bin/$name" >/dev/null
  buildah config --entrypoint "[\"/bin/$name\"]" --user 65534:65534 "$ctr"
  buildah commit --quiet --rm "$ctr" "$REPO_PREFIX/$name:$tag" >/dev/null
  save "$name" "$tag"
}

# alertmanager_image TAG: upstream's image without its busybox. prometheus-operator's StatefulSet sets only the
# container's args (--config.file=/etc/alertmanager/config_out/alertmanager.env.yaml, --storage.path=/alertmanager,
# --web.listen-address, --cluster.*, --web.config.file=/etc/alertmanager/web_config/web-config.yaml, ...): the
# entrypoint must be /bin/alertmanager. Every path it uses is a volume (config, certs, templates, storage, read-only
# root filesystem); the config-reloader beside it reloads over HTTP (POST /-/reload), so no shell is needed. As
# upstream: amtool in /bin (`kubectl exec ... -- amtool`), /alertmanager owned by nobody as the working directory,
# the same default command, and a CA bundle (this machine's) for receivers over TLS (SMTP, webhooks).
alertmanager_image() {
  local tag="$1" ctr tree="$TOOLS_DIR/build/alertmanager-image"
  rm -rf "$tree"
  mkdir -p "$tree/alertmanager"
  chmod 0775 "$tree/alertmanager" # as upstream's chmod g+w (a volume's fsGroup)
  ctr="$(buildah from scratch)"
  buildah copy --quiet --chmod 0755 "$ctr" "$TOOLS_DIR/bin/alertmanager" /bin/alertmanager >/dev/null
  buildah copy --quiet --chmod 0755 "$ctr" "$TOOLS_DIR/bin/amtool" /bin/amtool >/dev/null
  buildah copy --quiet --chmod 0644 "$ctr" /etc/ssl/certs/ca-certificates.crt \
    /etc/ssl/certs/ca-certificates.crt >/dev/null
  buildah copy --quiet --chown 65534:65534 "$ctr" "$tree" / >/dev/null
  buildah config --entrypoint '["/bin/alertmanager"]' \
    --cmd '["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]' \
    --workingdir /alertmanager --user 65534:65534 --port 9093 "$ctr"
  buildah commit --quiet --rm "$ctr" "$REPO_PREFIX/alertmanager:$tag" >/dev/null
  rm -rf "$tree"
  save alertmanager "$tag"
}

# The Debian mirror this machine's apt uses (deb822 sources or sources.list), for debootstrap.
debian_mirror() {
  local uri
  uri="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [[ -n "$uri" ]] || uri="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [[ -n "$uri" ]] || { log "no bookworm mirror in /etc/apt/sources*"; return 1; }
  echo "$uri"
}

python_base() {
  local rootfs="$TOOLS_DIR/build/python-base-rootfs" ctr mnt
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)" >"$TOOLS_DIR/build/debootstrap.log" 2>&1 ||
    { tail -20 "$TOOLS_DIR/build/debootstrap.log" >&2; return 1; }
  # The machine's CA bundle (it may trust a proxy's CA that Debian's bundle lacks).
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  tar -C "$rootfs" -cf - . | tar -C "$mnt" -xf -
  buildah umount "$ctr" >/dev/null
  buildah config --cmd '["python3"]' --env LANG=C.UTF-8 "$ctr"
  buildah commit --quiet --rm "$ctr" "$REPO_PREFIX/python-base:bookworm" >/dev/null
  rm -rf "$rootfs"
  save python-base bookworm
}

pause_image() {
  local dir="$TOOLS_DIR/build/pause"
  mkdir -p "$dir"
  cat >"$dir/pause.c" <<'EOF'
/* The pod sandbox's process: holds the namespaces, reaps nothing, exits on SIGINT/SIGTERM. */
#include <signal.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  for (;;) pause();
}
EOF
  gcc -static -Os -s -o "$dir/pause" "$dir/pause.c"
  static_image pause "$PAUSE_VERSION" "$dir/pause"
}


tool_version() { cat "$TOOLS_DIR/bin/.$1.version"; }
start=$SECONDS
fresh python-base bookworm || { log "building python-base (debootstrap, about 2 min)"; python_base; }
fresh pause "$PAUSE_VERSION" || pause_image
for tool in coredns prometheus-k8s prometheus-operator prometheus-config-reloader victoria-logs alertmanager amtool; do
  [[ -x "$TOOLS_DIR/bin/$tool" ]] ||
    { log "$tool missing: run scripts/tools.sh node victorialogs alertmanager"; exit 1; }
done

v="$(tool_version prometheus-k8s)"
fresh prometheus "$v" || static_image prometheus "$v" "$TOOLS_DIR/bin/prometheus-k8s"
v="$(tool_version coredns)"
fresh coredns "$v" || static_image coredns "$v" "$TOOLS_DIR/bin/coredns"
v="$(tool_version prometheus-operator)"
fresh prometheus-operator "$v" || static_image prometheus-operator "$v" "$TOOLS_DIR/bin/prometheus-operator"
v="$(tool_version prometheus-config-reloader)"
fresh prometheus-config-reloader "$v" ||
  static_image prometheus-config-reloader "$v" "$TOOLS_DIR/bin/prometheus-config-reloader"
v="$(tool_version victoria-logs)"
fresh victoria-logs "$v" || static_image victoria-logs "$v" "$TOOLS_DIR/bin/victoria-logs"
v="$(tool_version alertmanager)"
fresh alertmanager "$v" || alertmanager_image "$v"
buildah rmi --prune >/dev/null # images a rebuild untagged
log "images ready in $IMAGES ($((SECONDS - start))s)"
