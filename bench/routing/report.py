"""Print the routing benchmark as Markdown tables for BENCHMARKS.md (same replay as `naestro bench routing`).

Usage: python -m bench.routing.report [--items F --outcomes F] [--signalled-only]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from naestro.router.cascade import Thresholds, escalation
from naestro.router.replay import load_items, load_outcomes, replay

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=Path, default=HERE / "humaneval_items.jsonl")
    ap.add_argument("--outcomes", type=Path, default=HERE / "humaneval_outcomes.jsonl")
    ap.add_argument("--signalled-only", action="store_true",
                    help="only items whose small-model row carries signals (a partial re-recording)")
    args = ap.parse_args(argv)
    items, outcomes = load_items(args.items), load_outcomes(args.outcomes)
    ids: dict[str, set[str]] = {}
    for o in outcomes:
        ids.setdefault(o.model, set()).add(o.id)
    both = set.intersection(*ids.values())
    result = replay(items, outcomes, signalled_only=args.signalled_only)
    used = {o.id for o in outcomes if o.model == result.small and o.signals is not None} & both \
        if args.signalled_only else both
    print(f"Recorded: {len(items)} items, {len(both)} with outcomes for both models, "
          f"{len({o.id for o in outcomes if o.signals is not None and o.model == result.small})} with the small "
          f"model's signals; replayed: {len(used)}.\n")
    rows = [o for o in outcomes if o.id in used]
    print("| model | pass@1 (greedy) | mean latency s | median latency s |\n|---|---|---|---|")
    for m in sorted(ids):
        mine = [o for o in rows if o.model == m]
        passed = [o.passed for o in mine]
        lat = [o.latency_s for o in mine]
        print(f"| {m} | {sum(passed)}/{len(passed)} = {statistics.fmean(passed):.3f} | "
              f"{statistics.fmean(lat):.1f} | {statistics.median(lat):.1f} |")

    large_q = result.row("always-large").quality
    print(f"\nHeld-out test split: {result.test} items (train {result.train}); small = {result.small}, "
          f"large = {result.large}; cost = latency (s).\n")
    print("| router | quality | % of large quality | mean cost (s) | large share |\n|---|---|---|---|---|")
    for r in result.rows:
        print(f"| {r.name} | {r.quality:.3f} | {100 * r.quality / large_q:.1f}% | {r.cost:.1f} | "
              f"{100 * r.large_share:.1f}% |")
    print(f"\n{result.note}\n")
    if result.cascade_cv is not None and result.cv_large is not None:
        cv, anchor = result.cascade_cv, result.cv_large.quality
        print(f"Cascade, 2-fold cross-validated (tuned on each half, scored on the other, pooled over all "
              f"{result.train + result.test} items): quality {cv.quality:.3f} = {100 * cv.quality / anchor:.1f}% of "
              f"always-large ({anchor:.3f}), {100 * cv.large_share:.1f}% large calls, mean cost {cv.cost:.1f} s.\n")

    if result.untuned:
        anchor = next(r for r in result.untuned if r.name == "always-large").quality
        print(f"The routers with nothing tuned, over all {result.train + result.test} replayed items:\n")
        print("| router | quality | % of large quality | mean cost (s) | large share |\n|---|---|---|---|---|")
        for r in result.untuned:
            print(f"| {r.name} | {r.quality:.3f} | {100 * r.quality / anchor:.1f}% | {r.cost:.1f} | "
                  f"{100 * r.large_share:.1f}% |")
        print()

    by = {(o.id, o.model): o for o in rows}
    small_rows = [by[(i, result.small)] for i in sorted(used)]
    print("What the docstring-examples signal says about the small model's answers (all replayed items):\n")
    print("| small answer | examples pass | an example fails | no examples |\n|---|---|---|---|")
    for passed in (True, False):
        cells = []
        for verdict in (True, False, None):
            cells.append(sum(1 for o in small_rows if o.passed is passed and o.signals is not None
                             and o.signals.examples_ok is verdict))
        print(f"| {'passes the tests' if passed else 'fails the tests'} | " + " | ".join(map(str, cells)) + " |")
    fixed = Thresholds()
    rescued = sum(1 for o in small_rows if o.signals is not None and escalation(o.signals, fixed) is not None
                  and not o.passed and by[(o.id, result.large)].passed)
    print(f"\nEscalated on a failed example and fixed by the large model: {rescued}.\n")
    repaired = [o for o in small_rows if o.repair is not None]
    if repaired:
        print("The small model's repair turn on its answers that failed an example (told the failures):\n")
        print("| repaired answer | passes the tests | fails the tests |\n|---|---|---|")
        for ok in (True, False):
            mine = [o.repair for o in repaired if o.repair is not None and o.repair.examples_ok is ok]
            print(f"| {'passes every example' if ok else 'still fails an example'} | "
                  f"{sum(r.passed for r in mine)} | {sum(not r.passed for r in mine)} |")
        print()

    print("Bandit reward weight sweep (same split):\n")
    print("| latency_weight | bandit quality (% of large) | bandit large share | bandit-role quality | "
          "bandit-role large share |\n|---|---|---|---|---|")
    for w in (0.0, 0.5, 1.0, 2.0):
        res = replay(items, outcomes, latency_weight=w, signalled_only=args.signalled_only)
        b, br = res.row("bandit"), res.row("bandit-role")
        print(f"| {w} | {b.quality:.3f} ({100 * b.quality / large_q:.1f}%) | {100 * b.large_share:.1f}% | "
              f"{br.quality:.3f} ({100 * br.quality / large_q:.1f}%) | {100 * br.large_share:.1f}% |")


if __name__ == "__main__":
    main()
