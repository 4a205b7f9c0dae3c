"""Print the routing benchmark as Markdown tables for BENCHMARKS.md (same replay as `naestro bench routing`).

Usage: python -m bench.routing.report [--items F --outcomes F]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from naestro.router.replay import load_items, load_outcomes, replay

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=Path, default=HERE / "humaneval_items.jsonl")
    ap.add_argument("--outcomes", type=Path, default=HERE / "humaneval_outcomes.jsonl")
    args = ap.parse_args(argv)
    items, outcomes = load_items(args.items), load_outcomes(args.outcomes)
    by_model: dict[str, list[bool]] = {}
    latency: dict[str, list[float]] = {}
    ids: dict[str, set[str]] = {}
    for o in outcomes:
        by_model.setdefault(o.model, []).append(o.passed)
        latency.setdefault(o.model, []).append(o.latency_s)
        ids.setdefault(o.model, set()).add(o.id)
    both = set.intersection(*ids.values())
    print(f"Recorded: {len(items)} items, {len(both)} with outcomes for both models.\n")
    print("| model | pass@1 (greedy) | mean latency s | median latency s |\n|---|---|---|---|")
    for m in sorted(by_model):
        print(f"| {m} | {sum(by_model[m])}/{len(by_model[m])} = {statistics.fmean(by_model[m]):.3f} | "
              f"{statistics.fmean(latency[m]):.1f} | {statistics.median(latency[m]):.1f} |")
    result = replay(items, outcomes)
    large_q = result.row("always-large").quality
    print(f"\nHeld-out test split: {result.test} items (train {result.train}); small = {result.small}, "
          f"large = {result.large}; cost = latency (s).\n")
    print("| router | quality | % of large quality | mean cost (s) | large share |\n|---|---|---|---|---|")
    for r in result.rows:
        print(f"| {r.name} | {r.quality:.3f} | {100 * r.quality / large_q:.1f}% | {r.cost:.1f} | "
              f"{100 * r.large_share:.1f}% |")
    print(f"\n{result.note}\n")
    print("Bandit reward weight sweep (same split):\n")
    print("| latency_weight | bandit quality (% of large) | bandit large share | bandit-role quality | "
          "bandit-role large share |\n|---|---|---|---|---|")
    for w in (0.0, 0.5, 1.0, 2.0):
        res = replay(items, outcomes, latency_weight=w)
        b, br = res.row("bandit"), res.row("bandit-role")
        print(f"| {w} | {b.quality:.3f} ({100 * b.quality / large_q:.1f}%) | {100 * b.large_share:.1f}% | "
              f"{br.quality:.3f} ({100 * br.quality / large_q:.1f}%) | {100 * br.large_share:.1f}% |")


if __name__ == "__main__":
    main()
