"""The planning nodes: ``plan`` (the goal, or a given plan, becomes the phase-0 plan in state) and ``replan``
(what was left unfinished becomes the next phase's plan).

Planning runs before any task, so nobody can be asked yet: its model calls and the check probe's commands
go through the run's gate without an asker (an ask is a deny that says how to pre-approve).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.types import Overwrite
from pydantic import JsonValue, ValidationError

from graphs.services import RunServices
from graphs.state import GoalCheck, RunState, TaskRecord
from mcp_servers.sandbox import Completed, Limits, SandboxUnavailable, run_sandboxed
from naestro.carryover import carry_unfinished_checks, portable_checks
from naestro.errors import PlanProblem, PolicyDenied
from naestro.events import EventLog
from naestro.gathered import gathered
from naestro.homes import workspace_files
from naestro.llm import ModelProvider
from naestro.memory.hooks import plan_context
from naestro.plan import AcceptanceCheck, FileExistsCheck, Plan, Role
from naestro.redact import SecretVault, redact_plan
from naestro.runs import RunRecord
from naestro.telemetry import span
from naestro.validate import parse_plan
from nodes.goal_checks import goal_failures, in_workspace, planned_goal_checks
from nodes.goal_helper import HelperOutcome, helper_requirements
from nodes.goal_requirements import GoalRequirement, files_named, kept_unchanged
from nodes.goal_task_checks import task_checks, unmet_requirements
from nodes.planner import PlanOutcome, make_plan
from nodes.reference import ReferenceOutcome, reference_checks
from nodes.reference_use import with_file_checks
from nodes.replan_guard import Confined, confined_replan
from nodes.vacuity import CommandRunner, DeferredProbe, Probe, vacuous_checks
from policies.decision import ApprovedScope, RunPolicy
from policies.gate import Gate

__all__ = ["create_run", "plan_node", "replan_node", "write_plan"]

_PROBE_S = 20.0  # a check the probe cannot finish in this long is not vacuous as far as planning knows


def _guard(gate: Gate, provider: ModelProvider) -> Callable[[str, str], None]:
    """The gate for the planner's model calls (role ``planner``)."""
    def guard(endpoint: str, prompt: str) -> None:
        ep = provider.registry.get(endpoint)
        tokens = len(prompt) // 4
        gate.authorize_model(task="plan", role="planner", endpoint=ep.name, locality=ep.locality,
                             estimate={"tokens": float(tokens), "usd": ep.cost_usd(tokens, 0)}, text=prompt)
    return guard


def planning_sandbox(gate: Gate) -> CommandRunner:
    """Commands run while planning (check probes, reference programs): through the gate as the Evaluator's
    would, then in the sandbox; None when the gate does not allow one (planning cannot wait for a human).
    Like a tool call: the run's handles become real values for the command, and its output comes back with
    secrets and PII as handles (a reference program's output becomes a check, and evidence, in a prompt)."""
    async def run(command: str, where: Path) -> Completed | None:
        real = gate.vault.reveal(command)
        try:
            await asyncio.to_thread(gate.authorize_tool, task="plan", role=Role.evaluator.value, tool="exec.run",
                                    arguments={"command": real, "timeout_s": _PROBE_S})
            done = await run_sandboxed(where, real, Limits(wall_s=_PROBE_S, cpu_s=int(_PROBE_S)))
        except (PolicyDenied, SandboxUnavailable):
            return None  # not probed: the check stays, the run's own gate decides about it later
        return gate.vault.redact_fields(done, "stdout", "stderr")
    return run


def _probe(gate: Gate, workspace: Path, home: Path, probed: set[str] | None = None) -> Probe:
    """Finds a candidate plan's vacuous checks (``nodes.vacuity``) on a copy of ``workspace`` without ``home``;
    ``probed`` collects the commands it ran (the others are probed at check time, ``DeferredProbe``)."""
    run = planning_sandbox(gate)

    async def counted(command: str, where: Path) -> Completed | None:
        done = await run(command, where)
        if done is not None and probed is not None:
            probed.add(command)
        return done

    async def probe(plan: Plan) -> list[PlanProblem]:
        return await vacuous_checks(plan, workspace, counted, leave_out=(home,))
    return probe


def shown_plan(services: RunServices, run_id: str, plan: Plan) -> dict[str, JsonValue]:
    """The plan as the graph state (and so every checkpoint, SDK client and Studio) holds it: secrets as handles."""
    shown: dict[str, JsonValue] = services.vault(run_id).redact_value(plan.model_dump(mode="json", by_alias=True))
    return shown


def write_plan(services: RunServices, record: RunRecord, plan: Plan, name: str) -> None:
    """``RUN/<name>`` is an artifact like events.jsonl and report.md: its strings go through the run's vault, so
    a key or card number in a direct action's arguments or a check is stored as its handle (issue 14).

    The run executes the plan in state. A task node resumed in another process (an approval, a crash) reads its
    phase's plan from a file instead (``RunServices.plan_to_run``) and must get the values, not handles that
    process's vault cannot reveal. So when redaction changed anything, the plan as given is also kept outside
    the run directory, owner-only (``RunServices.given_plan_path``), like the checkpoints that hold it in state.
    """
    given = plan.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    shown = services.vault(record.run_id).redact_value(given)
    if shown != given:
        private = services.given_plan_path(record.run_id, name)
        for folder in (private.parent.parent, private.parent):
            folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(plan.model_dump_json(indent=2, by_alias=True, exclude_defaults=True))
    (services.store.dir(record.run_id) / name).write_text(json.dumps(shown, indent=2, ensure_ascii=False),
                                                          encoding="utf-8")


def create_run(services: RunServices, state: RunState) -> RunRecord:
    """The run record for a graph started without one (LangGraph server, SDK): goal, workspace and policy
    from the input. Blocking (copies the workspace): call it from a worker thread."""
    source = Path(state["workspace"]).expanduser() if state.get("workspace") else None
    policy = RunPolicy(mode=state.get("mode", "copilot"),
                       approve=[ApprovedScope.parse(s) for s in state.get("approve", [])])
    vault = SecretVault()
    goal = vault.redact(state["goal"], depth="prose")
    record = services.store.create(goal, source_workspace=source, in_place=False, policy=policy)
    services.vaults[record.run_id] = vault
    return record


async def plan_node(state: RunState, services: RunServices, *, thread: str, served: bool) -> dict[str, Any]:
    """Phase 0: take the given plan (validated again: a client may send anything) or plan the goal.

    ``thread`` is the LangGraph thread the run lives in (its own id under the CLI, the server's otherwise);
    ``served``: a LangGraph server drives it (``naestro approve`` then answers through the server's API)."""
    if state.get("run_id"):
        record = await asyncio.to_thread(services.store.load, state["run_id"])
    else:
        record = await asyncio.to_thread(create_run, services, state)
        if services.on_created is not None:  # before any work: a shadow copies the starting files
            try:
                raw = state.get("plan")
                await services.on_created(record, None if raw is None else Plan.model_validate(raw))
            except ValidationError:
                pass  # a malformed plan fails below with the validator's message; nothing to shadow
    run_id = record.run_id
    events = services.events(record)
    audit = services.audit_log(run_id)
    await asyncio.to_thread(audit.append, "run_started", goal=record.goal, policy=record.policy.model_dump())
    events.emit("run_started", goal=record.goal, workspace=record.workspace)
    rejected: list[JsonValue] = []
    repaired: list[JsonValue] = []
    references: dict[str, JsonValue] = {}
    dropped: list[JsonValue] = []
    tokens = 0
    helped: list[GoalRequirement] = []
    helper_refused: list[JsonValue] = []
    rt = services.runtime
    given = state.get("plan")
    if given is not None:
        # The driver handed secrets in as the run's handles (the input is checkpointed): the plan to run has the
        # values back. A client of the LangGraph server sends what it sends; its input is in that checkpoint.
        real = services.vault(run_id).reveal(given)
        plan = redact_plan(await asyncio.to_thread(parse_plan, real, source="input plan"))
        record.plan_source = "file"
    else:
        events.emit("planning", endpoint=rt.provider.registry.default)
        gate = await asyncio.to_thread(services.gate, record=record, bus=None, events=events, audit=audit,
                                       registered={"exec.run"}, remember=False)
        probed: set[str] = set()
        home = services.store.runs_dir.parent  # inside the workspace in an --in-place run: never copied
        recalled = await plan_context(rt.memory, record.goal, gate=gate, events=events)  # issue 19: past plans
        guard = _guard(gate, rt.provider)

        async def planned() -> PlanOutcome:
            with span("naestro.plan", attributes={"naestro.planner.attempts": rt.settings.planner_attempts}) as sp:
                outcome = await make_plan(record.goal, rt.provider, attempts=rt.settings.planner_attempts,
                                          guard=guard, context=recalled,
                                          probe=_probe(gate, Path(record.workspace), home, probed))
                sp.set_attributes({"naestro.plan.source": outcome.source,
                                   "naestro.plan.tasks": len(outcome.plan.tasks), "naestro.tokens": outcome.tokens})
            return outcome

        async def referenced() -> ReferenceOutcome | None:
            if not rt.settings.reference_checks:
                return None
            with span("naestro.plan.reference"):
                return await reference_checks(record.goal, rt.provider, Path(record.workspace),
                                              planning_sandbox(gate), guard=guard, redact=gate.vault.redact,
                                              leave_out=(home,))

        async def helped_by_model() -> HelperOutcome | None:
            if not rt.settings.goal_helper:
                return None
            return await helper_requirements(record.goal, rt.provider, guard=guard,
                                             exists=in_workspace(Path(record.workspace)))

        # The plan, the reference results and the helper's requirements depend on the goal and the starting
        # workspace only: asked at once, the model server's slots serve them side by side (planning a data goal
        # took 10-16 minutes one after another).
        outcome, ref, helper = await gathered(planned(), referenced(), helped_by_model())
        await asyncio.to_thread(DeferredProbe(services.store.dir(run_id), 0).keep_unprobed, outcome.plan, probed,
                                Path(record.workspace))
        plan, record.plan_source, tokens = outcome.plan, outcome.source, outcome.tokens
        rejected = [[str(p) for p in a] for a in outcome.attempts]
        repaired, dropped = [*outcome.repairs], [*outcome.dropped]
        if ref is not None:
            plan, tokens = with_file_checks(plan, ref.checks), tokens + ref.tokens
            references = {**{f: "checked" for f in ref.checks}, **ref.notes}
        if helper is not None:
            helped, helper_refused, tokens = helper.kept, [*helper.refused], tokens + helper.tokens
    # What the goal itself asks for, read before any task ran: files already here are its inputs (issue 22).
    goal_checks = await asyncio.to_thread(planned_goal_checks, record.goal, Path(record.workspace), extra=helped)
    # The content the goal spells out is checked on the task that writes the file too, so its attempts are told.
    spelled = (GoalRequirement.model_validate(c["requirement"]) for c in goal_checks)
    plan = with_file_checks(plan, {r.file: check for r in spelled if r.kind == "exact" for check in task_checks(r)})
    record.plans, record.status = ["plan.json"], "running"
    record.threads, record.served = [thread or run_id], served
    await asyncio.to_thread(_save_plan, services, record, plan, "plan.json")
    # Emitted only once plan.json and run.json are on disk: subscribers may read them.
    events.emit("planned", source=record.plan_source, tasks=[t.id for t in plan.tasks],
                rejected_attempts=rejected, repaired_checks=repaired, dropped_test_tasks=dropped,
                references=references, goal_requirements=[c["description"] for c in goal_checks],
                goal_helper_refused=helper_refused, tokens=tokens)
    return {"run_id": run_id, "goal": plan.goal, "phase": 0, "plan": shown_plan(services, run_id, plan),
            "tasks": Overwrite({}), "goal_checks": goal_checks}


def _save_plan(services: RunServices, record: RunRecord, plan: Plan, name: str) -> None:
    write_plan(services, record, plan, name)
    services.store.save(record)


def _unfinished(plan: Plan, tasks: dict[str, TaskRecord]) -> dict[str, str]:
    failed: dict[str, str] = {}
    for t in plan.tasks:
        rec = tasks.get(t.id)
        if rec is None:
            failed[t.id] = "not run"
        elif rec["status"] != "passed":
            failed[t.id] = rec["feedback"] or rec.get("error", "")
    return failed


def _toward_the_goal(new: Plan, *, source: str, goal: str, original: Plan, existing: list[str],
                     unmet: list[GoalCheck], carried: list[AcceptanceCheck], events: EventLog, phase: int) -> Plan:
    """The re-plan without deliverables the goal did not ask for (``nodes.replan_guard``); when nothing of it is
    left, one Coder task toward what the goal still lacks, accepted when the goal's files exist (not the ones it
    keeps as they are: its inputs are not deliverables), the failed tasks' ``carried`` checks pass and so do its
    unmet requirements' task checks (``nodes.goal_task_checks``). Its attempts are told what fails, as the failed
    tasks' were (an agreed reference program is offered again); with file_exists checks alone it passed at once,
    and in the issue-22 slice at fda50b7 it overwrote a correct big_orders.csv with an empty one that only the
    final re-check caught. The goal's own checks on the final
    workspace still decide the run.

    A keyword template (the planner's last fallback) is never a re-plan: it solves another goal, and what the guard
    leaves of it does none of this one's work. Seen in the issue-22 slice: csv-data-summary's ``prepare_data``
    spent 4 minutes writing an invented data.csv while big_orders.csv stayed wrong, and the run ended on it."""
    if source.startswith("template:"):
        confined = Confined(plan=None, dropped_tasks=tuple(t.id for t in new.tasks))
    else:
        confined = confined_replan(new, goal=goal, original=original, existing=existing)
    if confined.dropped_tasks or confined.dropped_checks:
        events.emit("replan_confined", phase=phase, dropped_tasks=list(confined.dropped_tasks),
                    dropped_checks=list(confined.dropped_checks))
    if confined.plan is not None:
        return confined.plan
    kept = set(kept_unchanged(goal))  # inputs and files to leave alone: their own requirement checks them
    checks: list[AcceptanceCheck] = [FileExistsCheck(kind="file_exists", path=f) for f in files_named(goal)
                                     if f not in kept]
    checks += [c for c in carried if c not in checks]
    for req in unmet_requirements(unmet):
        checks += [c for c in task_checks(req) if c not in checks]
    reasons = "; ".join(f"{k}: {v[:300]}" for k, v in goal_failures(unmet).items())
    return Plan.model_validate({"goal": new.goal, "tasks": [{
        "id": "finish_goal", "role": "coder", "description": f"Finish what the goal still lacks. {reasons}"[:2000],
        "accept": [c.model_dump(mode="json") for c in checks]}]})


async def replan_node(state: RunState, services: RunServices, *, run_id: str, plan: Plan,
                      events: EventLog) -> dict[str, Any]:
    """Plan only what is unfinished, telling the planner what is already done and why the rest failed."""
    record = await asyncio.to_thread(services.current, run_id)
    tasks = state["tasks"]
    phase = state.get("phase", 0) + 1
    done = {t: r["summary"][:200] for t, r in tasks.items() if r["status"] == "passed"}
    failed = _unfinished(plan, tasks)
    unmet = goal_failures(state.get("goal_checks"))
    workspace = Path(record.workspace)
    files = await asyncio.to_thread(workspace_files, workspace, leave_out=(services.store.runs_dir.parent,))
    context = (f"Already done (do NOT plan again): {json.dumps(done)}\nFiles in the workspace: {files[:50]}\n"
               f"Unfinished, with the reason it failed: {json.dumps(failed)[:2000]}\n"
               + (f"The goal's own requirements not met yet: {json.dumps(unmet)[:2000]}\n" if unmet else "")
               + "Plan only the remaining work toward the files the goal asks for, with a different approach where "
               "it failed.")
    events.emit("replanning", phase=phase, unfinished=list(failed), goal_unmet=list(unmet))
    rt = services.runtime
    gate = await asyncio.to_thread(services.gate, record=record, bus=None, events=events,
                                   registered={"exec.run"}, remember=False)
    probed: set[str] = set()
    with span("naestro.replan", attributes={"naestro.phase": phase}):
        outcome = await make_plan(plan.goal, rt.provider, attempts=rt.settings.planner_attempts,
                                  guard=_guard(gate, rt.provider),
                                  probe=_probe(gate, workspace, services.store.runs_dir.parent, probed),
                                  context=context)
    original = await asyncio.to_thread(services.plan_to_run, record, 0)
    new = _toward_the_goal(outcome.plan, source=outcome.source, goal=record.goal, original=original,
                           existing=files, unmet=state.get("goal_checks") or [],
                           carried=portable_checks(plan, failed), events=events, phase=phase)
    carry = carry_unfinished_checks(plan, failed, new)
    # Checks of this phase that pass on its starting workspace are work done by an earlier phase (nodes/task.py)
    # when checks that already failed once decide the run: the failed tasks' carried checks or the goal's unmet
    # requirements, both re-checked on the final workspace.
    await asyncio.to_thread(functools.partial(
        DeferredProbe(services.store.dir(record.run_id), phase).keep_unprobed, outcome.plan, probed, workspace,
        guarded=bool(carry.carried) or bool(unmet)))
    if carry.carried or carry.dropped:
        events.emit("checks_carried", phase=phase, carried=list(carry.carried), dropped=list(carry.dropped))
    name = f"plan.replan{phase}.json"
    run_dir = services.store.dir(record.run_id)

    def save() -> None:
        write_plan(services, record, carry.plan, name)
        if (run_dir / "report.md").exists():
            (run_dir / "report.md").replace(run_dir / f"report.phase{phase - 1}.md")
        record.plans.append(name)
        services.store.save(record)
    await asyncio.to_thread(save)
    events.emit("replanned", phase=phase, source=outcome.source, tasks=[t.id for t in carry.plan.tasks],
                tokens=outcome.tokens)
    return {"phase": phase, "plan": shown_plan(services, record.run_id, carry.plan), "tasks": Overwrite({}),
            "report": ""}
