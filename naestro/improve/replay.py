"""Validate by offline replay: recorded runs of this home re-run under the candidate config with their recorded
model replies (issue 21).

Each recorded run is re-run in a throwaway home, from its starting files (its first workspace snapshot, read
only) and its recorded plan, as an offline replay: the mechanism of ``naestro runs replay --offline``
(``RunRecord.replay_epoch``), so a model call that asks exactly what the recorded run asked at the same point
(same endpoint, prompt, schema and position) gets the recorded reply, while tools and acceptance checks really run
again, under the candidate config. No model is called: the replay's provider has the live endpoints and no model
behind them, and a call the recording does not answer stops that replay (``ReplayDiverged``) instead of asking a
live model and calling the result a replay.

Judged attempt by attempt from the two event logs: a task attempt that passed when recorded and ends otherwise in
the replay is a regression, and so is a run that passed when recorded and fails at the end of a replay that never
left the recording. A replay that leaves the recording (typically a retry the recorded run never needed, after
such a failure) is judged on the events written before it left: its end gives no verdict.

Where a replay says something: candidates that leave every role prompt as it is (router priors, tool adapter
configs, tests), whose recorded replies stay valid. It does not apply to a prompt delta: the recorded replies
answered the old prompts, every replayed call would diverge at its first request; the golden suite and the
canary judge those, and the validation record says so. Replayed calls are served without asking the router, so
new priors cannot change a replayed call: the replay shows that the candidate config still carries the recorded
work to the recorded outcomes, not how the priors would route calls the recording does not have.

Replayable runs: finished, one plan (the planner's reply is not journalled, a re-plan would need the model; the
replay itself never re-plans), never rolled back, forked or replayed (their replies span epochs), not pruned, with
a journal and a first snapshot.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from naestro.endpoints import Endpoint, ModelRegistry
from naestro.errors import RunError
from naestro.events import Event, read_events
from naestro.improve.counterexample import starting_files
from naestro.improve.validate import (
    SIDE_POLICY,
    ReplayReport,
    ReplayRun,
    roles_of,
    seed_workspace,
    side_runtime,
)
from naestro.llm import ModelProvider
from naestro.runner import Runner
from naestro.runs import RunRecord, RunStore
from naestro.settings import Settings
from naestro.validate import parse_plan_text

__all__ = ["NOT_FOR_PROMPTS", "RecordedOnly", "ReplayDiverged", "attempt_outcomes", "changed_prompts", "replay_problem",
           "replay_recorded"]

NOT_FOR_PROMPTS = ("offline replay does not apply: the candidate changes role prompts ({roles}), and the recorded "
                   "replies were produced for the old prompts (every replayed call would ask something the recording "
                   "does not hold); the golden suite and the canary judge this change")
ROUTER_NOTE = ("replayed calls are served from the recording without routing: the replay checks that the candidate "
               "config carries the recorded work to the recorded outcomes, not how its priors route new calls")


class ReplayDiverged(RunError):
    """An offline replay asked the model something the recording has no reply for."""

    def __init__(self, *, endpoint: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"offline replay: the recording has no reply for this call to {endpoint} (the replay asked "
                         "something the recorded run did not); no model is called during a replay")


class RecordedOnly:
    """The provider of an offline replay: the live registry (so requests hash as recorded), no model behind it.

    ``events`` is the replay's event log: at the first call the recording does not answer, the number of events
    written so far is kept, so the replay is judged only on what happened before it left the recording."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.asked: list[str] = []  # endpoints of calls the recording did not answer
        self.events: Path | None = None
        self.missed_at: int | None = None

    def start(self, events: Path) -> None:
        self.asked, self.events, self.missed_at = [], events, None

    def chat(self, endpoint: str | None) -> tuple[Endpoint, BaseChatModel]:
        name = self.registry.get(endpoint).name
        if not self.asked and self.events is not None:
            self.missed_at = len(read_events(self.events))
        self.asked.append(name)
        raise ReplayDiverged(endpoint=name)


def attempt_outcomes(events: list[Event]) -> dict[tuple[str, int], str]:
    """(task, attempt) → how the attempt ended: its checks' verdict, or ``failed`` when it ended in an error."""
    ran: dict[tuple[str, int], str] = {}
    checked: dict[tuple[str, int], str] = {}
    for e in events:
        task, attempt, status = e.get("task"), e.get("attempt"), e.get("status")
        if not (isinstance(task, str) and isinstance(attempt, int) and isinstance(status, str)):
            continue
        if e.get("event") == "task_checked":
            checked[(task, attempt)] = status
        elif e.get("event") == "task_ran" and status == "failed":
            ran[(task, attempt)] = status
    return {**ran, **checked}


def _thread(record: RunRecord) -> str:
    return record.threads[-1] if record.threads else record.run_id


def replay_problem(store: RunStore, record: RunRecord) -> str | None:
    """Why ``record`` cannot be replayed offline (None: it can)."""
    if record.status not in ("passed", "failed"):
        return f"not finished ({record.status})"
    if record.pruned:
        return "pruned (journal and snapshots dropped)"
    if record.epoch or record.replay_epoch is not None or record.head is not None:
        return "rolled back, forked or replayed: its replies span epochs"
    if len(record.plans) != 1:
        return "re-planned: the planner's replies are not journalled"
    if not (store.dir(record.run_id) / "journal.jsonl").exists():
        return "no journal"
    return None


def _recorded_replies(store: RunStore, record: RunRecord, new_run: str) -> list[str]:
    """The recorded run's model replies as journal lines keyed for ``new_run``'s epoch 0 (tools are left out:
    they run again)."""
    prefix = _thread(record) + "/"
    lines = []
    for line in (store.dir(record.run_id) / "journal.jsonl").read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line: that call was redone and journalled again
        if not isinstance(entry, dict):
            continue
        key = entry.get("key")
        if entry.get("kind") == "model" and entry.get("state") == "done" and isinstance(key, str) \
                and key.startswith(prefix):
            lines.append(json.dumps({**entry, "key": f"{new_run}/{key[len(prefix):]}"}))
    return lines


async def _replay(runner: Runner, provider: RecordedOnly, live: RunStore, record: RunRecord, scratch: Path,
                  timeout_s: float | None) -> ReplayRun:
    recorded = record.status == "passed"
    out = ReplayRun(run_id=record.run_id, recorded_passed=recorded)
    files = starting_files(live, record.run_id)
    if files is None:
        return out.model_copy(update={"detail": "no workspace snapshot to start from"})
    plan_path = live.dir(record.run_id) / record.plans[0]
    plan = parse_plan_text(plan_path.read_text(), source=str(plan_path))
    seed = seed_workspace(files, scratch / record.run_id)
    new = runner.store.create(record.goal, source_workspace=seed, in_place=False, policy=SIDE_POLICY)
    replies = _recorded_replies(live, record, new.run_id)
    # Epoch 0 holds the recorded replies; the replay runs as epoch 1, reading model replies from epoch 0.
    (runner.store.dir(new.run_id) / "journal.jsonl").write_text("".join(f"{line}\n" for line in replies))
    new.epoch, new.replay_epoch = 1, 0
    runner.store.save(new)
    out = out.model_copy(update={"replay_run": new.run_id, "recorded_calls": len(replies)})
    events_path = runner.store.dir(new.run_id) / "events.jsonl"
    provider.start(events_path)
    passed: bool | None = None
    crash = ""
    try:
        result = await asyncio.wait_for(runner.begin(new.run_id, plan=plan.model_dump(mode="json", by_alias=True)),
                                        timeout_s)
        passed = result.passed
    except Exception as exc:  # noqa: BLE001 - a replay that stops early is judged on what it did until then
        crash = f"{exc.__class__.__name__}: {exc}"[:300]
    replayed = read_events(events_path)
    if provider.missed_at is not None:
        replayed = replayed[:provider.missed_at]  # only what happened on recorded replies
    before = attempt_outcomes(read_events(live.dir(record.run_id) / "events.jsonl"))
    after = attempt_outcomes(replayed)
    broke = [f"task {t} attempt {a} passed when recorded, {after[(t, a)]} under the candidate"
             for (t, a), status in sorted(before.items()) if status == "passed" and after.get((t, a), "passed")
             != "passed"]
    out = out.model_copy(update={"unrecorded_calls": len(provider.asked)})
    if provider.asked:  # left the recording: no run verdict, but what broke before that still counts
        missing = f"{len(provider.asked)} call(s) to {', '.join(sorted(set(provider.asked)))} not in the recording"
        return out.model_copy(update={"regressed": bool(broke), "detail": "; ".join([*broke, missing])})
    if passed is None:
        return out.model_copy(update={"regressed": bool(broke), "detail": "; ".join([*broke, crash])})
    if recorded and not passed and not broke:
        broke = ["the run passed when recorded and fails under the candidate"]
    return out.model_copy(update={"replay_passed": passed, "regressed": bool(broke), "detail": "; ".join(broke)})


def changed_prompts(current: dict[str, str], candidate: dict[str, str]) -> list[str]:
    old, new = roles_of(current["roles.yaml"]), roles_of(candidate["roles.yaml"])
    return sorted(r.value for r in new if r not in old or old[r].prompt != new[r].prompt)


async def replay_recorded(live: RunStore, *, settings: Settings, provider: ModelProvider, current: dict[str, str],
                          candidate: dict[str, str], last: int, count: int, workdir: Path,
                          timeout_s: float | None = None) -> ReplayReport:
    """Replay up to ``count`` of the newest ``last`` finished runs of ``live`` under ``candidate`` (see the module
    docstring); ``provider`` lends only its registry."""
    prompts = changed_prompts(current, candidate)
    if prompts:
        return ReplayReport(applies=False, note=NOT_FOR_PROMPTS.format(roles=", ".join(prompts)))
    report = ReplayReport(applies=True, note=ROUTER_NOTE)
    finished = [r for r in live.list() if r.status in ("passed", "failed")][-last:]
    chosen: list[RunRecord] = []
    for record in reversed(finished):  # newest first
        problem = replay_problem(live, record)
        if problem is not None:
            report.skipped[record.run_id] = problem
        elif len(chosen) < count:
            chosen.append(record)
    if not chosen:
        return report
    offline = RecordedOnly(provider.registry)  # no model: a call the recording does not answer is not made
    # No re-plan in a replay: the planner's replies are not in the recording.
    side = settings.model_copy(update={"max_replans": 0})
    runtime = side_runtime(side, offline, candidate, workdir)
    scratch = Path(tempfile.mkdtemp(prefix="naestro-replay-"))
    try:
        runner = Runner.of(runtime)
        for record in reversed(chosen):  # oldest first, as they ran
            report.runs.append(await _replay(runner, offline, live, record, scratch, timeout_s))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        await runtime.aclose()
    return report
