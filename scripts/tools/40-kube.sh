#!/usr/bin/env bash
# Part "kube": a real Kubernetes control plane for the operator and Helm chart tests (like envtest):
#   bin/kube-apiserver, bin/etcd, bin/helm  built from their Go modules (Go module proxy only),
#   crds/prometheus-operator/*.yaml         monitoring.coreos.com CRDs from the prometheus-operator Go module,
#   crds/strimzi/*.yaml                      kafka.strimzi.io CRDs from Strimzi's Maven artifacts (v1 + v1beta2),
#   crds/strimzi/v1-only/*.yaml              the same with only the v1 API version.
# Builds happen in $TOOLS_DIR/build (outside the repo); each piece is skipped when its stamp matches.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=gomod.sh
source "$(dirname "$0")/gomod.sh"

# The newest versions the module proxy serves here (k8s.io/kubernetes zips stop at v1.36.3; v1.37.x are refused).
KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"      # k8s.io/kubernetes; its staging modules: k8s.io/*@v0.36.3
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"      # go.etcd.io/etcd/server/v3 (package main = etcd); k8s 1.36 uses 3.6
HELM_VERSION="${HELM_VERSION:-v3.22.0}"      # helm.sh/helm/v3
PROMOP_VERSION="${PROMOP_VERSION:-v0.94.1}"  # github.com/prometheus-operator/prometheus-operator
STRIMZI_VERSION="${STRIMZI_VERSION:-0.51.0}" # io.strimzi:api test-jar (Maven Central); v1 API since 0.49

BUILD="$TOOLS_DIR/build"
CRDS="$TOOLS_DIR/crds"
mkdir -p "$TOOLS_DIR/bin" "$BUILD" "$CRDS"

build_kube_apiserver() {
  local dir="$BUILD/kube-apiserver" ldflags
  wrapper_module "$dir" k8s.io/kubernetes "$KUBE_VERSION" "v0.${KUBE_VERSION#v1.}"
  ldflags="$(kube_ldflags "$KUBE_VERSION")"
  (cd "$dir" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ldflags" \
    -o "$TOOLS_DIR/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
}

build_etcd() {
  local dir="$BUILD/etcd"
  wrapper_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION"
  (cd "$dir" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" \
    -o "$TOOLS_DIR/bin/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  local dir="$BUILD/helm" h=helm.sh/helm/v3 ldflags k8s
  wrapper_module "$dir" "$h" "$HELM_VERSION" "$HELM_VERSION"
  # As helm's Makefile: its version, and the default Kubernetes version (`helm template`, lint) from client-go.
  k8s="$(go mod edit -json "$(moddl "$h@$HELM_VERSION" GoMod)" |
    jq -r '.Require[] | select(.Path == "k8s.io/client-go") | .Version')" # v0.MINOR.PATCH
  k8s="${k8s#v0.}"
  ldflags="-s -w -X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean"
  ldflags+=" -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=${k8s%%.*}"
  ldflags+=" -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=${k8s%%.*}"
  (cd "$dir" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ldflags" \
    -o "$TOOLS_DIR/bin/helm" "$h/cmd/helm")
}

prometheus_operator_crds() {
  local dir out="$CRDS/prometheus-operator"
  dir="$(moddl "github.com/prometheus-operator/prometheus-operator@$PROMOP_VERSION" Dir)"
  rm -rf "$out"
  mkdir -p "$out"
  cp "$dir"/example/prometheus-operator-crd/*.yaml "$out"/
  chmod u+w "$out"/*.yaml
  echo "$PROMOP_VERSION" >"$out/.version"
}

# Strimzi's crd-generator is not published past 0.45.0 and its `api` jar holds no YAML, but the api module's
# test-jar (io.strimzi:api:V:jar:tests) carries the CRDs its build generated with that very release's
# generator: crds/v1beta2/ = v1 and v1beta2 served, v1beta2 stored (the flags of the released install files,
# descriptions left out), crds/v1/ = v1 only. The first set is what a Strimzi V cluster serves.
strimzi_crds() {
  local dir="$BUILD/strimzi" out="$CRDS/strimzi" jar
  rm -rf "$dir" "$out"
  mkdir -p "$dir" "$out"
  if ! mvn -B dependency:copy -Dartifact="io.strimzi:api:$STRIMZI_VERSION:jar:tests" \
    -DoutputDirectory="$dir" >"$dir/mvn.log" 2>&1; then
    cat "$dir/mvn.log" >&2
    return 1
  fi
  jar="$dir/api-$STRIMZI_VERSION-tests.jar"
  unzip -q -j "$jar" 'crds/v1beta2/*.yaml' -d "$out"
  mkdir -p "$out/v1-only"
  unzip -q -j "$jar" 'crds/v1/*.yaml' -d "$out/v1-only"
  echo "$STRIMZI_VERSION" >"$out/.version"
}

if have kube-apiserver "$KUBE_VERSION"; then
  log "kube-apiserver $KUBE_VERSION already built"
else
  log "building kube-apiserver $KUBE_VERSION (several minutes)"
  timed kube-apiserver build_kube_apiserver
  stamp kube-apiserver "$KUBE_VERSION"
fi

if have etcd "$ETCD_VERSION"; then
  log "etcd $ETCD_VERSION already built"
else
  log "building etcd $ETCD_VERSION"
  timed etcd build_etcd
  stamp etcd "$ETCD_VERSION"
fi

if have helm "$HELM_VERSION"; then
  log "helm $HELM_VERSION already built"
else
  log "building helm $HELM_VERSION"
  timed helm build_helm
  stamp helm "$HELM_VERSION"
fi

if [[ "$(cat "$CRDS/prometheus-operator/.version" 2>/dev/null)" == "$PROMOP_VERSION" ]]; then
  log "prometheus-operator CRDs $PROMOP_VERSION already there"
else
  timed "prometheus-operator CRDs $PROMOP_VERSION" prometheus_operator_crds
fi

if [[ "$(cat "$CRDS/strimzi/.version" 2>/dev/null)" == "$STRIMZI_VERSION" ]]; then
  log "strimzi CRDs $STRIMZI_VERSION already there"
else
  timed "strimzi CRDs $STRIMZI_VERSION" strimzi_crds
fi
