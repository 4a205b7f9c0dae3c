"""The Planner: goal → validated Plan.

The model is asked for a Plan under a json_schema grammar (shape guaranteed), then the validator checks
the sense (deps, cycles, IO contracts, budgets); its ``pointer: message`` lines go back to the model for
a bounded number of re-plans. If no attempt validates, the fallbacks are, in order: the model's last plan
without its unusable checks; one Coder task doing the whole goal, accepted when the files the goal names
exist; the best-matching template from the skill library (``naestro/plans/*.json``, data only). Small
models give schema-valid but nonsensical DAGs often enough (FACTS.md) that the fallback is part of the
design, not an afterthought.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, JsonValue

from naestro.commandcheck import repaired_command
from naestro.errors import PlanInvalid, PlanProblem, UsageError
from naestro.llm import ModelProvider, complete_json
from naestro.plan import EvaluatorCheck, FileExistsCheck, Plan, Role, text_problem
from naestro.validate import parse_plan, plan_problems
from nodes.producer_deps import with_producer_deps
from nodes.reference import QUANTITY
from nodes.vacuity import Probe

__all__ = ["MAX_PLAN_TOKENS", "PlanOutcome", "Template", "load_templates", "make_plan", "match_template"]

# Plans of 1-4 tasks are 100-420 tokens on the 1.5B; a runaway (a check string repeating) is cut here, not at the
# client's 2,048 (minutes of decoding), and comes back to the model as "reply cut off" for its next attempt.
MAX_PLAN_TOKENS = 1024
_GREET_CHECK = "python3 -c \"from greet import greet; assert greet('Ann') == 'Hello, Ann!'\""
_EXAMPLE = {
    "goal": "Create greet.py with greet(name) returning 'Hello, <name>!' and write names.txt listing Ann and Bo",
    "tasks": [
        {"id": "write_greet", "role": "coder", "description": "Write greet.py with the greet function",
         "deps": [], "accept": [{"kind": "command", "command": _GREET_CHECK}]},
        {"id": "write_names", "role": "coder", "description": "Write names.txt with the lines Ann and Bo",
         "deps": [], "accept": [{"kind": "regex", "file": "names.txt", "pattern": "^Ann\\nBo\\s*$"}]},
    ],
}


_SYSTEM = f"""You are the Planner of an agent runtime. Turn the user's goal into a small plan: 1 to 4 tasks.
Each task has: id (lower_snake_case), role (one of: {", ".join(r.value for r in Role)}), description,
deps (ids of EARLIER tasks it needs; [] if none), and accept: checks that prove the task is done.
Check kinds: {{"kind": "file_exists", "path": ...}}, {{"kind": "command", "command": ...}} (must exit 0; runs in
the workspace, offline, python3 with the standard library and pytest, no pandas),
{{"kind": "regex", "file": ..., "pattern": ...}}.
Tasks that do not depend on each other must have no deps between them so they run in parallel; a task that
reads a file another task writes MUST list that task in deps. Prefer few tasks: one per file to produce.
Checks test the goal's result directly (e.g. python3 -c "from m import f; assert f(2) == 4", or a regex on the
file); plan a task that writes tests only when the goal asks for tests. A python3 -c check holds one statement
per line (write \\n between lines); never put with/for/if after ';'.
Never make a task depend on itself or on a later task. Agents can read/write files and run commands.
Example plan:
{json.dumps(_EXAMPLE)}"""


class Template(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str
    keywords: tuple[str, ...]
    plan: dict[str, JsonValue]

    def instantiate(self, goal: str) -> Plan:
        text = json.dumps(self.plan).replace("{goal}", json.dumps(goal)[1:-1])
        return parse_plan(json.loads(text), source=f"template {self.name}")


def load_templates() -> list[Template]:
    folder = resources.files("naestro").joinpath("plans")
    return [Template.model_validate_json(f.read_text()) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".json")]


def match_template(goal: str, templates: list[Template]) -> Template | None:
    words = set(re.findall(r"[a-z0-9]+", goal.lower()))
    scored = [(len(words & set(t.keywords)), t) for t in templates]
    best = max(scored, key=lambda s: s[0], default=(0, None))
    return best[1] if best[0] > 0 else None


@dataclass
class PlanOutcome:
    plan: Plan
    source: str  # "model" or "template:<name>"
    attempts: list[list[PlanProblem]] = field(default_factory=list)
    tokens: int = 0
    repairs: list[str] = field(default_factory=list)  # pointers of checks / deps repaired, budgets dropped
    dropped: list[str] = field(default_factory=list)  # ids of test tasks the goal did not ask for


def _plan_schema() -> dict[str, JsonValue]:
    """The Plan's schema without budgets: the model does not choose what it may spend (below)."""
    schema = Plan.model_json_schema(by_alias=True)
    schema["properties"].pop("budget", None)
    schema["$defs"]["Task"]["properties"].pop("budget", None)
    schema["$defs"].pop("Budget", None)
    return schema


def _without_model_budgets(candidate: dict[str, JsonValue]) -> tuple[dict[str, JsonValue], list[str]]:
    """``candidate`` without the budgets the model wrote, and their pointers. Budgets are the operator's (the roles'
    defaults, a plan file, the run's policy), not the model's: seen in the issue-22 slice, the 1.5B gave its plan
    ``tokens: 100``, the gate denied the task's first model call (383 tokens estimated), and the task failed in
    6 ms without the agent having run. An endpoint that does not enforce the schema can still send them."""
    dropped = ["/budget"] if "budget" in candidate else []
    tasks = candidate.get("tasks")
    if isinstance(tasks, list):
        kept: list[JsonValue] = []
        for i, task in enumerate(tasks):
            if isinstance(task, dict) and "budget" in task:
                dropped.append(f"/tasks/{i}/budget")
                task = {k: v for k, v in task.items() if k != "budget"}
            kept.append(task)
        candidate = {**candidate, "tasks": kept}
    return {k: v for k, v in candidate.items() if k != "budget"}, dropped


# A check the validator cannot use (its command) or the probe found vacuous (the whole check).
_CHECK_COMMAND = re.compile(r"^/tasks/(\d+)/accept/(\d+)(?:/command)?$")


_FILE_NAME = re.compile(r"\b[\w./-]+\.(?:py|txt|csv|json|md|yaml|yml|toml|html|sh|sql)\b")


def _files_named(description: JsonValue) -> list[JsonValue]:
    """``file_exists`` checks for the files a task's description names: the least a task must produce."""
    names = dict.fromkeys(_FILE_NAME.findall(description)) if isinstance(description, str) else {}
    return [{"kind": "file_exists", "path": n} for n in names]


def _goal_plan(goal: str) -> Plan | None:
    """One Coder task doing the whole goal, accepted when the files the goal names exist; None if it names none.

    Preferred to a keyword template: a template solves a different goal (seen: "write report.md from sales.csv"
    matched the csv-summary template, which wrote summary.json and reported success)."""
    checks = _files_named(goal)
    if not checks:
        return None
    return Plan.model_validate({"goal": goal, "tasks": [
        {"id": "do_goal", "role": "coder", "description": goal[:2000], "accept": checks}]})


def _without_unusable_checks(candidate: JsonValue, problems: list[PlanProblem]) -> Plan | None:
    """The model's last plan without the command checks that cannot verify anything, when those are its only
    problems: the model's own tasks fit the goal better than a keyword template (seen: a CSV goal fell back to an
    unrelated summary template after three uncompilable python -c checks). A task left without checks gets
    ``file_exists`` for the files its description names; with none named, there is nothing to salvage."""
    found = [_CHECK_COMMAND.match(p.pointer) for p in problems]
    if not isinstance(candidate, dict) or not found or not all(found):
        return None
    drop = {(int(m.group(1)), int(m.group(2))) for m in found if m}
    tasks = candidate.get("tasks")
    if not isinstance(tasks, list):
        return None
    kept: list[JsonValue] = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("accept"), list):
            return None
        checks = task["accept"]
        assert isinstance(checks, list)
        accept = [c for j, c in enumerate(checks) if (i, j) not in drop] or _files_named(task.get("description"))
        if not accept:
            return None
        kept.append({**task, "accept": accept})
    repaired: JsonValue = {**candidate, "tasks": kept}
    return None if plan_problems(repaired) else Plan.model_validate(repaired)


async def _without_vacuous(plan: Plan, probe: Probe) -> Plan | None:
    """``plan`` without the checks the probe finds vacuous. None when a task is left with none: such a task is a
    step, not a deliverable (seen: "Read people.json into a list" with ``file_exists people.json``, then "Filter",
    "Sort", "Write adults.csv"), and the deliverable's task alone had lost what the goal asked of it (it wrote
    every person, unsorted), so the goal itself, as one task, is the better fallback."""
    found = [_CHECK_COMMAND.match(p.pointer) for p in await probe(plan)]
    if not found:
        return plan
    drop = {(int(m.group(1)), int(m.group(2))) for m in found if m}
    tasks = [t.model_copy(update={"accept": tuple(c for j, c in enumerate(t.accept) if (i, j) not in drop)})
             for i, t in enumerate(plan.tasks)]
    if not all(t.accept for t in tasks):
        return None
    return plan.model_copy(update={"tasks": tuple(tasks)})


_TESTS = re.compile(r"(?i)\b(?:tests?|testing|pytest|unittest)\b|(?:^|_)tests?(?:_|$)")
_TEST_FILE = re.compile(r"(?:^|/)(?:test_\w+|\w+_test)\.py$")


def _without_unasked_tests(plan: Plan) -> tuple[Plan, list[str]]:
    """``plan`` without the test tasks the goal did not ask for, and the ids it dropped.

    The 1.5B adds "Test fib.py" tasks to goals that asked for no tests, checked by ``pytest fib.py`` (no tests:
    exit 5) or by tests it wrote wrong; in golden runs 3 and 5 such a task failed every retry and turned a run with a
    correct fib.py into a FAILED one. A test task is one whose id or description speaks of tests and whose files are
    test files or files another task also names (so the deliverable keeps its producer); with it go the deps on it
    and the other tasks' pytest checks (there are no tests to run). Nothing is dropped when the goal mentions tests
    or when a task would be left without checks."""
    if _TESTS.search(plan.goal):
        return plan, []
    named = {t.id: [str(f) for f in _FILE_NAME.findall(f"{t.description} {t.instructions}")] for t in plan.tasks}

    def elsewhere(task_id: str, file: str) -> bool:
        return any(file in files for other, files in named.items() if other != task_id)

    drop = {t.id for t in plan.tasks if _TESTS.search(f"{t.id} {t.description}")
            and all(_TEST_FILE.search(f) or elsewhere(t.id, f) for f in named[t.id])}
    if not drop or len(drop) == len(plan.tasks):
        return plan, []
    kept = []
    for t in plan.tasks:
        if t.id in drop:
            continue
        accept = tuple(c for c in t.accept if "pytest" not in c.model_dump_json() and "unittest" not in
                       c.model_dump_json())
        if not accept:
            return plan, []
        kept.append(t.model_copy(update={"deps": tuple(d for d in t.deps if d not in drop), "accept": accept,
                                         "inputs": {k: v for k, v in t.inputs.items() if v.task not in drop}}))
    return plan.model_copy(update={"tasks": tuple(kept)}), sorted(drop)


def _with_repaired_commands(candidate: dict[str, JsonValue]) -> tuple[dict[str, JsonValue], list[str]]:
    """``candidate`` with its command checks repaired where ``repaired_command`` can; the pointers it changed."""
    tasks = candidate.get("tasks")
    if not isinstance(tasks, list):
        return candidate, []
    fixed: list[str] = []
    new_tasks: list[JsonValue] = []
    for i, task in enumerate(tasks):
        checks = task.get("accept") if isinstance(task, dict) else None
        if not isinstance(task, dict) or not isinstance(checks, list):
            new_tasks.append(task)
            continue
        new_checks: list[JsonValue] = []
        for j, check in enumerate(checks):
            command = check.get("command") if isinstance(check, dict) else None
            repaired = repaired_command(command) if isinstance(command, str) else None
            if isinstance(check, dict) and repaired is not None:
                fixed.append(f"/tasks/{i}/accept/{j}/command")
                check = {**check, "command": repaired}
            new_checks.append(check)
        new_tasks.append({**task, "accept": new_checks})
    return ({**candidate, "tasks": new_tasks}, fixed) if fixed else (candidate, [])


def _fact_checked(plan: Plan) -> Plan:
    """Where Naestro wrote the checks (the fallbacks), a Markdown file a task must create (its ``file_exists``
    survived the probe, so it does not exist yet) gets the factuality evaluator: every number the report states
    must occur in what the run read or computed (seen: "Total amount of all sales: $185.75" for a total of 300.50,
    accepted because the file existed). A report must state a number when the goal asks for a quantity (a total,
    a count, an average ...); otherwise one with no numbers passes (``min_claims`` 0)."""
    tasks = []
    # A goal that asks for a quantity needs a report that states one: with min_claims 0, a Reviewer pass replaced
    # a refuted "Total: $185.50" with one sentence stating nothing, and it passed.
    needed = 1 if QUANTITY.search(f"{plan.goal}\n" + "\n".join(t.description for t in plan.tasks)) else 0
    for t in plan.tasks:
        reports = [c.path for c in t.accept if isinstance(c, FileExistsCheck) and c.path.endswith(".md")]
        extra = [EvaluatorCheck(kind="evaluator", evaluator="factuality", threshold=1.0,
                                params={"file": r, "min_claims": needed}) for r in reports]
        tasks.append(t.model_copy(update={"accept": (*t.accept, *extra)}) if extra else t)
    return plan.model_copy(update={"tasks": tuple(tasks)})


async def make_plan(goal: str, provider: ModelProvider, *, attempts: int = 3, endpoint: str | None = None,
                    context: str = "", guard: Callable[[str, str], None] | None = None,
                    probe: Probe | None = None) -> PlanOutcome:
    """Ask the model; on validation errors feed them back; after ``attempts`` fall back to a template.

    ``guard(endpoint, prompt)`` runs before every model call (the run's policy gate; it raises to refuse).
    ``probe(plan)`` finds a valid plan's vacuous checks (``nodes.vacuity``): problems like the
    validator's, fed back the same way; the fallbacks drop such checks.
    """
    if not goal.strip():
        raise UsageError("the goal is empty; say what you want done, e.g. naestro run \"write fib.py ...\"")
    if (problem := text_problem(goal)) is not None:
        raise UsageError(f"the goal has a {problem}")
    messages: list[BaseMessage] = [SystemMessage(_SYSTEM), HumanMessage(f"Goal: {goal}\n{context}".strip())]
    history: list[list[PlanProblem]] = []
    last_plan: JsonValue = None
    tokens = 0
    repairs: list[str] = []
    schema = _plan_schema()
    previous: JsonValue = None
    for _ in range(attempts):
        if guard is not None:
            guard(provider.registry.get(endpoint).name, "\n".join(str(m.content) for m in messages))
        reply = await complete_json(provider, endpoint, messages, schema=schema, name="plan",
                                    sampling={"max_completion_tokens": MAX_PLAN_TOKENS})
        tokens += reply.prompt_tokens + reply.completion_tokens
        candidate = reply.value
        if isinstance(candidate, dict):
            candidate, budgets = _without_model_budgets({**candidate, "goal": goal})
            repairs += budgets
            candidate, fixed = _with_repaired_commands(candidate)
            candidate, ordered = with_producer_deps(candidate)  # a check reading another task's file waits for it
            repairs += fixed + ordered
        last_plan = candidate
        problems = plan_problems(candidate)
        if not problems and probe is not None:
            problems = await probe(Plan.model_validate(candidate))
        if not problems:
            plan, untested = _without_unasked_tests(Plan.model_validate(candidate))
            return PlanOutcome(plan=plan, source="model", attempts=history, tokens=tokens, repairs=repairs,
                               dropped=untested)
        history.append(problems)
        if len(history) > 1 and reply.value == previous:
            # The same plan again after being told what is wrong with it: the next attempt would be a third copy
            # (seen: report_big_orders at 6813c51, three identical plans of 248 tokens, ~50 s each under load).
            break
        previous = reply.value
        messages += [AIMessage(json.dumps(reply.value)),
                     HumanMessage("That plan is invalid:\n" + "\n".join(map(str, problems)) +
                                  "\nReturn the corrected plan.")]
    salvaged = _without_unusable_checks(last_plan, history[-1]) if history else None
    if salvaged is not None and probe is not None:
        salvaged = await _without_vacuous(salvaged, probe)
        salvaged = _fact_checked(salvaged) if salvaged is not None else None
    if salvaged is not None:
        salvaged, untested = _without_unasked_tests(salvaged)
        return PlanOutcome(plan=salvaged, source="model:unusable-checks-dropped", attempts=history, tokens=tokens,
                           repairs=repairs, dropped=untested)
    direct = _goal_plan(goal)
    if direct is not None and probe is not None:
        direct = await _without_vacuous(direct, probe)
        direct = _fact_checked(direct) if direct is not None else None
    if direct is not None:
        return PlanOutcome(plan=direct, source="goal:files-named", attempts=history, tokens=tokens)
    template = match_template(goal, load_templates())
    if template is None:
        last = history[-1] if history else [PlanProblem("", "no plan produced")]
        raise PlanInvalid(last, source=f"model plan for {goal!r} (and no template matches; "
                                       f"write a plan file and use `naestro run --plan FILE`)")
    return PlanOutcome(plan=template.instantiate(goal), source=f"template:{template.name}", attempts=history,
                       tokens=tokens)
