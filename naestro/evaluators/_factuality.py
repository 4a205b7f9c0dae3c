"""The factuality evaluator: numeric claims in a report, checked against what the run actually read.

A claim is a sentence (or table row, or bullet) that states at least one number. It is supported when
every number in it occurs in a source: the text of the run's fs.read / web.fetch / db.query / pdf.* results,
or the output of a command the run ran (a total computed with exec.run is an observation, not a guess), and the
goal's own words (``goal``: "the orders over 100" makes 100 no invention).
A source that contains the claim itself (the agent reading its own report back) supports nothing, unless it is
known not to be the report: a call whose arguments do not name the report file (the agreed reference program the
checks' feedback offers prints the line the report must state; copied verbatim, it was UNSUPPORTED), or a
``reference`` source: what Naestro computed from the inputs before any task (agreed reference programs, a golden
goal's facts) is independent of the report, so a report that copied its line verbatim is supported by it (issue-22
slice at fda50b7: report_big_orders #2 stated the agreed "Average amount of orders over 100: 157.16666666666666"
as given in its feedback, was failed as UNSUPPORTED, and the re-plan then broke the correct report).
Numbers are compared as values (``1,234.50`` = ``1234.5``); a claim rounded to fewer decimals than the
source is supported (``12.3`` by ``12.34``). Claims without numbers are not checked: this evaluator does
not pretend to understand prose.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import ClassVar

from pydantic import Field

from naestro.evaluators._target import Target
from naestro.evaluators._verdict import EvalEnv, Evidence, Source, Subject, Verdict

__all__ = ["FactualityEvaluator", "claims", "numbers", "placeholders", "supported"]

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[*_`(])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
# Template slots a writer never filled: <total_amount>, {total_amount}, {{ total }}, TODO / TBD (snake_case with an
# underscore, so HTML tags such as <br> or <details> are not slots).
_PLACEHOLDER = re.compile(r"<[a-z]+(?:_[a-z0-9]+)+>|\{\{\s*\w+\s*\}\}|\{[a-z]+(?:_[a-z0-9]+)+\}|\b(?:TODO|TBD)\b")


def placeholders(report: str) -> list[str]:
    """Unfilled template slots: a report that still has them states nothing, whatever its numbers say (seen:
    "Total sales: $<total_amount>", which has no numeric claim to check)."""
    return [m.group() for m in _PLACEHOLDER.finditer(report)]


def numbers(text: str) -> list[Decimal]:
    out = []
    for m in _NUMBER.finditer(text):
        try:
            out.append(Decimal(m.group().replace(",", "").lstrip("+")))
        except InvalidOperation:
            continue
    return out


def claims(report: str) -> list[str]:
    """Sentences and table rows that state a number (headings, list numbering and markdown rules excluded)."""
    found: list[str] = []
    for raw in report.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or re.fullmatch(r"\|?[\s:|-]+\|?", line):
            continue
        line = _LIST_MARKER.sub("", line)
        parts = [line] if line.startswith("|") else _SENTENCE.split(line)
        found += [p.strip() for p in parts if numbers(p)]
    return found


def _matches(claim: Decimal, source: Decimal) -> bool:
    if claim == source:
        return True
    exp = claim.as_tuple().exponent
    if not isinstance(exp, int) or exp >= 0:  # integers must match exactly; decimals may be rounded
        return False
    quantum = Decimal(1).scaleb(exp)
    return source.quantize(quantum, rounding=ROUND_HALF_UP) == claim


def _independent(source: Source, claim: str, own: str | None) -> bool:
    """Whether ``source`` may support ``claim`` of the report ``own``: it does not contain the claim, or it is
    known not to be the report read back (computed references; a call whose arguments do not name the report)."""
    if claim not in source.text or source.tool in ("reference", "goal"):
        return True
    return bool(source.about) and (own is None or own not in source.about)


def supported(claim: str, sources: list[Source], *, own: str | None = None) -> tuple[bool, list[Decimal]]:
    """(every number of the claim occurs in some source that is not the claim itself, the missing numbers).
    ``own``: the report's file name, to tell a read of it from other calls."""
    pool = [n for s in sources if _independent(s, claim, own) for n in numbers(s.text)]
    values = set(pool)
    missing = [c for c in numbers(claim) if c not in values and not any(_matches(c, s) for s in pool)]
    return not missing, missing


class FactualityEvaluator(Target):
    name: ClassVar[str] = "factuality"

    min_claims: int = Field(default=1, ge=0, description="fewer checkable claims than this fails")
    max_unsupported: int = Field(default=0, ge=0, description="unsupported claims tolerated")

    async def evaluate(self, subject: Subject, env: EvalEnv) -> Verdict:
        text = self.read(subject, env)
        if text is None:
            return Verdict.of(self.name, [Evidence(check="exists", ok=False, detail=f"{self.what} was not produced")],
                              score=0.0)
        sources = env.sources()
        found = claims(text)
        evidence: list[Evidence] = []
        if slots := placeholders(text):
            evidence.append(Evidence(check="placeholders", ok=False,
                                     detail=f"{self.what} has unfilled template slots: {', '.join(slots[:5])}; "
                                     "compute the values (e.g. with exec.run) and write them in"))
        if len(found) < self.min_claims:
            evidence.append(Evidence(check="claims", ok=False,
                                     detail=f"{self.what} states {len(found)} checkable (numeric) claim(s), "
                                     f"expected at least {self.min_claims}"))
        unsupported = 0
        for i, claim in enumerate(found, start=1):
            ok, missing = supported(claim, sources, own=self.file)
            if not ok:
                unsupported += 1
            shown = claim if len(claim) <= 160 else claim[:157] + "..."
            evidence.append(Evidence(
                check="claim", ok=ok or unsupported <= self.max_unsupported, where=f"claim {i}",
                detail=f"supported: {shown!r}" if ok else
                f"UNSUPPORTED{' (tolerated)' if unsupported <= self.max_unsupported else ''}: {shown!r}; "
                f"{', '.join(map(str, missing))} not found in the {len(sources)} source(s) the run read"))
        if not found and self.min_claims == 0:
            evidence.append(Evidence(check="claims", ok=True, detail="no numeric claims to check"))
        score = (len(found) - unsupported) / len(found) if found else (1.0 if self.min_claims == 0 else 0.0)
        if slots:
            score = 0.0
        return Verdict.of(self.name, evidence, score=score)
