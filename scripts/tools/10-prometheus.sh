#!/usr/bin/env bash
# Prometheus and promtool from the Debian package (/usr/bin). The tests and `make demo` run their own
# prometheus process, so the package's service must not start (or stay started) at install time.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  log "prometheus already installed: $(prometheus --version 2>&1 | head -1)"
  exit 0
fi
command -v apt-get >/dev/null || { log "no apt-get: install prometheus and promtool (2.x) on PATH by hand"; exit 1; }

as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive

# No service start during the install: a policy-rc.d that refuses (101) every invoke-rc.d action, only for
# the time of the install and only if the machine has none of its own.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [[ ! -e "$policy" ]]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  own_policy=1
fi
cleanup() { if [[ -n "$own_policy" ]]; then as_root rm -f "$policy"; fi; }
trap cleanup EXIT

# apt-get update only when the package lists do not know prometheus yet (fresh machines, empty lists).
if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  log "apt-get update"
  as_root apt-get update -qq
fi
log "apt-get install prometheus"
as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Whatever the init system, leave no packaged prometheus service enabled or running.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/prometheus ]] && /etc/init.d/prometheus status >/dev/null 2>&1; then
  as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
if pgrep -u prometheus -x prometheus >/dev/null 2>&1; then
  log "a packaged prometheus is still running as user prometheus (pid $(pgrep -u prometheus -x prometheus | tr '\n' ' ')): stop it"
  exit 1
fi
command -v promtool >/dev/null || { log "promtool missing after installing prometheus"; exit 1; }
log "installed $(prometheus --version 2>&1 | head -1)"
