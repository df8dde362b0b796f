#!/usr/bin/env bash
# Grafana Loki (single binary) built from its Go module into $TOOLS_DIR/bin/loki.
# Loki's go.mod has replace/exclude directives, so `go install module@version` refuses it: build it from a
# wrapper module (in a cache dir outside the repo) that requires Loki and carries the same directives, read
# from the downloaded module's own go.mod rather than copied by hand.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

LOKI_VERSION="${LOKI_VERSION:-v3.7.8}"
LOKI_MODULE=github.com/grafana/loki/v3

if have loki "$LOKI_VERSION"; then
  log "loki $LOKI_VERSION already built: $TOOLS_DIR/bin/loki"
  exit 0
fi
command -v go >/dev/null || { log "go is needed to build loki (Go >= the version in Loki's go.mod)"; exit 1; }
command -v jq >/dev/null || { log "jq is needed to read Loki's go.mod (apt-get install jq)"; exit 1; }

start=$SECONDS
build_dir="$TOOLS_DIR/build/loki-$LOKI_VERSION"
rm -rf "$build_dir"
mkdir -p "$build_dir"
cd "$build_dir"

log "downloading $LOKI_MODULE@$LOKI_VERSION"
src_dir="$(go mod download -json "$LOKI_MODULE@$LOKI_VERSION" | jq -er .Dir)"
upstream="$(go mod edit -json "$src_dir/go.mod")"

# The wrapper: same go version, same requirements (so the build uses exactly Loki's pinned versions),
# same replace and exclude directives, and Loki's go.sum.
go mod init ingestion-observability/loki-build 2>/dev/null
edits=(-go="$(jq -er .Go <<<"$upstream")" -require="$LOKI_MODULE@$LOKI_VERSION")
while read -r req; do edits+=(-require="$req"); done < <(jq -r '.Require[] | "\(.Path)@\(.Version)"' <<<"$upstream")
while read -r exc; do edits+=(-exclude="$exc"); done < <(jq -r '(.Exclude // [])[] | "\(.Path)@\(.Version)"' <<<"$upstream")
while IFS=$'\t' read -r old new version; do
  if [[ -z "$version" ]]; then
    # A directory replacement (./pkg/push) points into Loki's repository, but that directory is its own
    # module and so is not part of the v3 module download: keep the version Loki's go.mod requires.
    log "replace $old => $new is a local directory: using the required version of $old instead"
    continue
  fi
  edits+=(-replace="$old=$new@$version")
done < <(jq -r '(.Replace // [])[] | [(.Old.Path + (if .Old.Version then "@" + .Old.Version else "" end)), .New.Path, (.New.Version // "")] | @tsv' <<<"$upstream")
go mod edit "${edits[@]}"
cp "$src_dir/go.sum" go.sum
chmod u+w go.sum

log "building loki $LOKI_VERSION (several minutes the first time)"
ver="${LOKI_VERSION#v}"
vprefix="$LOKI_MODULE/pkg/util/build"
CGO_ENABLED=0 go build -mod=mod -trimpath -tags netgo \
  -ldflags "-s -w -X $vprefix.Version=$ver -X $vprefix.Branch=v$ver -X $vprefix.BuildUser=ingestion-observability" \
  -o "$build_dir/loki" "$LOKI_MODULE/cmd/loki"
"$build_dir/loki" -version | head -1 >&2
mv -f "$build_dir/loki" "$TOOLS_DIR/bin/loki"
stamp loki "$LOKI_VERSION"
log "loki $LOKI_VERSION built in $((SECONDS - start))s: $TOOLS_DIR/bin/loki"
