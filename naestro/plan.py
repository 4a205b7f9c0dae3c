"""The Plan contract: what the Planner produces, the validator checks and the compiler turns into a graph.

Models are frozen so that the plan a run checkpointed is exactly the plan it replays.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from naestro.commandcheck import command_problem
from naestro.limits import SLO, Budget

TaskId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""Lower-case identifiers: they become LangGraph node names and file-safe path parts."""

JsonSchema = dict[str, JsonValue]

MAX_TASKS = 500
"""More tasks than this is not a plan one run can carry out or a person can review; split the goal (issue 14)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def text_problem(text: str) -> str | None:
    """Why goal or task text is refused, or None. It reaches prompts, terminals and reports: a NUL or an escape
    sequence there is an attack or an accident, never intent. Newline and tab are text.

    Public so that entry points taking a goal (``naestro run GOAL``) can refuse it before planning."""
    if found := _CONTROL.search(text):
        return (f"control character U+{ord(found.group()):04X} at offset {found.start()}; only newline and tab "
                f"are allowed")
    return None


def _printable(text: str) -> str:
    if (problem := text_problem(text)) is not None:
        raise ValueError(problem)
    return text


Text = Annotated[str, AfterValidator(_printable)]


class Role(StrEnum):
    researcher = "researcher"
    coder = "coder"
    reviewer = "reviewer"
    runner = "runner"
    dataops = "dataops"
    evaluator = "evaluator"
    reporter = "reporter"


class _Frozen(BaseModel):
    # allow_inf_nan=False: `1e999` parses as inf and would make every budget check pass (issue 14).
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)


def _string_schema() -> JsonSchema:
    return {"type": "string"}


class OutputSpec(_Frozen):
    """A named value the task produces for its dependents."""

    description: str = ""
    schema_: JsonSchema = Field(default_factory=_string_schema, alias="schema")


class InputSpec(_Frozen):
    """A named value taken from ``<task>.<output>`` of an upstream task."""

    from_: str = Field(alias="from", pattern=r"^[a-z][a-z0-9_]{0,39}\.[A-Za-z_][A-Za-z0-9_]*$")
    schema_: JsonSchema | None = Field(default=None, alias="schema")

    @property
    def task(self) -> str:
        return self.from_.split(".", 1)[0]

    @property
    def output(self) -> str:
        return self.from_.split(".", 1)[1]


class CommandCheck(_Frozen):
    """Passes when the command exits 0 in the run workspace."""

    kind: Literal["command"]
    command: str = Field(min_length=1)
    timeout_s: float = Field(default=60, gt=0)

    @field_validator("command")
    @classmethod
    def _usable(cls, command: str) -> str:
        """A check that cannot pass whatever the agent does is a plan error (fed back to the planner)."""
        try:
            problem = _command_problem(command)
        except (RecursionError, MemoryError) as exc:
            # CPython's parser gives up on deeply nested code with these (e.g. 100k unary minuses); issue 14.
            raise ValueError("its python -c code is nested too deeply to check; simplify it or run a test file "
                             "(python3 -m pytest)") from exc
        if problem is not None:
            raise ValueError(problem)
        return command


# Parses the command and compiles its python -c code: a fraction of a millisecond each, and plans repeat checks.
_command_problem = functools.lru_cache(maxsize=1024)(command_problem)


class FileExistsCheck(_Frozen):
    kind: Literal["file_exists"]
    path: str = Field(min_length=1, description="relative to the run workspace")


class JsonSchemaCheck(_Frozen):
    """Passes when a task output (or a JSON file in the workspace) matches the schema."""

    kind: Literal["json_schema"]
    output: str | None = None
    file: str | None = None
    schema_: JsonSchema = Field(alias="schema")


class RegexCheck(_Frozen):
    """Passes when a task output (or a workspace file's text) contains a match."""

    kind: Literal["regex"]
    pattern: str = Field(min_length=1)
    output: str | None = None
    file: str | None = None


class EvaluatorCheck(_Frozen):
    """Passes when the named evaluator's verdict passes with a score at or above the threshold.

    Evaluators: ``llm_judge`` (rubric), ``code``, ``contract``, ``factuality``, ``safety``, ``slo``
    (``naestro.evaluators``; each parses its own ``params``).
    """

    kind: Literal["evaluator"]
    evaluator: str = Field(min_length=1)
    threshold: float = Field(ge=0, le=1)
    rubric: str = ""
    params: dict[str, JsonValue] = Field(default_factory=dict, description="the evaluator's parameters")

    @model_validator(mode="after")
    def _known_evaluator(self) -> EvaluatorCheck:
        """Unknown names and bad params are plan errors (the planner feeds them back), not run-time surprises."""
        if self.evaluator != "llm_judge":
            from naestro.errors import UsageError
            from naestro.evaluators import build_evaluator  # imported late: the evaluators import this module
            try:
                build_evaluator(self.evaluator, dict(self.params))
            except UsageError as exc:
                raise ValueError(str(exc)) from exc
        return self


AcceptanceCheck = Annotated[
    CommandCheck | FileExistsCheck | JsonSchemaCheck | RegexCheck | EvaluatorCheck,
    Field(discriminator="kind"),
]

# Params an agent is not shown: a reference check's expected content is the evaluator's answer key. The agent does
# the work; a failed comparison's evidence tells it which rows or values differ.
_HIDDEN_PARAMS = {"reference": ("expect", "script", "alternatives")}


def shown_to_agent(check: CommandCheck | FileExistsCheck | JsonSchemaCheck | RegexCheck | EvaluatorCheck) -> str:
    """The check as JSON, the way agent prompts and feedback show it."""
    if isinstance(check, EvaluatorCheck) and check.evaluator in _HIDDEN_PARAMS:
        hidden = _HIDDEN_PARAMS[check.evaluator]
        check = check.model_copy(update={"params": {k: v for k, v in check.params.items() if k not in hidden}})
    return check.model_dump_json(by_alias=True, exclude_defaults=True)


class DirectAction(_Frozen):
    """A tool call run without a model: fast and deterministic (templates, tests)."""

    tool: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", description="server.tool, e.g. fs.write")
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class Task(_Frozen):
    """One unit of work. Agentic when ``action`` is absent (the role agent picks tools), direct otherwise."""

    id: TaskId
    role: Role
    description: Text = Field(min_length=1)
    instructions: Text = ""
    action: DirectAction | None = None
    deps: tuple[TaskId, ...] = ()
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: dict[str, OutputSpec] = Field(default_factory=dict)
    budget: Budget = Budget()
    slo: SLO = SLO()
    accept: tuple[AcceptanceCheck, ...] = Field(min_length=1)
    max_attempts: int = Field(default=2, ge=1, le=5)
    model: str | None = Field(default=None, description="endpoint name from models.yaml; else the role's")

    @property
    def is_direct(self) -> bool:
        return self.action is not None


class Plan(_Frozen):
    """A DAG of tasks for one goal, with a run-level budget ceiling."""

    version: Literal["1"] = "1"
    goal: Text = Field(min_length=1)
    tasks: tuple[Task, ...] = Field(min_length=1)
    budget: Budget = Budget()

    @field_validator("tasks", mode="before")
    @classmethod
    def _not_too_many(cls, tasks: object) -> object:
        """Counted before the tasks are validated. Not ``max_length``: the planner's schema becomes a llama.cpp
        grammar, and a 500-fold repetition of the Task rule exceeds its repetition limit (the grammar fails)."""
        if isinstance(tasks, list | tuple) and len(tasks) > MAX_TASKS:
            raise ValueError(f"{len(tasks)} tasks; a plan has at most {MAX_TASKS} (split the goal into several plans)")
        return tasks

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)
