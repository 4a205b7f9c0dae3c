"""The reference evaluator: a deliverable must equal the result a reference program computed from the inputs.

Small models write data files by hand and get them wrong (golden runs: adults.csv listing a 17-year-old,
totals.csv with made-up sums, a report stating $185.75 for a total of 300.50), and the checks they write for such
files do not run. The planner therefore asks for a short program that computes the file's expected content from
the starting workspace, runs it in the sandbox before any task, and keeps its output only when independent samples
agree (``nodes.reference``). This evaluator compares the deliverable with that stored output, semantically
for the file's kind, and its evidence says exactly which rows, values, lines or numbers differ: the feedback the
next attempt needs.

Comparisons: ``csv`` (same header, same rows, numbers equal within ``tolerance``; row order only when ``ordered``),
``json`` (same value, numbers within ``tolerance``), ``text`` (same lines, trailing blanks ignored), ``numbers``
(every number of the expected output stated somewhere in the file: for prose reports).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import ClassVar, Literal

from pydantic import Field, JsonValue

from naestro.evaluators._factuality import numbers
from naestro.evaluators._target import Params, inside
from naestro.evaluators._verdict import EvalEnv, Evidence, Subject, Verdict

__all__ = ["Comparison", "ReferenceEvaluator", "comparison_for", "differences", "numbers_in"]

Comparison = Literal["csv", "json", "text", "numbers"]

_LIMIT = 6  # differences reported: enough to fix a file, short enough for a small model's context


def comparison_for(path: str) -> Comparison:
    """How a file of this name is compared: CSV and JSON by value, Markdown by the numbers it states."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return {"csv": "csv", "json": "json", "md": "numbers"}.get(suffix, "text")  # type: ignore[return-value]


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text``, as the factuality evaluator reads them (thousands separators allowed)."""
    return [float(n) for n in numbers(text)]


def _close(a: float, b: float, tolerance: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=tolerance)


def _as_number(cell: str) -> float | None:
    try:
        value = float(cell.strip().replace(",", "")) if cell.strip() else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _same_cell(a: str, b: str, tolerance: float) -> bool:
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        return _close(x, y, tolerance)
    return a.strip() == b.strip()


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text.strip())) if any(c.strip() for c in row)]


def _row_key(row: list[str]) -> tuple[str, ...]:
    """Sort key for unordered comparison: numbers rounded so 150.75 and 150.750 sort alike."""
    return tuple(f"{round(n, 2):.2f}" if (n := _as_number(c)) is not None else c for c in row)


def _csv_differences(expect: str, actual: str, *, ordered: bool, tolerance: float) -> list[str]:
    want, got = _rows(expect), _rows(actual)
    if not want:
        return ["the reference output is empty"]
    if not got:
        return ["the file is empty; expected the header " + ",".join(want[0]) + f" and {len(want) - 1} row(s)"]
    out: list[str] = []
    if [c.lower() for c in want[0]] != [c.lower() for c in got[0]]:
        out.append(f"header is {','.join(got[0])!r}; expected {','.join(want[0])!r}")
    body_w, body_g = want[1:], got[1:]
    if len(body_w) != len(body_g):
        out.append(f"{len(body_g)} data row(s); expected {len(body_w)}")
    if not ordered:
        body_w, body_g = sorted(body_w, key=_row_key), sorted(body_g, key=_row_key)
        missing = [r for r in body_w if not any(_row_equal(r, g, tolerance) for g in body_g)]
        extra = [g for g in body_g if not any(_row_equal(r, g, tolerance) for r in body_w)]
        out += [f"missing row {','.join(r)}" for r in missing] + [f"unexpected row {','.join(g)}" for g in extra]
        return out
    for n, (w, g) in enumerate(zip(body_w, body_g, strict=False), start=2):
        if not _row_equal(w, g, tolerance):
            out.append(f"line {n} is {','.join(g)}; expected {','.join(w)}")
    for n, w in enumerate(body_w[len(body_g):], start=len(body_g) + 2):
        out.append(f"line {n} is missing; expected {','.join(w)}")
    for n, g in enumerate(body_g[len(body_w):], start=len(body_w) + 2):
        out.append(f"line {n} ({','.join(g)}) is not expected")
    return out


def _row_equal(a: list[str], b: list[str], tolerance: float) -> bool:
    return len(a) == len(b) and all(_same_cell(x, y, tolerance) for x, y in zip(a, b, strict=True))


def _json_differences(want: JsonValue, got: JsonValue, where: str, tolerance: float) -> list[str]:
    here = where or "the top level"
    if isinstance(want, bool) or isinstance(got, bool):
        return [] if want is got else [f"{here} is {json.dumps(got)}; expected {json.dumps(want)}"]
    if isinstance(want, int | float) and isinstance(got, int | float):
        return [] if _close(float(want), float(got), tolerance) else \
            [f"{here} is {json.dumps(got)}; expected {json.dumps(want)}"]
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}/{k} is missing" for k in want if k not in got]
        out += [f"{where}/{k} is not expected" for k in got if k not in want]
        for k in want:
            if k in got:
                out += _json_differences(want[k], got[k], f"{where}/{k}", tolerance)
        return out
    if isinstance(want, list) and isinstance(got, list):
        out = [] if len(want) == len(got) else [f"{here} has {len(got)} item(s); expected {len(want)}"]
        for i, (w, g) in enumerate(zip(want, got, strict=False)):
            out += _json_differences(w, g, f"{where}/{i}", tolerance)
        return out
    return [] if want == got else [f"{here} is {json.dumps(got)[:80]}; expected {json.dumps(want)[:80]}"]


def _text_differences(expect: str, actual: str) -> list[str]:
    want = [ln.rstrip() for ln in expect.rstrip().splitlines()]
    got = [ln.rstrip() for ln in actual.rstrip().splitlines()]
    for n, (w, g) in enumerate(zip(want, got, strict=False), start=1):
        if w != g:
            return [f"line {n} is {g!r}; expected {w!r}"]
    if len(want) != len(got):
        return [f"the file has {len(got)} line(s); expected {len(want)}: {want[len(got):][:2] or got[len(want):][:2]}"]
    return []


def _number_differences(expect: str, actual: str, tolerance: float) -> list[str]:
    stated = numbers_in(actual)
    out = []
    for line in (ln.strip() for ln in expect.splitlines()):
        for n in numbers_in(line):
            if not any(_close(n, s, tolerance) for s in stated):
                out.append(f"does not state {n:g} (the reference computed {line!r})")
    if not numbers_in(expect):
        out.append("the reference output states no number")
    return out


def differences(expect: str, actual: str, comparison: Comparison, *, ordered: bool = True,
                tolerance: float = 0.01) -> list[str]:
    """What differs between the expected and the actual content, most useful first; [] when they agree."""
    match comparison:
        case "csv":
            return _csv_differences(expect, actual, ordered=ordered, tolerance=tolerance)
        case "json":
            try:
                want = json.loads(expect)
            except json.JSONDecodeError as exc:
                return [f"the reference output is not JSON: {exc}"]
            try:
                got = json.loads(actual)
            except json.JSONDecodeError as exc:
                return [f"the file is not JSON: {exc}"]
            return _json_differences(want, got, "", tolerance)
        case "text":
            return _text_differences(expect, actual)
        case "numbers":
            return _number_differences(expect, actual, tolerance)


class ReferenceEvaluator(Params):
    """Params: ``file`` (the deliverable), ``expect`` (the reference output), ``compare``, ``ordered``,
    ``tolerance``, ``script`` (the program that computed ``expect``: provenance for the reader), ``prints`` (it
    prints the content instead of writing the file), and
    ``alternatives``: when no two reference programs agreed, the other results they computed.

    With alternatives, the deliverable is one more independent sample: it passes when it agrees with any of the
    candidates (two derivations agreeing, the same rule the planner applies to its programs), and a failure's
    evidence is the difference to the closest one."""

    name: ClassVar[str] = "reference"

    file: str = Field(min_length=1)
    expect: str = Field(min_length=1)
    compare: Comparison = "text"
    ordered: bool = True
    tolerance: float = Field(default=0.01, ge=0)
    script: str = ""
    prints: bool = False  # the script prints the file's content (it does not write the file)
    alternatives: tuple[str, ...] = ()

    async def evaluate(self, subject: Subject, env: EvalEnv) -> Verdict:
        path = inside(env.workspace, self.file)
        if path is None or not path.is_file():
            return Verdict.of(self.name, [Evidence(check="file", ok=False, where=self.file,
                                                   detail=f"{self.file} does not exist in the workspace")])
        # The reference was stored with the run's secrets and PII as handles: compare (and quote) the file so too.
        actual = env.conceal(path.read_text(errors="replace"))
        found = min((differences(c, actual, self.compare, ordered=self.ordered, tolerance=self.tolerance)
                     for c in (self.expect, *self.alternatives)), key=len)
        if not found:
            what = "the result computed from the inputs" if not self.alternatives else \
                f"one of the {1 + len(self.alternatives)} results independent programs computed from the inputs"
            return Verdict.of(self.name, [Evidence(check=self.compare, ok=True, where=self.file,
                                                   detail=f"matches {what}")])
        evidence = [Evidence(check=self.compare, ok=False, where=self.file, detail=d) for d in found[:_LIMIT]]
        if self.alternatives:
            evidence.insert(0, Evidence(check=self.compare, ok=False, where=self.file, detail=(
                f"matches none of the {1 + len(self.alternatives)} results independent programs computed from the "
                "inputs; the differences to the closest one follow")))
        if len(found) > _LIMIT:
            evidence.append(Evidence(check=self.compare, ok=False, where=self.file,
                                     detail=f"... and {len(found) - _LIMIT} more difference(s)"))
        return Verdict.of(self.name, evidence, score=0.0)
