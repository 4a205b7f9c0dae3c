"""The code evaluator: run the tests in the sandbox (the gated ``exec.run``) and lint Python with ruff.

ruff runs inside the same sandbox with only the rules that mean "this code cannot work" (syntax errors,
undefined names, invalid comparisons: flake8's E9/F63/F7/F82): style findings would fail correct code
written by small models for no gain.
"""

from __future__ import annotations

import re
import shlex
from typing import ClassVar

from pydantic import Field

from naestro.evaluators._target import Params
from naestro.evaluators._verdict import TIMED_OUT, EvalEnv, Evidence, Subject, Verdict

__all__ = ["CodeEvaluator", "pytest_counts"]

LINT_RULES = "E9,F63,F7,F82"
_COUNT = re.compile(r"(\d+) (passed|failed|errors?)\b")


def pytest_counts(text: str) -> tuple[int, int]:
    """(passed, failed + errors) from pytest's summary line; (0, 0) if there is none."""
    passed = failed = 0
    for n, what in _COUNT.findall(text):
        if what == "passed":
            passed = int(n)
        else:
            failed += int(n)
    return passed, failed


def _failure_lines(output: str) -> list[str]:
    """The lines a developer reads first: pytest's FAILED/ERROR summary and assertion lines, or tracebacks' end."""
    lines = output.splitlines()
    picked = [ln.strip() for ln in lines if ln.startswith(("FAILED ", "ERROR ", "E   "))]
    if not picked:
        picked = [ln.strip() for ln in lines if ln.strip()][-6:]
    return picked[:12]


class CodeEvaluator(Params):
    name: ClassVar[str] = "code"

    command: str | None = Field(default=None, description="test command, e.g. python3 -m pytest -q")
    files: tuple[str, ...] = Field(default=("*.py",), description="globs of Python files to lint")
    lint: bool = True
    timeout_s: float = Field(default=120, gt=0)

    async def evaluate(self, subject: Subject, env: EvalEnv) -> Verdict:
        evidence: list[Evidence] = []
        score_parts: list[float] = []
        if self.lint:
            evidence += await self._lint(env)
        if self.command is not None:
            ev, part = await self._tests(env)
            evidence += ev
            score_parts.append(part)
        if not evidence:
            evidence.append(Evidence(check="code", ok=False, detail="nothing to check: no command and lint is off"))
        lint_ok = all(e.ok for e in evidence if e.check in ("ruff", "files"))
        score = (sum(score_parts) / len(score_parts) if score_parts else 1.0) * (1.0 if lint_ok else 0.5)
        if not self.lint and self.command is None:
            score = 0.0
        elif not all(e.ok for e in evidence):
            score = min(score, 0.99)  # partial credit (share of tests passing), never full marks for a failure
        return Verdict.of(self.name, evidence, score=score)

    async def _lint(self, env: EvalEnv) -> list[Evidence]:
        root = env.workspace.resolve()
        files = sorted({str(p.relative_to(root)) for g in self.files for p in root.glob(g)
                        if p.is_file() and p.suffix == ".py" and ".git" not in p.parts})
        if not files:
            return [Evidence(check="files", ok=False, detail=f"no Python files match {list(self.files)}")]
        cmd = (f"ruff check --isolated --no-cache --select {LINT_RULES} --output-format concise "
               + " ".join(shlex.quote(f) for f in files))
        res = await env.run(cmd, timeout_s=60)
        if not res.ok:
            return [Evidence(check="ruff", ok=False, detail=f"lint could not run: {res.note[:300]}")]
        if res.exit_code == 127:  # no ruff in the sandbox: say so, let the tests decide
            return [Evidence(check="ruff", ok=True, detail="ruff is not installed in the sandbox; lint skipped")]
        if res.exit_code == 0:
            return [Evidence(check="ruff", ok=True, detail=f"no errors ({LINT_RULES}) in {len(files)} file(s)")]
        found = [ln for ln in res.stdout.splitlines() if re.match(r"^[^:\s]+:\d+:\d+: ", ln)]
        if not found:
            return [Evidence(check="ruff", ok=False, detail=(res.stdout + res.stderr).strip()[-400:])]
        out = []
        for ln in found[:10]:
            path, line, _col, msg = ln.split(":", 3)
            out.append(Evidence(check="ruff", ok=False, detail=msg.strip(), where=f"{path}:{line}"))
        return out

    async def _tests(self, env: EvalEnv) -> tuple[list[Evidence], float]:
        assert self.command is not None
        res = await env.run(self.command, timeout_s=self.timeout_s)
        if not res.ok:
            return [Evidence(check="tests", ok=False, detail=f"`{self.command}` did not run: {res.note[:300]}")], 0.0
        if res.timed_out:  # not a failure of the code: the tests did not finish (a busy machine, a hang)
            detail = (f"`{self.command}` {TIMED_OUT} after {self.timeout_s:g} s: no verdict (make the tests faster, "
                      "or raise the check's timeout_s)")
            return [Evidence(check="tests", ok=False, detail=detail)], 0.0
        text = res.stdout + "\n" + res.stderr
        passed, failed = pytest_counts(text)
        if res.exit_code == 0:
            summary = f"{passed} passed" if passed else "exit 0"
            return [Evidence(check="tests", ok=True, detail=f"`{self.command}`: {summary}")], 1.0
        part = passed / (passed + failed) if passed + failed else 0.0
        head = Evidence(check="tests", ok=False,
                        detail=f"`{self.command}` exited {res.exit_code}"
                        + (f": {passed} passed, {failed} failed" if passed + failed else ""))
        return [head, *(Evidence(check="tests", ok=False, detail=ln) for ln in _failure_lines(text))], part
