"""Learn: router priors from the win-rates the bandit observed, carried by the next signed release.

Each (kind, endpoint) arm with enough pulls becomes ``Beta(1 + s·w, 1 + f·w)`` with s/f its successes/failures
and ``w`` shrinking the evidence to at most ``PSEUDO_COUNT`` observations, so a release does not pin the router to
yesterday's traffic. The priors are written to ``router/priors.yaml`` of the config repository at merge time (a
release records them with the measured win-rates in its changelog).

Not done yet: the live router reads its priors from models.yaml only, so these seed nothing until an operator
copies them there (a home's own observations would otherwise count twice: the store keeps them too).
Counter-examples are the other half of learning: a merged proposal's failed run stays in the golden suite of
the config repository (``golden/``), which every later proposal must pass.
"""

from __future__ import annotations

import yaml

from naestro.endpoints import Prior
from naestro.router.bandit import ArmStats

__all__ = ["PSEUDO_COUNT", "priors_from", "priors_yaml"]

PSEUDO_COUNT = 10.0


def priors_from(arms: dict[tuple[str, str], ArmStats], *, min_pulls: int = 3) -> list[Prior]:
    out = []
    for (kind, endpoint), arm in sorted(arms.items()):
        if arm.pulls < min_pulls:
            continue
        w = min(1.0, PSEUDO_COUNT / arm.pulls)
        fails = arm.pulls - arm.successes
        out.append(Prior(endpoint=endpoint, kind=kind, alpha=round(1 + arm.successes * w, 3),
                         beta=round(1 + fails * w, 3)))
    return out


def priors_yaml(priors: list[Prior]) -> str:
    if not priors:
        return "[]\n"
    return yaml.safe_dump([p.model_dump(exclude_none=True) for p in priors], sort_keys=False)
