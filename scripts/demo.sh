#!/usr/bin/env bash
# Quickstart command 1: install, then run a real goal end to end on the embedded local model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
GOAL="${1:-Create primes.py with a function primes(n) that returns the first n prime numbers, and fib.py with fib(n) returning the n-th Fibonacci number (fib(0)=0, fib(1)=1); write pytest tests for both and make them pass.}"
exec .venv/bin/naestro run "$GOAL"
