#!/usr/bin/env bash
# Quickstart command 1: install, then run a real goal end to end on the embedded local model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
GOAL="${1:-Create fib.py with fib(n) returning the n-th Fibonacci number (fib(0)=0, fib(1)=1), and test_fib.py with plain pytest test functions (no fixtures, no parameters) for it; make the tests pass.}"
exec .venv/bin/naestro run "$GOAL"
