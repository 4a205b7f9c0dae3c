"""Reference results: before any task runs, compute what each data file the goal asks for should contain.

The 1.5B model's own checks for data goals do not run (undefined names, ``.to_csv`` in a check, pandas), so a
plan for "write adults.csv with the people aged 18 or older" ended up checking only that adults.csv exists, and the
Coder typed wrong rows by hand and the run reported success (golden runs 3 and 5). Writing a *program* that
computes the answer is a smaller, more reliable task for such a model than typing the file or writing an
assertion about it, so the planner asks for one per deliverable and runs it in the sandbox on a throwaway copy of
the starting workspace; the file it creates (a report's quantities: what it prints) is kept as the expected
content only when two independent samples agree (self-consistency: one wrong reference would turn a correct
deliverable into a failure, and two wrong programs rarely agree). Each sample that fails (an error, or a result
of the wrong shape) is shown its error once (self-debugging); one-line programs are unfolded first
(``naestro.oneliner``). Programs are asked for as a Markdown code block, not inside a JSON string: on the 1.5B
the JSON form gave a usable program in 4 of 18 samples (unterminated strings from escaped newlines, 3.12-only
f-strings, replies running on to the token limit) where the code block gave 17 of 18, at 0.62x the median time
per sample (``bench/reference_format.py``, BENCHMARKS.md). The ``reference`` evaluator then compares the
deliverable with it, and its evidence (missing rows, wrong totals) is the feedback the next attempt gets.

Deliverables are the files the goal names that do not exist yet and hold data (not code: ``.py`` files are
checked by running them). A Markdown report is checked for the quantities the goal asks it to state, and only
when the goal asks for one (total, count, average...). Where the agreed results are used: ``nodes.reference_use``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shlex
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import JsonValue

from naestro.evaluators import comparison_for, differences
from naestro.evaluators._factuality import numbers
from naestro.gathered import each
from naestro.homes import copy_workspace
from naestro.llm import ModelProvider, complete_json, complete_text
from naestro.oneliner import unfolded
from naestro.plan import EvaluatorCheck
from nodes.goal_requirements import stated_contents
from nodes.report_quantities import asked_lines
from nodes.vacuity import CommandRunner

__all__ = ["DATA_SUFFIXES", "MAX_PROGRAM_TOKENS", "QUANTITY", "ProgramFormat", "ReferenceOutcome", "deliverables",
           "fenced_program", "implausible", "reference_checks", "sample_program"]

DATA_SUFFIXES = ("csv", "json", "txt", "md", "yaml", "yml", "toml", "tsv")
QUANTITY = re.compile(r"(?i)\b(?:total|sum|count|number of|average|mean|median|how many|percent(?:age)?)\b")
_ONE_ROW_PER = re.compile(r"(?i)\bone (?:row|line) (?:per|for each)\b")
_ORDERED = re.compile(r"(?i)\b(?:sort|sorted|order|ordered|ascending|descending|rank(?:ed)?)\b")
_FILE = re.compile(r"\b[\w./-]+\.(?:" + "|".join(DATA_SUFFIXES) + r")\b")
_MAX_EXPECT = 20_000  # a reference larger than this is not something a model can be shown as feedback
# The endpoint's own temperature first, then independent samples; derivation stops at the first agreement.
_SAMPLES: tuple[dict[str, float | int], ...] = ({}, *({"temperature": 0.5, "seed": s} for s in (11, 23, 37, 51)))
# A reference program is 30-420 tokens (measured on the 1.5B); a sample that runs on repeating a line in its JSON
# string went to the client's 2,048-token cap, 10 minutes of decoding on a shared 2-core machine, for no program.
MAX_PROGRAM_TOKENS = 768
_SCHEMA: dict[str, JsonValue] = {"type": "object", "properties": {"script": {"type": "string"}},
                                 "required": ["script"], "additionalProperties": False}
_MAX_PREVIEW_FILES, _PREVIEW_LINES = 12, 4

_SYSTEM_BODY = """You write short, correct Python 3 programs.
The program runs in a directory that holds the goal's input files. It may use only the standard library
(csv, json, re, statistics, math, collections). Write normal multi-line code, one statement per line.
csv.writer takes lists of values (use csv.DictWriter for dicts); read a CSV file with
rows = list(csv.DictReader(f))."""
# How the program comes back: inside a JSON string (grammar-enforced shape, but the model must escape the code), or
# as a Markdown code block (the form code takes in its training text; nothing to escape).
ProgramFormat = Literal["json", "fenced"]
_SYSTEM: dict[ProgramFormat, str] = {
    "json": _SYSTEM_BODY + ' Reply as JSON: {"script": "<the program>"}.',
    "fenced": _SYSTEM_BODY + " Reply with the program only, in one ```python code block.",
}
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)


def fenced_program(text: str) -> str | None:
    """The first fenced code block of a reply (to its end when the reply was cut); a reply with no fence is taken
    as the program itself, unless it is JSON: then only the other format's reply (``{"script": ...}``) gives one
    (a model may answer in the form it has seen before)."""
    try:
        given = json.loads(text)
    except ValueError:
        pass
    else:  # a JSON reply is a program only in the other format's shape (``{"thought": ...}`` would run as Python)
        script = given.get("script") if isinstance(given, dict) else None
        return script if isinstance(script, str) and script.strip() else None
    found = _FENCE.search(text)
    program = found.group(1) if found is not None else text
    return program if program.strip() and not program.lstrip().startswith("```") else None


def _as_reply(script: str, fmt: ProgramFormat) -> str:
    return json.dumps({"script": script}) if fmt == "json" else f"```python\n{script}\n```"


@dataclass
class ReferenceOutcome:
    checks: dict[str, EvaluatorCheck] = field(default_factory=dict)  # file → its reference check
    notes: dict[str, str] = field(default_factory=dict)  # file → why it has none (for the planned event)
    tokens: int = 0


def deliverables(goal: str, workspace: Path) -> list[str]:
    """The data files the goal names that do not exist yet; a report only when the goal asks for a quantity; none
    whose content the goal spells out (its own requirement holds it: two programs wrote hello.txt's line with
    csv.writer, which quotes it, and their agreement outranked the goal's words)."""
    out = []
    spelled = stated_contents(goal)
    for name in dict.fromkeys(_FILE.findall(goal)):
        if (workspace / name).exists() or name.startswith(("/", "..")) or name in spelled:
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
    """Small models write the file even when asked to print it (measured: the 1.5B's first program wrote adults.csv
    and printed nothing), so data files are asked for as files; a report's quantities are printed."""
    if comparison_for(file) == "numbers":
        what = (f"The goal asks for a report, {file}. Do not write the report. Write a program that PRINTS each "
                "quantity the report must state, computed from the input files, one per line as `name: value`.")
    else:
        what = f"Write a program that creates {file} exactly as the goal asks, computing it from the input files."
    return f"Goal: {goal}\n\nInput files (first lines):\n{preview}\n\n{what}"


# What usually causes a refused result, told with it to the program's next version. Seen in the golden runs at
# 1dce5ed: 10 of the 15 reference samples of three adults_csv runs ended "a data row repeats the header" (after
# their retry: ``csv.writer.writerows`` on dicts), the bare reason did not tell the 1.5B what to change, and no
# two samples agreed in any of the three runs.
_HINTS = {
    "a data row repeats the header": (
        "csv.writer's writerow/writerows given a dict writes the dict's KEYS, not its values: write a list of the "
        "values for each row (e.g. writer.writerow([row['name'], row['age']])), or use csv.DictWriter(f, "
        "fieldnames=[...]) with writeheader() once and then writerows(the dicts).\n"),
    "a header and no data rows": (
        "No data row was written: read each input with the reader its format needs (json.load for .json, "
        "csv.DictReader for .csv) and check the filter keeps the rows the goal asks for.\n"),
}


def implausible(content: str, file: str, goal: str = "") -> str | None:
    """Why a reference program's result cannot be the answer, whatever the goal: it must have the shape of the file
    (seen: ``csv.writer.writerows`` on dicts writes each row's keys, so every row repeats the header). A CSV with no
    data rows is refused too: a goal asking for one computed from its inputs rarely means an empty one, and two
    programs reading JSON as CSV agree on it."""
    if not content.strip():
        return "empty result"
    kind = comparison_for(file)
    if kind == "csv":
        rows = [r for r in csv.reader(io.StringIO(content.strip())) if any(c.strip() for c in r)]
        header = [c.strip().lower() for c in rows[0]]
        if len(rows) < 2:  # seen twice, agreeing: people.json read with csv.DictReader yields no rows
            return "a header and no data rows"
        if any([c.strip().lower() for c in r] == header for r in rows[1:]):
            return "a data row repeats the header"
        if any(len(r) != len(header) for r in rows[1:]):
            return "rows and header differ in width"
        keys = [r[0].strip() for r in rows[1:]]
        if _ONE_ROW_PER.search(goal) and len(set(keys)) < len(keys):
            # seen: two programs agreeing on one row per sale for "one row per region giving the sum"
            return f"the goal asks for one row per {header[0]}, but {header[0]} values repeat"
    elif kind == "json":
        try:
            json.loads(content)
        except json.JSONDecodeError as exc:
            return f"not JSON: {exc}"
    elif kind == "numbers" and not numbers(content):
        return "no number printed"
    return None


def _agreed(outputs: list[str], file: str, ordered: bool) -> str | None:
    """The first output another sample agrees with (under the file's comparison), if any."""
    kind = comparison_for(file)
    for i, a in enumerate(outputs):
        if any(not differences(a, b, kind, ordered=ordered) for b in outputs[i + 1:]):
            return a
    return None


@dataclass
class _Deriver:
    """Derives one file's reference: samples programs, runs them, debugs each once, stops at agreement."""

    goal: str
    file: str
    provider: ModelProvider
    endpoint: str | None
    workspace: Path
    run: CommandRunner
    guard: Callable[[str, str], None] | None
    redact: Callable[[str], str]
    outcome: ReferenceOutcome
    fmt: ProgramFormat = "fenced"
    leave_out: Collection[Path] = ()  # the home, when it lies in the workspace (``naestro.homes``)
    # Programs whose result was what they printed (they did not write the file): the check says so, so that running
    # the program later (``nodes.reference_apply``, the offer) puts its output into the file.
    printing: set[str] = field(default_factory=set)

    async def _program(self, messages: list[BaseMessage], sampling: dict[str, float | int]) -> str | None:
        if self.guard is not None:
            self.guard(self.provider.registry.get(self.endpoint).name, "\n".join(str(m.content) for m in messages))
        limited = {**sampling, "max_completion_tokens": MAX_PROGRAM_TOKENS}
        if self.fmt == "fenced":
            reply = await complete_text(self.provider, self.endpoint, messages, sampling=limited)
            self.outcome.tokens += reply.prompt_tokens + reply.completion_tokens
            return fenced_program(reply.value) if isinstance(reply.value, str) else None
        reply = await complete_json(self.provider, self.endpoint, messages, schema=_SCHEMA, name="reference",
                                    sampling=limited)
        self.outcome.tokens += reply.prompt_tokens + reply.completion_tokens
        script = reply.value.get("script") if isinstance(reply.value, dict) else None
        return script if isinstance(script, str) and script.strip() else None

    async def _result(self, script: str) -> tuple[str | None, str]:
        """(the file's content, "") or (None, what went wrong: the error the program's next version is shown)."""
        # "import csv; with open(...) as f: ...; for ...: if ...: ...": the 1.5B's commonest slip, unfolded.
        command = f"python3 -c {shlex.quote(unfolded(script) or script)}"
        with tempfile.TemporaryDirectory(prefix="naestro-reference-") as tmp:
            copy = Path(tmp) / "workspace"
            await asyncio.to_thread(copy_workspace, self.workspace, copy, leave_out=self.leave_out)
            done = await self.run(command, copy)
            written = copy / self.file
            # The file the program wrote, read here, goes through ``redact`` as its printed output did.
            wrote = written.is_file() and comparison_for(self.file) != "numbers"
            content = self.redact(written.read_text(errors="replace")) if wrote else (
                done.stdout if done is not None else "")
            if not wrote and comparison_for(self.file) != "numbers":
                self.printing.add(script)
        if done is None:
            raise _NotAllowed
        if done.exit_code != 0:
            return None, f"exit {done.exit_code}: " + "\n".join(done.stderr.strip().splitlines()[-3:])[-300:]
        why = "too long" if len(content) > _MAX_EXPECT else implausible(content, self.file, self.goal)
        return (content, "") if why is None else (None, why)

    async def _sample(self, ask: str, sampling: dict[str, float | int]) -> tuple[str | None, str, str]:
        """One independent sample: a program, and once more with its error when it fails (self-debugging)."""
        messages: list[BaseMessage] = [
            SystemMessage(_SYSTEM[self.fmt]), HumanMessage(ask)]
        problem = "no program"
        for _ in range(2):
            script = await self._program(messages, sampling)
            if script is None:
                return None, "", "no program"
            content, problem = await self._result(script)
            if content is not None:
                return content, script, ""
            retry = (f"The program failed: {problem}\n{_HINTS.get(problem, '')}"
                     "Return the corrected program (still doing all the goal asks).")
            messages += [AIMessage(_as_reply(script, self.fmt)), HumanMessage(retry)]
        return None, "", problem.splitlines()[-1][:160] if problem else problem

    async def derive(self) -> None:
        # Read and redacted once per file (the redaction runs NER), not once per sample.
        ask = _ask(self.goal, self.file, self.redact(_preview(self.workspace)))
        ordered = _ORDERED.search(self.goal) is not None
        outputs: list[str] = []
        scripts: dict[str, str] = {}
        problems: list[str] = []
        samplings = iter(_SAMPLES)
        contested = False
        for sampling in samplings:
            try:
                content, script, problem = await self._sample(ask, sampling)
            except _NotAllowed:
                self.outcome.notes[self.file] = "the policy did not allow running the reference program"
                return
            if content is None:
                problems.append(problem)
                continue
            outputs.append(content)
            scripts.setdefault(content, script)
            if (expect := _agreed(outputs, self.file, ordered)) is not None:
                if (against := await self._contested(ask, expect, ordered, next(samplings, None))) is not None:
                    outputs.append(against)  # a third result that differs: candidates, not the answer
                    scripts.setdefault(against, "")
                    contested = True
                    break
                self.outcome.checks[self.file] = EvaluatorCheck(
                    kind="evaluator", evaluator="reference", threshold=1.0,
                    params={"file": self.file, "expect": self._expected(expect), "compare": comparison_for(self.file),
                            "ordered": ordered, **self._program_params(scripts[expect])})
                return
        distinct: list[str] = []
        outputs.sort(key=lambda out: -sum(not differences(out, o, comparison_for(self.file), ordered=ordered)
                                          for o in outputs))  # the result most samples share first
        for out in outputs:
            if all(differences(d, out, comparison_for(self.file), ordered=ordered) for d in distinct):
                distinct.append(out)
        self.outcome.notes[self.file] = (
            f"two samples agreed and the next one did not ({len(outputs)} usable)" if contested else
            f"no two of {len(_SAMPLES)} samples agreed ({len(outputs)} usable; "
            f"{'; '.join(problems) or 'outputs differ'})")
        if distinct:
            # No agreement, but results: the deliverable must agree with one of them (it is the next sample).
            self.outcome.checks[self.file] = EvaluatorCheck(
                kind="evaluator", evaluator="reference", threshold=1.0,
                params={"file": self.file, "expect": self._expected(distinct[0]), "compare": comparison_for(self.file),
                        "ordered": ordered, **self._program_params(scripts[distinct[0]]),
                        "alternatives": [self._expected(d) for d in distinct[1:]]})
            # One distinct result when the others hold it (a report comparison asks for the expected numbers, so a
            # result with extra ones agrees with it): say so instead of "one of the 1 results".
            self.outcome.notes[self.file] += (f"; the file must agree with one of the {len(distinct)} results"
                                              if len(distinct) > 1 else
                                              "; the other results hold this one, so the file must agree with it")


    def _program_params(self, script: str) -> dict[str, JsonValue]:
        """The check's record of the program: its text, and ``prints`` when its result was what it printed."""
        return {"script": script, **({"prints": True} if script in self.printing else {})}

    def _expected(self, result: str) -> str:
        """A result as the check's expected content: for a report, only the quantities the goal names when it names
        some of the printed ones (``nodes.report_quantities``)."""
        if comparison_for(self.file) == "numbers":
            result = asked_lines(self.goal, self.file, result)
        return result.strip() + "\n"

    async def _contested(self, ask: str, expect: str, ordered: bool,
                         sampling: dict[str, float | int] | None) -> str | None:
        """One more sample after two agreed: its result when it is usable and differs, else None (confirmed, or
        nothing left to ask). Two of the 1.5B's programs did agree on a wrong report ("north: 120.50, south:
        0.00" for sales summing to 150.75 and 99.75: both kept the first row per region), which as the expected
        content would fail a correct deliverable; a third result that differs makes the reference one of the
        candidates (the deliverable must agree with one of them) instead of the answer."""
        if sampling is None:
            return None
        try:
            content, _, _ = await self._sample(ask, sampling)
        except _NotAllowed:
            return None
        if content is None or not differences(content, expect, comparison_for(self.file), ordered=ordered):
            return None
        return content


async def sample_program(goal: str, file: str, provider: ModelProvider, workspace: Path, run: CommandRunner, *,
                         program_format: ProgramFormat, sampling: dict[str, float | int]
                         ) -> tuple[str | None, str, int]:
    """One independent sample of ``file``'s reference as derivation takes it (a program, debugged once): its result
    or None, what went wrong, tokens spent. For measuring program formats (``bench/reference_format.py``)."""
    outcome = ReferenceOutcome()
    deriver = _Deriver(goal, file, provider, None, workspace, run, None, _as_is, outcome, program_format)
    content, _, problem = await deriver._sample(_ask(goal, file, _preview(workspace)), sampling)
    return content, problem, outcome.tokens


class _NotAllowed(Exception):
    """The gate did not allow running a reference program."""


async def reference_checks(goal: str, provider: ModelProvider, workspace: Path, run: CommandRunner, *,
                           endpoint: str | None = None,
                           guard: Callable[[str, str], None] | None = None,
                           redact: Callable[[str], str] | None = None,
                           program_format: ProgramFormat = "fenced",
                           leave_out: Collection[Path] = ()) -> ReferenceOutcome:
    """A ``reference`` check for each deliverable whose expected content independent samples agree on.

    ``guard(endpoint, prompt)`` is the run's policy gate for the model calls; ``redact`` turns the input files'
    preview into what the model may see (the run's vault: secrets and PII as handles); ``run`` runs a program in
    the sandbox and returns its output in the same handle space; ``leave_out``: folders in the workspace the
    programs' copies leave out (Naestro's home in an --in-place run)."""
    outcome = ReferenceOutcome()
    files = deliverables(goal, workspace)
    # Independent files are derived at once (the model server has slots to spare while one program runs).
    await each([_Deriver(goal, file, provider, endpoint, workspace, run, guard, redact or _as_is, outcome,
                         program_format, leave_out).derive() for file in files])
    # In the goal's order whichever finished first: the checks land on the plan's tasks in this order.
    outcome.checks = {f: outcome.checks[f] for f in files if f in outcome.checks}
    outcome.notes = {f: outcome.notes[f] for f in files if f in outcome.notes}
    return outcome


def _as_is(text: str) -> str:
    return text
