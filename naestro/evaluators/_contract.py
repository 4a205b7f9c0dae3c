"""The output-contract evaluator: JSON Schema, a regex, and CSV shape (row counts, column types, per-group totals).

Every facet is checked independently and reported as its own evidence, so the next attempt learns all
that is wrong at once rather than one problem per retry.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import date
from typing import ClassVar, Literal

from jsonschema import Draft202012Validator
from pydantic import Field, JsonValue

from naestro.evaluators._target import Params, Target
from naestro.evaluators._verdict import EvalEnv, Evidence, Subject, Verdict

__all__ = ["ColumnType", "ContractEvaluator", "CsvShape", "GroupTotals", "csv_evidence", "group_totals"]

ColumnType = Literal["int", "float", "str", "bool", "date"]


class GroupTotals(Params):
    """sum(``sum``) per distinct ``by`` must equal ``expect`` (within ``tolerance``); row order is irrelevant."""

    by: str
    sum: str
    expect: dict[str, float]
    tolerance: float = Field(default=1e-6, ge=0)


class CsvShape(Params):
    rows: int | None = Field(default=None, ge=0, description="exact number of data rows (header excluded)")
    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    columns: dict[str, ColumnType] = Field(default_factory=dict, description="required columns and their types")
    exact_columns: bool = Field(default=False, description="no columns besides these, in this order")
    totals: GroupTotals | None = None


def _is(kind: ColumnType, value: str) -> bool:
    v = value.strip()
    match kind:
        case "str":
            return True
        case "int":
            return re.fullmatch(r"[+-]?\d+", v) is not None
        case "float":
            try:
                return math.isfinite(float(v))
            except ValueError:
                return False
        case "bool":
            return v.lower() in ("true", "false", "0", "1", "yes", "no")
        case "date":
            try:
                date.fromisoformat(v)
            except ValueError:
                return False
            return True


def group_totals(rows: list[dict[str, str]], by: str, col: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in rows:
        key = (r.get(by) or "").strip()
        totals[key] = totals.get(key, 0.0) + float((r.get(col) or "0").strip())
    return totals


def csv_evidence(text: str, shape: CsvShape, *, what: str = "csv") -> list[Evidence]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    rows = [{(k or "").strip(): (v if isinstance(v, str) else "") for k, v in r.items()} for r in reader]
    out: list[Evidence] = []
    n = len(rows)
    if shape.rows is not None:
        out.append(Evidence(check="csv.rows", ok=n == shape.rows, detail=f"{what} has {n} rows, expected {shape.rows}"))
    if shape.min_rows is not None:
        out.append(Evidence(check="csv.rows", ok=n >= shape.min_rows,
                            detail=f"{what} has {n} rows, expected at least {shape.min_rows}"))
    if shape.max_rows is not None:
        out.append(Evidence(check="csv.rows", ok=n <= shape.max_rows,
                            detail=f"{what} has {n} rows, expected at most {shape.max_rows}"))
    if shape.columns:
        missing = [c for c in shape.columns if c not in header]
        out.append(Evidence(check="csv.columns", ok=not missing,
                            detail=f"header {header}" + (f" lacks {missing}" if missing else " has the columns")))
        if shape.exact_columns:
            order = list(shape.columns)
            out.append(Evidence(check="csv.columns", ok=header == order, detail=f"header {header}, expected {order}"))
        for col, kind in shape.columns.items():
            if col in missing:
                continue
            bad = [(i, r[col]) for i, r in enumerate(rows, start=2) if not _is(kind, r.get(col) or "")]
            out.append(Evidence(check="csv.type", ok=not bad, where=f"line {bad[0][0]}" if bad else "",
                                detail=f"column {col!r} is {kind}" if not bad else
                                f"column {col!r} should be {kind}: {len(bad)} bad value(s), first {bad[0][1]!r}"))
    if shape.totals is not None:
        t = shape.totals
        if t.by not in header or t.sum not in header:
            out.append(Evidence(check="csv.totals", ok=False, detail=f"needs columns {t.by!r} and {t.sum!r}"))
        else:
            try:
                got = group_totals(rows, t.by, t.sum)
            except ValueError as exc:
                out.append(Evidence(check="csv.totals", ok=False, detail=f"column {t.sum!r} is not numeric: {exc}"))
            else:
                for key in sorted(set(got) | set(t.expect)):
                    want, have = t.expect.get(key), got.get(key)
                    ok = want is not None and have is not None and abs(want - have) <= t.tolerance
                    out.append(Evidence(check="csv.totals", ok=ok, where=f"{t.by}={key}",
                                        detail=f"sum of {t.sum} is {have}, expected {want}"))
    return out


class ContractEvaluator(Target):
    name: ClassVar[str] = "contract"

    json_schema: dict[str, JsonValue] | None = None
    regex: str | None = Field(default=None, description="must match somewhere (multiline)")
    csv: CsvShape | None = None

    async def evaluate(self, subject: Subject, env: EvalEnv) -> Verdict:
        text = self.read(subject, env)
        if text is None:
            return Verdict.of(self.name, [Evidence(check="exists", ok=False, detail=f"{self.what} was not produced")],
                              score=0.0)
        evidence = [Evidence(check="exists", ok=True, detail=f"{self.what} ({len(text)} chars)")]
        if self.json_schema is not None:
            evidence += self._schema(text)
        if self.regex is not None:
            ok = re.search(self.regex, text, re.MULTILINE) is not None
            evidence.append(Evidence(check="regex", ok=ok, detail=f"{'matches' if ok else 'does not match'} "
                                     f"/{self.regex}/"))
        if self.csv is not None:
            evidence += csv_evidence(text, self.csv, what=self.what)
        if len(evidence) == 1:
            evidence.append(Evidence(check="contract", ok=False, detail="no contract given (json_schema, regex, csv)"))
        return Verdict.of(self.name, evidence)

    def _schema(self, text: str) -> list[Evidence]:
        assert self.json_schema is not None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return [Evidence(check="json", ok=False, detail=f"not JSON: {exc}")]
        errors = sorted(Draft202012Validator(self.json_schema).iter_errors(value), key=lambda e: list(e.path))
        if not errors:
            return [Evidence(check="json_schema", ok=True, detail="matches the schema")]
        return [Evidence(check="json_schema", ok=False, where="/" + "/".join(map(str, e.path)), detail=e.message[:200])
                for e in errors[:6]]
