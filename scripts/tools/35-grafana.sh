#!/usr/bin/env bash
# Grafana's own checkers for the dashboard tests (all Apache-2.0, from npm): @grafana/lezer-logql (the LogQL
# grammar of Grafana's query editor) with its peer @lezer/lr, @grafana/schema (Grafana's dashboard and
# panel types) and ts-json-schema-generator + typescript (the tests turn those types into JSON schemas).
# The exact versions are devstack/grafana/package.json; installed into $TOOLS_DIR/node/grafana-<stamp>,
# <stamp> = the start of that file's sha256, which is also how devstack.grafana finds them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

package="$here/../../devstack/grafana/package.json"
stamp="$(sha256sum "$package" | cut -c1-12)"
dest="$TOOLS_DIR/node/grafana-$stamp"

if [[ "$(cat "$dest/.version" 2>/dev/null)" == "$stamp" && -d "$dest/node_modules" ]]; then
  log "grafana npm packages already installed: $dest"
  exit 0
fi
command -v node >/dev/null || { log "node (20+) is needed to run the grafana checks"; exit 1; }
command -v npm >/dev/null || { log "npm is needed to install the grafana checks (apt-get install npm)"; exit 1; }

start=$SECONDS
partial="$dest.partial"
npm_log="$TOOLS_DIR/build/grafana-$stamp.log"
rm -rf "$partial" "$dest"
mkdir -p "$partial" "$TOOLS_DIR/build"
cp "$package" "$partial/package.json"  # npm installs beside its package.json: keep that out of the repo
log "npm install of devstack/grafana/package.json's pinned versions"
# @grafana/lezer-logql declares node >= 24 but is a plain generated parser: npm only warns on node 20.
# `npm ls` fails on a missing or mismatched package, e.g. a peer @lezer/lr other than the one pinned.
if ! npm install --no-audit --no-fund --ignore-scripts --prefix "$partial" >"$npm_log" 2>&1 \
  || ! npm ls --prefix "$partial" >>"$npm_log" 2>&1; then
  cat "$npm_log" >&2
  exit 1
fi
mv "$partial" "$dest"
echo "$stamp" > "$dest/.version"
log "grafana npm packages in $dest ($((SECONDS - start))s)"
