"""Reference results: before any task runs, compute what each data file the goal asks for should contain.

The 1.5B model's own checks for data goals do not run (undefined names, ``.to_csv`` in a check, pandas), so a
plan for "write adults.csv with the people aged 18 or older" ended up checking only that adults.csv exists, and the
Coder typed wrong rows by hand and the run reported success (golden runs 3 and 5). Writing a *program* that
prints the answer is a smaller, more reliable task for such a model than writing the file or an assertion about
it, so the planner asks for one per deliverable, runs it in the sandbox on a throwaway copy of the starting
workspace, and keeps its output as the expected content only when two independent samples agree
(self-consistency: a wrong program rarely agrees with a differently sampled one, and one wrong reference
would turn a correct deliverable into a failure). The ``reference`` evaluator then compares the deliverable
with it, and its evidence (missing rows, wrong totals) is the feedback the next attempt gets.

Deliverables are the files the goal names that do not exist yet and hold data (not code: ``.py`` files are
checked by running them). A Markdown report is checked for the quantities the goal asks it to state, and only
when the goal asks for one (total, count, average...).
"""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import JsonValue

from naestro.evaluators import comparison_for, differences
from naestro.llm import ModelProvider, complete_json
from naestro.nodes.vacuity import CommandRunner
from naestro.plan import EvaluatorCheck, Plan, Role

__all__ = ["DATA_SUFFIXES", "QUANTITY", "ReferenceOutcome", "deliverables", "reference_checks", "with_reference_checks"]

DATA_SUFFIXES = ("csv", "json", "txt", "md", "yaml", "yml", "toml", "tsv")
QUANTITY = re.compile(r"(?i)\b(?:total|sum|count|number of|average|mean|median|how many|percent(?:age)?)\b")
_ORDERED = re.compile(r"(?i)\b(?:sort|sorted|order|ordered|ascending|descending|rank(?:ed)?)\b")
_FILE = re.compile(r"\b[\w./-]+\.(?:" + "|".join(DATA_SUFFIXES) + r")\b")
_MAX_EXPECT = 20_000  # a reference larger than this is not something a model can be shown as feedback
_SAMPLES: tuple[dict[str, float | int], ...] = ({}, {"temperature": 0.8, "seed": 11}, {"temperature": 0.8, "seed": 23})
_SCHEMA: dict[str, JsonValue] = {"type": "object", "properties": {"script": {"type": "string"}},
                                 "required": ["script"], "additionalProperties": False}
_MAX_PREVIEW_FILES, _PREVIEW_LINES = 12, 4

_SYSTEM = """You write short Python 3 programs that compute an expected result.
The program runs in a directory that holds the goal's input files. It may use only the standard library
(csv, json, re, statistics, math, collections). It computes, from the input files, what the output file must
contain according to the goal and PRINTS it to stdout. It must not write any file and must not read the output
file (it does not exist yet). Reply as JSON: {"script": "<the program>"}."""


@dataclass
class ReferenceOutcome:
    checks: dict[str, EvaluatorCheck] = field(default_factory=dict)  # file → its reference check
    notes: dict[str, str] = field(default_factory=dict)  # file → why it has none (for the planned event)
    tokens: int = 0


def deliverables(goal: str, workspace: Path) -> list[str]:
    """The data files the goal names that do not exist yet; a report only when the goal asks for a quantity."""
    out = []
    for name in dict.fromkeys(_FILE.findall(goal)):
        if (workspace / name).exists() or name.startswith(("/", "..")):
            continue
        if comparison_for(name) == "numbers" and not QUANTITY.search(goal):
            continue
        out.append(name)
    return out


def _preview(workspace: Path) -> str:
    """The starting files and their first lines: the program must use the real column names."""
    lines = []
    files = sorted(p for p in workspace.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(workspace).parts))
    for p in files[:_MAX_PREVIEW_FILES]:
        try:
            head = p.read_text(errors="replace").splitlines()[:_PREVIEW_LINES]
        except OSError:
            continue
        lines.append(f"--- {p.relative_to(workspace)}\n" + "\n".join(ln[:200] for ln in head))
    return "\n".join(lines) or "(no input files)"


def _ask(goal: str, file: str, preview: str) -> str:
    if comparison_for(file) == "numbers":
        what = (f"The goal asks for a report, {file}. Print each quantity the report must state, computed from the "
                "input files, one per line as `name: value` (no other text, no Markdown).")
    else:
        what = f"Print exactly the content {file} must have: every line of it, and nothing else."
    return f"Goal: {goal}\n\nInput files (first lines):\n{preview}\n\n{what}"


def _agreed(outputs: list[str], file: str, ordered: bool) -> str | None:
    """The first output another sample agrees with (under the file's comparison), if any."""
    kind = comparison_for(file)
    for i, a in enumerate(outputs):
        if any(not differences(a, b, kind, ordered=ordered) for b in outputs[i + 1:]):
            return a
    return None


async def _reference(goal: str, file: str, provider: ModelProvider, endpoint: str | None, workspace: Path,
                     run: CommandRunner, guard: Callable[[str, str], None] | None, redact: Callable[[str], str],
                     outcome: ReferenceOutcome) -> None:
    messages = [SystemMessage(_SYSTEM), HumanMessage(_ask(goal, file, redact(_preview(workspace))))]
    ordered = _ORDERED.search(goal) is not None
    outputs: list[str] = []
    scripts: dict[str, str] = {}
    problems: list[str] = []
    for sampling in _SAMPLES:
        if guard is not None:
            guard(provider.registry.get(endpoint).name, "\n".join(str(m.content) for m in messages))
        reply = await complete_json(provider, endpoint, messages, schema=_SCHEMA, name="reference",
                                    sampling=sampling or None)
        outcome.tokens += reply.prompt_tokens + reply.completion_tokens
        script = reply.value.get("script") if isinstance(reply.value, dict) else None
        if not isinstance(script, str) or not script.strip():
            problems.append("no program")
            continue
        with tempfile.TemporaryDirectory(prefix="naestro-reference-") as tmp:
            copy = Path(tmp) / "workspace"
            shutil.copytree(workspace, copy, symlinks=True)
            done = await run(f"python3 -c {shlex.quote(script)}", copy)
        if done is None:
            outcome.notes[file] = "the policy did not allow running the reference program"
            return
        if done.exit_code != 0 or not done.stdout.strip() or len(done.stdout) > _MAX_EXPECT:
            problems.append(f"exit {done.exit_code}" + (f": {done.stderr.strip().splitlines()[-1][:120]}"
                                                         if done.stderr.strip() else ""))
            continue
        outputs.append(done.stdout)
        scripts.setdefault(done.stdout, script)
        if (expect := _agreed(outputs, file, ordered)) is not None:
            outcome.checks[file] = EvaluatorCheck(
                kind="evaluator", evaluator="reference", threshold=1.0,
                params={"file": file, "expect": expect.strip() + "\n", "compare": comparison_for(file),
                        "ordered": ordered, "script": scripts[expect]})
            return
    outcome.notes[file] = f"no two of {len(_SAMPLES)} samples agreed ({len(outputs)} ran; " \
                          f"{'; '.join(problems) or 'outputs differ'})"


async def reference_checks(goal: str, provider: ModelProvider, workspace: Path, run: CommandRunner, *,
                           endpoint: str | None = None,
                           guard: Callable[[str, str], None] | None = None,
                           redact: Callable[[str], str] | None = None) -> ReferenceOutcome:
    """A ``reference`` check for each deliverable whose expected content independent samples agree on.

    ``guard(endpoint, prompt)`` is the run's policy gate for the model calls; ``redact`` turns the input files'
    preview into what the model may see (the run's vault: secrets and PII as handles); ``run`` runs a program in
    the sandbox and returns its output in the same handle space."""
    outcome = ReferenceOutcome()
    for file in deliverables(goal, workspace):
        await _reference(goal, file, provider, endpoint, workspace, run, guard, redact or _as_is, outcome)
    return outcome


def _as_is(text: str) -> str:
    return text


def _mentions(task_text: str, file: str) -> bool:
    return re.search(r"(?<![\w./-])" + re.escape(file) + r"(?![\w/-])", task_text) is not None


def with_reference_checks(plan: Plan, checks: dict[str, EvaluatorCheck]) -> Plan:
    """``plan`` with each reference check on the task that produces the file: the last task naming it whose role
    produces files (not a Reviewer, Runner or Evaluator); else the last task naming it; else the plan's last task."""
    producers = (Role.coder, Role.dataops, Role.researcher, Role.reporter)
    accept = {t.id: list(t.accept) for t in plan.tasks}
    for file, check in checks.items():
        naming = [t for t in plan.tasks if _mentions(t.model_dump_json(), file)]
        owner = next((t for t in reversed(naming) if t.role in producers), naming[-1] if naming else plan.tasks[-1])
        accept[owner.id].append(check)
    return plan.model_copy(update={"tasks": tuple(t.model_copy(update={"accept": tuple(accept[t.id])})
                                                  for t in plan.tasks)})
