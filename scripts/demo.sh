#!/usr/bin/env bash
# Quickstart command 1: install, then run a real goal end to end on the embedded local model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
GOAL="${1:-Create fib.py with fib(n) returning the n-th Fibonacci number (fib(0)=0, fib(1)=1), and test_fib.py with plain pytest test functions (no fixtures, no parameters) for it; make the tests pass.}"
# Copilot mode (the default) asks before every shell command; the demo pre-approves exec.run (which runs in
# the bubblewrap sandbox) so it finishes unattended. Without --approve, an interactive terminal prompts
# approve / deny / edit, and a script gets exit code 4 and answers with `naestro approve RUN`.
exec .venv/bin/naestro run --approve exec.run "$GOAL"
