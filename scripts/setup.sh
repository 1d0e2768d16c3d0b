#!/usr/bin/env bash
# Installs everything vcwave and its lab need on a fresh Debian machine (root) or an existing one:
# Go + govmomi sources (to build the lab's vcsim), Chromium and poppler-utils (report checks: HTML, printed
# PDF), and the Python package.
# Idempotent: quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ] || need_apt+=(golang-github-vmware-govmomi-dev)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)  # the report's printed-PDF check
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]}: install them (Debian: apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# Build the lab's vcsim once (cached under ~/.cache/vcwave); fails loudly if Go/govmomi are unusable.
python3 -c 'from lab.vcsim import ensure_vcsim_binary as e; print("setup: vcsim at", e())' >&2
