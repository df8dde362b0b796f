#!/usr/bin/env bash
# Installs the real services the tests and `make demo` run (no Docker here) into a cache outside the repo.
# Idempotent: each part skips what is already installed, so a fresh clone on the same machine is quick.
# Usage: scripts/tools.sh [part...]   (parts: the scripts/tools/NN-<part>.sh files; default: all)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/common.sh
source "$here/tools/common.sh"
mkdir -p "$TOOLS_DIR/bin"
wanted=("$@")
for script in "$here"/tools/[0-9][0-9]-*.sh; do
  part="$(basename "$script" .sh)"; part="${part#[0-9][0-9]-}"
  if ((${#wanted[@]})) && [[ ! " ${wanted[*]} " == *" $part "* ]]; then continue; fi
  log "== $part"
  bash "$script"
done
log "tools ready in $TOOLS_DIR"
