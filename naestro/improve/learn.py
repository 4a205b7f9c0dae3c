"""Learn: router priors from the win-rates the bandit observed, carried by the next signed release.

Each (kind, endpoint) arm with enough pulls becomes ``Beta(1 + s·w, 1 + f·w)`` with s/f its successes/failures
and ``w`` shrinking the evidence to at most ``PSEUDO_COUNT`` observations, so a release does not pin the router to
yesterday's traffic. The priors are written to ``router/priors.yaml`` of the config repository at merge time (a
release records them with the measured win-rates in its changelog), and beside them ``router/learned_from.yaml``:
the observation sums of the bandit store each prior was learned from.

The live router takes both from the active release (``naestro/improve/active.py`` → ``naestro/runtime.py``): the
priors replace models.yaml's for the same (kind, endpoint), and the bandit adds only what its store observed beyond
``learned_from``, so the evidence a prior summarises is not counted a second time by the store that still holds
it. A worker whose store never saw those observations adds nothing for them (the sums are clipped at zero).

Counter-examples are the other half of learning: a merged proposal's failed run stays in the golden suite of
the config repository (``golden/``), which every later proposal must pass.
"""

from __future__ import annotations

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from naestro.endpoints import Prior
from naestro.router.bandit import ArmStats

__all__ = ["PSEUDO_COUNT", "LearnedFrom", "learned_from_yaml", "parse_learned_from", "parse_priors", "priors_from",
           "priors_yaml"]

PSEUDO_COUNT = 10.0


class LearnedFrom(BaseModel):
    """The bandit store's observation sums for one arm when its prior was learned (alpha/beta as the store keeps
    them: fractional rewards)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    endpoint: str
    alpha: float = Field(ge=0)
    beta: float = Field(ge=0)


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


def learned_from_yaml(arms: dict[tuple[str, str], ArmStats], priors: list[Prior]) -> str:
    """The observation sums of exactly the arms that got a prior (the others' evidence is in no prior)."""
    rows = [LearnedFrom(kind=p.kind, endpoint=p.endpoint, alpha=arms[(p.kind, p.endpoint)].alpha,
                        beta=arms[(p.kind, p.endpoint)].beta).model_dump()
            for p in priors if (p.kind, p.endpoint) in arms]
    return yaml.safe_dump(rows, sort_keys=False) if rows else "[]\n"


def parse_priors(text: str) -> list[Prior]:
    """router/priors.yaml → priors; ``ValidationError`` / ``yaml.YAMLError`` when it does not load."""
    return TypeAdapter(list[Prior]).validate_python(yaml.safe_load(text) or [])


def parse_learned_from(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    """router/learned_from.yaml → (kind, endpoint) → (alpha, beta), as ``ThompsonBandit(counted=...)`` takes it."""
    rows = TypeAdapter(list[LearnedFrom]).validate_python(yaml.safe_load(text) or [])
    return {(r.kind, r.endpoint): (r.alpha, r.beta) for r in rows}
