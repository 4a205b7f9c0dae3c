"""The evaluators' environment inside a run: commands through the gated, sandboxed ``exec.run`` (as the
Evaluator role), sources from the run's effect journal, usage from its events."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import JsonValue

from naestro.budget import effective_budget
from naestro.context import Execution, RunContext
from naestro.errors import UsageError
from naestro.evaluators import CommandOutcome, Cost, Evidence, Source, Subject, Usage, Verdict, build_evaluator
from naestro.plan import EvaluatorCheck, Task

__all__ = ["SOURCE_TOOLS", "RunEvalEnv", "emit_verdict", "evaluate_check", "journal_sources", "usage_from_events"]

SOURCE_TOOLS = ("fs.read", "fs.search", "web.fetch", "web.search", "db.query", "pdf.text", "pdf.tables", "exec.run")


def journal_sources(journal: Path) -> list[Source]:
    """Every successful reading tool result the run journalled (all tasks, attempts and phases), with the
    arguments the agent's call gave it (``Source.about``) when the model's reply just before asked for it."""
    out: list[Source] = []
    if not journal.exists():
        return out
    asked: dict[str, tuple[str, str]] = {}  # attempt's key prefix -> the tool and arguments its last reply asked
    for line in journal.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        value = entry.get("value") if isinstance(entry, dict) else None
        if entry.get("state") != "done" or not isinstance(value, dict):
            continue
        attempt = str(entry.get("key", "")).rsplit("/", 2)[0]
        if entry.get("kind") == "model" and isinstance(reply := value.get("value"), dict):
            asked[attempt] = (str(reply.get("tool", "")), json.dumps(reply.get("arguments"), ensure_ascii=False))
            continue
        if entry.get("kind") != "tool":
            continue
        if value.get("tool") in SOURCE_TOOLS and value.get("ok"):
            structured = value.get("structured")
            text = str(structured.get("stdout", "")) if value["tool"] == "exec.run" and isinstance(structured, dict) \
                else str(value.get("text", ""))
            tool, arguments = asked.pop(attempt, ("", ""))
            out.append(Source(tool=str(value["tool"]), text=text, about=arguments if tool == value["tool"] else ""))
    return out


def usage_from_events(events: Path, task_id: str) -> Usage:
    tokens, usd, wall, attempts = 0, 0.0, 0.0, 0
    if events.exists():
        for line in events.read_text().splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if e.get("task") != task_id:
                continue
            if e.get("event") == "task_ran":
                tokens += int(e.get("tokens") or 0)
                wall += float(e.get("wall_s") or 0.0)
                attempts += 1
            elif e.get("event") == "model_call":
                usd += float(e.get("cost_usd") or 0.0)
    return Usage(tokens=tokens, usd=round(usd, 6), wall_s=round(wall, 3), attempts=attempts)


class RunEvalEnv:
    def __init__(self, ctx: RunContext, ex: Execution) -> None:
        self.ctx, self.ex = ctx, ex

    @property
    def workspace(self) -> Path:
        return self.ctx.workspace

    async def run(self, command: str, *, timeout_s: float) -> CommandOutcome:
        res = await self.ctx.call_tool(self.ex, "exec.run", {"command": command, "timeout_s": timeout_s},
                                       timeout_s=timeout_s + 10)
        data = res.structured if isinstance(res.structured, dict) else {}
        code = data.get("exit_code")
        return CommandOutcome(ok=res.ok and isinstance(code, int), exit_code=code if isinstance(code, int) else None,
                              stdout=str(data.get("stdout", "")), stderr=str(data.get("stderr", "")),
                              note="" if res.ok else res.text[:500], timed_out=data.get("timed_out") is True)

    def sources(self) -> list[Source]:
        """What the run read or computed: its journalled tool results, the output of the planner's reference
        programs (run in the sandbox on the inputs before any task: ``nodes.reference``), and the goal itself: a
        number the user's own words state is not one the run made up (issue-22 slice at fda50b7,
        report_big_orders #3: "Number of orders with amount over 100: 3" was UNSUPPORTED for its "100")."""
        computed = [Source(tool="reference", text=str(c.params.get("expect", "")) + "\n" +
                           "\n".join(map(str, alts if isinstance(alts := c.params.get("alternatives"), list) else [])))
                    for t in self.ctx.plan.tasks for c in t.accept
                    if isinstance(c, EvaluatorCheck) and c.evaluator == "reference"]
        return [*journal_sources(self.ctx.run_dir / "journal.jsonl"), *computed,
                Source(tool="goal", text=self.ctx.plan.goal)]

    def usage(self, task_id: str) -> Usage:
        return usage_from_events(self.ctx.events.path, task_id)

    def conceal(self, text: str) -> str:
        concealed: str = self.ctx.vault.conceal(text)
        return concealed


async def evaluate_check(check: EvaluatorCheck, task: Task, outputs: dict[str, JsonValue], summary: str,
                         ctx: RunContext, ex: Execution) -> Verdict:
    """Run one evaluator check of a task; the verdict (all its evidence) is also a ``verdict`` event.

    Bad params fail the check with the reason as evidence instead of crashing the run: the plan may have
    come from a model, and the retry or re-plan can fix it.
    """
    start = time.monotonic()
    try:
        evaluator = build_evaluator(check.evaluator, dict(check.params))
    except UsageError as exc:
        verdict = Verdict.of(check.evaluator, [Evidence(check="params", ok=False, detail=str(exc))], score=0.0)
    else:
        role = ctx.roles[task.role]
        subject = Subject(task_id=task.id, description=task.description, outputs=outputs, summary=summary,
                          budget=effective_budget(task.budget, role.budget, ctx.plan.budget), slo=task.slo)
        verdict = await evaluator.evaluate(subject, RunEvalEnv(ctx, ex))
    verdict = verdict.model_copy(update={"cost": Cost(tokens=verdict.cost.tokens, usd=verdict.cost.usd,
                                                      wall_s=round(time.monotonic() - start, 3))})
    emit_verdict(ctx, task_id=task.id, attempt=ex.attempt, verdict=verdict, threshold=check.threshold)
    return verdict


def emit_verdict(ctx: RunContext, *, task_id: str, attempt: int, verdict: Verdict, threshold: float) -> None:
    """The ``verdict`` event: the report's evidence section and the Introspector read it."""
    ctx.events.emit("verdict", task=task_id, attempt=attempt, evaluator=verdict.evaluator, passed=verdict.passed,
                    score=verdict.score, threshold=threshold,
                    evidence=[e.model_dump(mode="json") for e in verdict.evidence],
                    cost=verdict.cost.model_dump(mode="json"))
