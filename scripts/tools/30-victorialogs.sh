#!/usr/bin/env bash
# VictoriaLogs (Apache-2.0), the local log store of the tests, the demo and the bench: it serves Loki's push
# API at /insert/loki/api/v1/push. Built with `go install` from its Go module into $TOOLS_DIR/bin/victoria-logs.
# (Loki itself is AGPL: this project never builds it; the chart keeps it as a dependency the cluster pulls.)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"

VLOGS_VERSION="${VLOGS_VERSION:-v1.52.1}"
VLOGS_MODULE=github.com/VictoriaMetrics/VictoriaLogs

if have victoria-logs "$VLOGS_VERSION"; then
  log "victoria-logs $VLOGS_VERSION already built: $TOOLS_DIR/bin/victoria-logs"
  exit 0
fi
command -v go >/dev/null || { log "go is needed to build victoria-logs"; exit 1; }

start=$SECONDS
log "building victoria-logs $VLOGS_VERSION (about 40 s with empty Go caches)"
GOBIN="$TOOLS_DIR/build/victoria-logs-$VLOGS_VERSION" CGO_ENABLED=0 \
  go install -trimpath -ldflags "-s -w" "$VLOGS_MODULE/app/victoria-logs@$VLOGS_VERSION"
mv -f "$TOOLS_DIR/build/victoria-logs-$VLOGS_VERSION/victoria-logs" "$TOOLS_DIR/bin/victoria-logs"
"$TOOLS_DIR/bin/victoria-logs" -version >&2
stamp victoria-logs "$VLOGS_VERSION"
log "victoria-logs $VLOGS_VERSION built in $((SECONDS - start))s: $TOOLS_DIR/bin/victoria-logs"
