# Shared by scripts/tools/*.sh: where tools go and small helpers. Sourced, not run.
TOOLS_DIR="${INGESTION_TOOLS_DIR:-$HOME/.cache/ingestion-observability}"
export TOOLS_DIR
export GOFLAGS="${GOFLAGS:--mod=mod}"
log() { printf '[tools] %s\n' "$*" >&2; }
# have BIN VERSION: true when $TOOLS_DIR/bin/BIN was built for VERSION (a stamp file beside it).
have() { [[ -x "$TOOLS_DIR/bin/$1" && "$(cat "$TOOLS_DIR/bin/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" > "$TOOLS_DIR/bin/.$1.version"; }
