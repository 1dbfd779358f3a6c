#!/usr/bin/env bash
# Set up everything devinterp_viz needs in ./.venv (idempotent), then run the main job or the tests.
#   ./dev.sh demo [args]   run `devinterp-viz demo` (the main job)
#   ./dev.sh test [args]   run the whole test suite (pytest args pass through)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TORCH_CPU_VERSION="2.13.0"  # the CPU build these machines hold; GPU machines keep the user's torch

say() { printf '\033[1m[dev.sh]\033[0m %s\n' "$*"; }

ensure_venv() {
  if [ ! -x "$PY" ]; then
    say "creating virtual environment in .venv"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
  fi
}

ensure_torch() {
  if "$PY" -c "import torch" 2>/dev/null; then return; fi
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "CUDA GPU found: installing torch (CUDA build)"
    "$PY" -m pip install -q torch
  else
    say "no CUDA GPU: installing the CPU build torch==$TORCH_CPU_VERSION first (never the multi-GB CUDA wheels; about a minute)"
    "$PY" -m pip install -q "torch==$TORCH_CPU_VERSION"
  fi
}

ensure_package() {  # $1: extras
  local stamp="$VENV/.dvz-installed-$1"
  local digest
  digest=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then return; fi
  say "installing devinterp_viz[$1] (editable) and its dependencies: a few minutes the first time, then skipped"
  "$PY" -m pip install -q -e ".[$1]"
  echo "$digest" > "$stamp"
}

ensure_bundle() {
  [ -f js/package.json ] || return 0
  local bundle=devinterp_viz/widgets/static/index.js
  local newest
  newest=$(find js/src js/package.json js/build.mjs -newer "$bundle" 2>/dev/null | head -1 || true)
  if [ -f "$bundle" ] && [ -z "$newest" ]; then return; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "the widget bundle is missing and npm is not installed: install Node.js 18+ and rerun" >&2
    exit 1
  fi
  say "building the widget bundle (esbuild)"
  npm --prefix js ci --no-audit --no-fund --loglevel=error
  npm --prefix js run build --silent
}

ensure_chromium() {  # Debian's chromium for the real-browser tests; never a downloaded browser
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "chromium not found and cannot apt-get it: the browser tests (tests/ui) will be skipped"
  fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  demo)
    ensure_venv; ensure_torch; ensure_package "demo"; ensure_bundle
    exec "$VENV/bin/devinterp-viz" demo "$@"
    ;;
  test)
    ensure_venv; ensure_torch; ensure_package "test"; ensure_bundle; ensure_chromium
    exec "$PY" -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo [args] | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
