#!/usr/bin/env bash
# Quickstart command 2: install, then run lint, types and the whole test suite (including the end-to-end
# tests against the real local model server) with coverage per package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check naestro graphs nodes policies checkpoints mcp_servers studio inference tests bench
.venv/bin/mypy
set +e
.venv/bin/python -m pytest --cov --cov-report=term "$@"
code=$?
set -e
# pytest exit 5 = no tests collected: treat as failure, a suite that runs nothing proves nothing.
if [ "$code" -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit "$code"
