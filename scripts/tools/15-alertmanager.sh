#!/usr/bin/env bash
# Part "alertmanager": a real Alertmanager (Apache-2.0) for the local stack and the tests (devstack/alertmanager.py)
# and for the node's image (part "images"):
#   bin/alertmanager, bin/amtool  built from the Go module github.com/prometheus/alertmanager (module proxy only).
# The module zip lacks the web UI: ui/web.go embeds ui/app/dist, which upstream's release build generates (Elm and
# npm) and never commits, so `go build` of the zip as-is fails ("pattern app/dist: no matching files found"). The
# build uses a copy of the module whose ui/app/dist holds a one-page stub saying so; the API v2 (/api/v2/...), the
# /-/ready, /-/healthy and /-/reload endpoints and amtool are complete.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=gomod.sh
source "$(dirname "$0")/gomod.sh"

# The newest version the module proxy serves here.
ALERTMANAGER_VERSION="${ALERTMANAGER_VERSION:-v0.35.0}"

# brotli_stored FILE: FILE as a brotli stream (RFC 7932) of one uncompressed meta-block (at most 64 KiB): no
# brotli tool needed. Bits, LSB first: WBITS=16 (0), ISLAST=0, MNIBBLES=4 (00), MLEN-1 (16 bits),
# ISUNCOMPRESSED=1, padding to the byte; the bytes as they are; then ISLAST=1 + ISLASTEMPTY=1 (0x03).
brotli_stored() {
  local size header
  size="$(stat -c %s "$1")"
  ((size > 0 && size <= 65536)) || { log "brotli_stored: $1 is empty or over 64 KiB"; return 1; }
  header=$((((size - 1) << 4) | (1 << 20)))
  printf "\\x$(printf %02x $((header & 255)))\\x$(printf %02x $(((header >> 8) & 255)))"
  printf "\\x$(printf %02x $((header >> 16)))"
  cat "$1"
  printf '\x03'
}

# stub_ui DIST: the files ui/web.go serves at / (dist/elm) and /ui/ (dist/mantine): index.html, kept like
# upstream's build only as index.html.gz and index.html.br (the file served depends on Accept-Encoding).
stub_ui() {
  local app page up
  for app in elm mantine; do
    up=""
    [[ "$app" == elm ]] || up="../" # /ui/ is one level below the API's root
    mkdir -p "$1/$app"
    page="$1/$app/index.html"
    cat >"$page" <<EOF
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Alertmanager $ALERTMANAGER_VERSION</title></head>
<body><p>Alertmanager $ALERTMANAGER_VERSION built from its Go module, without the web UI (not in the module).
Use the API (<a href="${up}api/v2/status">api/v2/status</a>, <a href="${up}api/v2/alerts">api/v2/alerts</a>,
<a href="${up}api/v2/silences">api/v2/silences</a>) or <code>amtool</code>.</p></body></html>
EOF
    gzip -9 -n -c "$page" >"$page.gz"
    brotli_stored "$page" >"$page.br"
    rm "$page"
  done
}

build_alertmanager() {
  local m=github.com/prometheus/alertmanager dir="$BUILD/alertmanager" src ldflags
  src="$(moddl "$m@$ALERTMANAGER_VERSION" Dir)"
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  cp -r "$src" "$dir/src"
  chmod -R u+w "$dir/src"
  stub_ui "$dir/src/ui/app/dist"
  # As its .promu.yml: tag netgo, the version stamps of `alertmanager --version` and the build_info metric.
  ldflags="-s -w -X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}"
  (cd "$dir/src" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags netgo -ldflags "$ldflags" -o "$dir/bin/" \
    ./cmd/alertmanager ./cmd/amtool)
  mv -f "$dir/bin/alertmanager" "$TOOLS_DIR/bin/alertmanager"
  mv -f "$dir/bin/amtool" "$TOOLS_DIR/bin/amtool"
  stamp amtool "$ALERTMANAGER_VERSION"
  rm -rf "$dir/src"
}

if have alertmanager "$ALERTMANAGER_VERSION" && have amtool "$ALERTMANAGER_VERSION"; then
  log "alertmanager $ALERTMANAGER_VERSION already built"
else
  log "building alertmanager and amtool $ALERTMANAGER_VERSION (a few minutes)"
  timed "alertmanager, amtool" build_alertmanager
  stamp alertmanager "$ALERTMANAGER_VERSION"
fi
