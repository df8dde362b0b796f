#!/usr/bin/env bash
# The Debian packages the other parts use to fetch and build the services: jq (reads go.mod as JSON),
# unzip (jars), Maven and a JDK (Kafka's jars), Go is expected on the machine (/usr/local/go).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

declare -A wanted=([jq]=jq [unzip]=unzip [mvn]=maven [java]=openjdk-17-jre-headless)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${wanted[$cmd]}")
done
command -v go >/dev/null || { log "Go (1.26) is needed on PATH to build VictoriaLogs, kube-apiserver, etcd and helm"; exit 1; }
if ((${#missing[@]} == 0)); then
  exit 0
fi
command -v apt-get >/dev/null || { log "install by hand: ${missing[*]}"; exit 1; }
as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
log "apt-get install ${missing[*]}"
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
