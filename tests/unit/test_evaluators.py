"""Evaluators on real files and the real sandbox: unit, metamorphic and property tests."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import naestro.evaluators as ev
from naestro.errors import UsageError
from naestro.evaluators import (
    CodeEvaluator,
    ContractEvaluator,
    CsvShape,
    Evidence,
    FactualityEvaluator,
    GroupTotals,
    SafetyEvaluator,
    SandboxEvalEnv,
    SloEvaluator,
    Source,
    Subject,
    Usage,
    Verdict,
    build_evaluator,
)
from naestro.evaluators._contract import csv_evidence
from naestro.evaluators._factuality import claims, numbers, placeholders, supported
from naestro.limits import SLO, Budget
from nodes.evaluation import journal_sources

SUBJECT = Subject(task_id="t")


def verdict(evaluator: ev.Evaluator, workspace: Path, **env: object) -> Verdict:
    return asyncio.run(evaluator.evaluate(env.pop("subject", SUBJECT), SandboxEvalEnv(workspace, **env)))  # type: ignore[arg-type]


def test_exported_names() -> None:
    assert set(ev.__all__) == {
        "EVALUATORS", "TIMED_OUT", "CodeEvaluator", "CommandOutcome", "ContractEvaluator", "Cost", "CsvShape",
        "EvalEnv", "Evaluator", "Evidence", "FactualityEvaluator", "GroupTotals", "ReferenceEvaluator",
        "SafetyEvaluator", "SandboxEvalEnv", "SloEvaluator", "Source", "Subject", "Usage", "Verdict",
        "build_evaluator", "comparison_for", "differences"}


def test_verdict_refuses_false_success() -> None:
    with pytest.raises(ValidationError, match="only with evidence"):
        Verdict(evaluator="x", passed=True, score=1.0)
    with pytest.raises(ValidationError, match="only with evidence"):
        Verdict(evaluator="x", passed=True, score=1.0, evidence=(Evidence(check="a", ok=False, detail="no"),))
    v = Verdict.of("x", [Evidence(check="a", ok=True, detail="y"), Evidence(check="b", ok=False, detail="n")])
    assert not v.passed and v.score == 0.5 and [e.check for e in v.failures] == ["b"]
    assert v.render().splitlines()[1].strip().startswith("- FAIL b")  # failures first
    assert not Verdict.of("x", []).passed


def test_build_evaluator_parses_params_once() -> None:
    assert isinstance(build_evaluator("contract", {"file": "a.csv", "csv": {"rows": 3}}), ContractEvaluator)
    with pytest.raises(UsageError, match="unknown evaluator 'nope'"):
        build_evaluator("nope", {})
    with pytest.raises(UsageError, match="exactly one of file or output"):
        build_evaluator("contract", {"regex": "x"})
    with pytest.raises(UsageError, match=r"csv\.rows"):
        build_evaluator("contract", {"file": "a", "csv": {"rows": -1}})


# --- code ---------------------------------------------------------------------------------------------------

def test_code_evaluator_runs_tests_in_the_sandbox_and_reports_failures(tmp_path: Path) -> None:
    (tmp_path / "stats.py").write_text("def mean(xs):\n    return sum(xs) / (len(xs) + 1)\n")
    (tmp_path / "test_stats.py").write_text("from stats import mean\n\ndef test_mean():\n    assert mean([2, 4]) == 3\n"
                                            "\ndef test_one():\n    assert mean([5]) == 5\n")
    bad = verdict(CodeEvaluator(command="python3 -m pytest -q -p no:cacheprovider"), tmp_path)
    assert not bad.passed and bad.score < 1
    text = bad.render()
    assert "exited 1" in text and "2 failed" in text and "FAILED test_stats.py::test_mean" in text
    (tmp_path / "stats.py").write_text("def mean(xs):\n    return sum(xs) / len(xs)\n")
    good = verdict(CodeEvaluator(command="python3 -m pytest -q -p no:cacheprovider"), tmp_path)
    assert good.passed and good.score == 1.0, good.render()
    assert any("2 passed" in e.detail for e in good.evidence)


def test_code_evaluator_says_tests_that_timed_out_gave_no_verdict(tmp_path: Path) -> None:
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(30)\n")
    slow = verdict(CodeEvaluator(command="python3 -m pytest -q -p no:cacheprovider", timeout_s=2), tmp_path)
    assert not slow.passed
    [evidence] = [e for e in slow.evidence if e.check == "tests"]
    assert f"{ev.TIMED_OUT} after 2 s: no verdict" in evidence.detail and "exited" not in evidence.detail


def test_code_evaluator_lints_with_ruff_for_real_errors_only(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("import os\nx=1\n")  # unused import and style: not errors here
    assert verdict(CodeEvaluator(), tmp_path).passed
    (tmp_path / "broken.py").write_text("def f():\n    return undefined_name\n")
    v = verdict(CodeEvaluator(), tmp_path)
    assert not v.passed and v.score == 0.5
    assert [e.where for e in v.failures] == ["broken.py:2"] and "undefined_name" in v.failures[0].detail


def test_code_evaluator_with_nothing_to_check_fails(tmp_path: Path) -> None:
    assert not verdict(CodeEvaluator(lint=False), tmp_path).passed
    assert "no Python files" in verdict(CodeEvaluator(), tmp_path).render()


# --- contract -----------------------------------------------------------------------------------------------

SALES = "region,amount,day\nnorth,10.5,2024-01-01\nsouth,3,2024-01-02\nnorth,4.5,2024-01-03\n"


def test_contract_csv_shape_types_and_totals(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text(SALES)
    shape = CsvShape(rows=3, columns={"region": "str", "amount": "float", "day": "date"},
                     totals=GroupTotals(by="region", sum="amount", expect={"north": 15, "south": 3}))
    assert verdict(ContractEvaluator(file="s.csv", csv=shape), tmp_path).passed
    (tmp_path / "s.csv").write_text(SALES.replace("south,3,", "south,three,") + "east,1,2024-13-01\n")
    v = verdict(ContractEvaluator(file="s.csv", csv=shape), tmp_path)
    failed = {(e.check, e.where) for e in v.failures}
    assert ("csv.rows", "") in failed and ("csv.type", "line 3") in failed and ("csv.type", "line 5") in failed
    assert ("csv.totals", "") in failed  # 'three' is not numeric: the totals cannot be computed


def test_contract_json_schema_and_regex(tmp_path: Path) -> None:
    (tmp_path / "o.json").write_text('{"total": "12"}')
    schema = {"type": "object", "required": ["total", "n"], "properties": {"total": {"type": "number"}}}
    v = verdict(ContractEvaluator(file="o.json", json_schema=schema, regex=r"total"), tmp_path)
    assert not v.passed and {e.check for e in v.failures} == {"json_schema"} and len(v.failures) == 2
    missing = verdict(ContractEvaluator(file="none.json", regex="x"), tmp_path)
    assert not missing.passed and "was not produced" in missing.render()
    out = verdict(ContractEvaluator(output="answer", regex=r"^\d+$"), tmp_path,
                  subject=Subject(task_id="t", outputs={"answer": "42"}))
    assert out.passed


def test_contract_refuses_paths_outside_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x")
    ws = tmp_path / "ws"
    ws.mkdir()
    assert not verdict(ContractEvaluator(file="../secret.txt", regex="x"), ws).passed


def _csv(rows: list[tuple[str, int]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["g", "v"])
    w.writerows(rows)
    return buf.getvalue()


rows_strategy = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(-1000, 1000)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, seed=st.integers(0, 10_000))
def test_metamorphic_row_order_does_not_change_group_totals(rows: list[tuple[str, int]], seed: int) -> None:
    totals: dict[str, float] = {}
    for g, v in rows:
        totals[g] = totals.get(g, 0) + v
    shape = CsvShape(rows=len(rows), columns={"g": "str", "v": "int"},
                     totals=GroupTotals(by="g", sum="v", expect=totals))
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    a, b = csv_evidence(_csv(rows), shape), csv_evidence(_csv(shuffled), shape)
    assert [(e.check, e.ok, e.where) for e in a] == [(e.check, e.ok, e.where) for e in b]
    assert all(e.ok for e in a)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy.filter(bool), delta=st.integers(1, 50), seed=st.integers(0, 10_000))
def test_metamorphic_changing_one_value_fails_exactly_its_group(rows: list[tuple[str, int]], delta: int,
                                                                seed: int) -> None:
    totals: dict[str, float] = {}
    for g, v in rows:
        totals[g] = totals.get(g, 0) + v
    i = random.Random(seed).randrange(len(rows))
    changed = rows[:]
    changed[i] = (rows[i][0], rows[i][1] + delta)
    shape = CsvShape(totals=GroupTotals(by="g", sum="v", expect=totals))
    failed = [e.where for e in csv_evidence(_csv(changed), shape) if not e.ok]
    assert failed == [f"g={rows[i][0]}"]


# --- factuality ---------------------------------------------------------------------------------------------

def test_claims_and_numbers() -> None:
    report = "# Report 2\n\n1. North sold 1,234.50 units. South sold 7.\n- No numbers here.\n|a|b|\n|---|---|\n|x|3|\n"
    assert claims(report) == ["North sold 1,234.50 units.", "South sold 7.", "|x|3|"]
    assert [str(n) for n in numbers("v2 is 1,000 and -3.5, not a1")] == ["1000", "-3.5"]


def test_factuality_flags_unsupported_claims(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("North total is 15.0. South total is 4. The mean is 6.17.\n")
    sources = [Source(tool="fs.read", text=SALES), Source(tool="exec.run", text="north 15.0\nmean 6.1666\n")]
    v = verdict(FactualityEvaluator(file="report.md"), tmp_path, sources=sources)
    assert not v.passed and v.score == pytest.approx(2 / 3, abs=1e-3)
    assert [e.where for e in v.failures] == ["claim 2"] and "4 not found" in v.failures[0].detail
    tolerant = verdict(FactualityEvaluator(file="report.md", max_unsupported=1), tmp_path, sources=sources)
    assert tolerant.passed and "(tolerated)" in tolerant.render()


def test_factuality_fails_a_report_with_unfilled_template_slots(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("# Sales\nTotal sales: $<total_amount>\nNumber of sales: {sale_count}\n")
    v = verdict(FactualityEvaluator(file="report.md", min_claims=0), tmp_path)
    assert not v.passed and v.score == 0.0 and "<total_amount>, {sale_count}" in v.failures[0].detail
    assert placeholders("Line one<br>\n<details>x</details> {{ total }} TODO: f(x) = {x}") == ["{{ total }}", "TODO"]


def test_factuality_a_report_cannot_support_itself(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("Revenue was 999.\n")
    read_back = [Source(tool="fs.read", text="Revenue was 999.\n")]
    assert not verdict(FactualityEvaluator(file="report.md"), tmp_path, sources=read_back).passed
    assert not verdict(FactualityEvaluator(file="report.md"), tmp_path).passed  # no sources at all


def test_factuality_a_report_copying_the_computed_reference_is_supported(tmp_path: Path) -> None:
    """The agreed reference programs' output is computed from the inputs, not read back from the report: a report
    that states its line verbatim (as the checks' feedback showed it) is supported by it."""
    line = "Average amount of orders over 100: 157.16666666666666"
    (tmp_path / "report.md").write_text(line + "\n")
    computed = [Source(tool="reference", text="Total orders over 100: 3\n" + line)]
    assert verdict(FactualityEvaluator(file="report.md"), tmp_path, sources=computed).passed
    printed = "Total orders over 100: 3\n" + line
    unknown = [Source(tool="exec.run", text=printed)]  # whatever ran: it may have printed the report back
    assert not verdict(FactualityEvaluator(file="report.md"), tmp_path, sources=unknown).passed
    read_back = [Source(tool="exec.run", text=printed, about='{"command": "cat report.md"}')]
    assert not verdict(FactualityEvaluator(file="report.md"), tmp_path, sources=read_back).passed
    # the offered program, run as offered: it prints what the report must state; copied verbatim, it is supported
    offered = [Source(tool="exec.run", text=printed, about='{"command": ["python3", "-c", "import csv ..."]}')]
    assert verdict(FactualityEvaluator(file="report.md"), tmp_path, sources=offered).passed


def test_journal_sources_know_the_call_that_produced_them(tmp_path: Path) -> None:
    """The arguments come from the model reply just before the tool result, in the same attempt (the journal's
    own format: ``RUN/task/T/N/model/K`` then ``.../tool/K+1``); a result no reply asked for has none."""
    def entry(key: str, kind: str, value: dict[str, object]) -> str:
        return json.dumps({"key": key, "kind": kind, "request": "x", "state": "done", "value": value})
    journal = tmp_path / "journal.jsonl"
    journal.write_text("\n".join([
        entry("r/task/t/1/model/1", "model", {"value": {"thought": "", "tool": "exec.run",
                                                          "arguments": {"command": ["python3", "-c", "print(3)"]}}}),
        entry("r/task/t/1/tool/2", "tool", {"tool": "exec.run", "ok": True, "text": "",
                                            "structured": {"exit_code": 0, "stdout": "3\n"}}),
        entry("r/task/t/check/tool/1", "tool", {"tool": "fs.read", "ok": True, "text": "a,b"}),
    ]) + "\n")
    assert journal_sources(journal) == [
        Source(tool="exec.run", text="3\n", about='{"command": ["python3", "-c", "print(3)"]}'),
        Source(tool="fs.read", text="a,b")]


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.decimals(min_value=-10**6, max_value=10**6, places=2, allow_nan=False), min_size=1,
                       max_size=6))
def test_property_a_claim_stating_source_numbers_is_supported(values: list[object]) -> None:
    source = Source(tool="fs.read", text="data: " + " ".join(str(v) for v in values))
    claim = "The values were " + ", ".join(str(v) for v in values) + "."
    assert supported(claim, [source])[0]
    assert not supported(claim + " Also 123456789.", [source])[0]


# --- safety -------------------------------------------------------------------------------------------------

def test_safety_finds_secrets_and_pii_without_echoing_them(tmp_path: Path) -> None:
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    (tmp_path / "config.py").write_text(f"x = 1\nAWS = '{key}'\n")
    (tmp_path / "notes.txt").write_text("mail me: jane.doe@example.com\n")
    v = verdict(SafetyEvaluator(), tmp_path)
    assert not v.passed and v.score == 0.0
    wheres = {e.where for e in v.failures}
    assert "config.py:2" in wheres and "notes.txt:1" in wheres
    assert key not in v.render() and "jane.doe" not in v.render()
    assert not verdict(SafetyEvaluator(allow=("email",)), tmp_path).passed  # the key still fails
    (tmp_path / "config.py").write_text("x = 1\n")
    assert verdict(SafetyEvaluator(allow=("email",)), tmp_path).passed


def test_safety_scans_outputs(tmp_path: Path) -> None:
    subject = Subject(task_id="t", outputs={"o": "card 4111 1111 1111 1111"})
    assert not verdict(SafetyEvaluator(files=()), tmp_path, subject=subject).passed
    assert verdict(SafetyEvaluator(files=(), outputs=False), tmp_path, subject=subject).passed


# --- SLO ----------------------------------------------------------------------------------------------------

def test_slo_against_budget_and_overrides(tmp_path: Path) -> None:
    subject = Subject(task_id="t", budget=Budget(tokens=1000, wall_s=60), slo=SLO(latency_s=30))
    used = Usage(tokens=1500, usd=0.0, wall_s=20, attempts=2)
    v = verdict(SloEvaluator(), tmp_path, subject=subject, usage=used)
    assert not v.passed and [e.check for e in v.failures] == ["slo.tokens"]
    assert v.score == pytest.approx(1000 / 1500, abs=1e-3)
    assert verdict(SloEvaluator(tokens=2000), tmp_path, subject=subject, usage=used).passed
    assert not verdict(SloEvaluator(), tmp_path, usage=used).passed  # no limits: no evidence of compliance


def test_plans_with_unknown_evaluators_or_bad_params_do_not_validate() -> None:
    from naestro.validate import plan_problems

    def plan(check: dict[str, object]) -> dict[str, object]:
        return {"goal": "g", "tasks": [{"id": "a", "role": "coder", "description": "d", "accept": [check]}]}

    problems = plan_problems(plan({"kind": "evaluator", "evaluator": "vibes", "threshold": 1}))
    assert [p.pointer for p in problems] == ["/tasks/0/accept/0"] and "unknown evaluator 'vibes'" in problems[0].message
    bad = plan_problems(plan({"kind": "evaluator", "evaluator": "code", "threshold": 1, "params": {"lint": "maybe"}}))
    assert bad and "bad params" in bad[0].message
    assert not plan_problems(plan({"kind": "evaluator", "evaluator": "slo", "threshold": 1, "params": {"tokens": 9}}))
    assert not plan_problems(plan({"kind": "evaluator", "evaluator": "llm_judge", "threshold": 0.5}))


sentences = st.lists(st.builds(lambda w, n: f"The {w} value is {n}.", st.sampled_from(["north", "south", "mean"]),
                               st.integers(0, 500)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(claimed=sentences, read=st.lists(st.integers(0, 500), max_size=8), extra=st.lists(st.integers(0, 500)),
       seed=st.integers(0, 1000))
def test_metamorphic_factuality_order_and_more_sources(claimed: list[str], read: list[int], extra: list[int],
                                                       seed: int) -> None:
    sources = [Source(tool="fs.read", text=" ".join(map(str, read)))]
    verdicts = {c: supported(c, sources)[0] for c in claimed}
    shuffled = claimed[:]
    random.Random(seed).shuffle(shuffled)
    assert claims(" ".join(shuffled)) == shuffled  # each sentence is one claim, whatever the order
    more = [*sources, Source(tool="web.fetch", text=" ".join(map(str, extra)))]
    for c in claimed:  # reading more can only support more claims, never fewer
        assert supported(c, more)[0] >= verdicts[c]
