"""History, rollback, replay and fork of a run: checkpoints (state) and workspace snapshots (files) together.

Rollback and replay move the run's *head* to an earlier checkpoint of its thread and restore the workspace
bytes bound to it; the next drive continues from there as a new branch (LangGraph keeps the old one), with
a new journal epoch so the restored steps are really executed again. Fork does the same into a new run id
that shares the thread; both runs then pin their own head. Every move is audited and reversible: the
workspace as it was before is snapshotted and bound to the checkpoint that was the head.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from checkpoints import open_saver
from checkpoints.snapshots import SnapshotStore, WorkspaceChanged
from graphs.compile import compile_graph, ready_tasks
from naestro.errors import UsageError
from naestro.plan import Plan
from naestro.runs import RunRecord, RunStore

if TYPE_CHECKING:
    from naestro.runner import Runner

__all__ = ["HistoryEntry", "TimeTravel"]


@dataclass(frozen=True)
class HistoryEntry:
    checkpoint_id: str
    parent_id: str | None
    thread: str
    phase: int
    step: int
    node: str  # the node(s) whose writes made this checkpoint ("input" for the first one)
    next: list[str]
    created: str
    tokens: int
    cost_usd: float
    snapshot: str | None
    head: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _next(s: StateSnapshot) -> list[str]:
    """What runs after this checkpoint; the task node is named with the task it was sent for (``task:b``)."""
    values = s.values if isinstance(s.values, dict) else {}
    shown: list[str] = []
    for name in s.next:
        if name == "task" and isinstance(values.get("plan"), dict):
            sent = [t for t in s.tasks if t.name == "task"]
            ready = ready_tasks(Plan.model_validate(values["plan"]), values)  # type: ignore[arg-type]
            shown += [f"task:{r['task']}" for r in ready[:len(sent) or None]]
        else:
            shown.append(name)
    return list(dict.fromkeys(shown))


class TimeTravel:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.store: RunStore = runner.store
        self.settings = runner.settings

    def _snapshots(self, run_id: str) -> SnapshotStore:
        return SnapshotStore(self.store.dir(run_id) / "snapshots")

    async def _states(self, record: RunRecord) -> list[tuple[int, StateSnapshot]]:
        out: list[tuple[int, StateSnapshot]] = []
        async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver:
            graph = compile_graph(self.runner.services, checkpointer=saver)
            for thread in dict.fromkeys(record.threads or [record.run_id]):
                config: RunnableConfig = {"configurable": {"thread_id": thread}}
                states = [s async for s in graph.aget_state_history(config)]
                # oldest first; the phase (re-plan number) is part of the state
                out += [(int(s.values.get("phase", 0)) if isinstance(s.values, dict) else 0, s)
                        for s in reversed(states)]
        return out

    async def history(self, run_id: str) -> list[HistoryEntry]:
        """Every checkpoint of the run's threads, oldest first, with the snapshot of its workspace."""
        record = self.store.load(run_id)
        states = await self._states(record)
        snapshots = self._snapshots(run_id)
        by_id = {str(s.config["configurable"]["checkpoint_id"]): s for _, s in states}
        head = record.head or (str(states[-1][1].config["configurable"]["checkpoint_id"]) if states else None)
        entries: list[HistoryEntry] = []
        for phase, s in states:
            cid = str(s.config["configurable"]["checkpoint_id"])
            parent = str(s.parent_config["configurable"]["checkpoint_id"]) if s.parent_config else None
            made_by = list(by_id[parent].next) if parent in by_id else []
            tasks = s.values.get("tasks", {}) if isinstance(s.values, dict) else {}
            entries.append(HistoryEntry(
                checkpoint_id=cid, parent_id=parent, thread=str(s.config["configurable"]["thread_id"]), phase=phase,
                step=int(s.metadata.get("step", -1)) if s.metadata else -1,
                node=",".join(made_by) or ("input" if parent is None else "update"), next=_next(s),
                created=str(s.created_at), tokens=sum(int(r.get("tokens", 0)) for r in tasks.values()),
                cost_usd=round(sum(float(r.get("cost_usd", 0.0)) for r in tasks.values()), 6),
                snapshot=self._snapshot_of(cid, by_id, snapshots), head=cid == head))
        return entries

    @staticmethod
    def _snapshot_of(cid: str, by_id: dict[str, StateSnapshot], snapshots: SnapshotStore) -> str | None:
        """The checkpoint's own snapshot, else the one of its nearest descendant on the same branch that has
        one (only nodes that may change files take snapshots, so steps in between left the files alone)."""
        bound = snapshots.for_checkpoint(cid)
        if bound:
            return bound
        children: dict[str, list[str]] = {}
        for k, s in by_id.items():
            if s.parent_config:
                children.setdefault(str(s.parent_config["configurable"]["checkpoint_id"]), []).append(k)
        frontier = sorted(children.get(cid, []))
        while frontier:
            nxt = frontier.pop(0)
            bound = snapshots.for_checkpoint(nxt)
            if bound:
                return bound
            frontier = sorted(children.get(nxt, [])) + frontier
        return None

    async def resolve(self, run_id: str, ref: str) -> HistoryEntry:
        """A checkpoint id (or a unique prefix/suffix of one) or a step number of the run's last phase."""
        entries = await self.history(run_id)
        if not entries:
            raise UsageError(f"run {run_id} has no checkpoints (pruned, or it never started)")
        if ref.lstrip("-").isdigit():
            last_phase = entries[-1].phase
            found = [e for e in entries if e.phase == last_phase and e.step == int(ref)]
        else:
            found = [e for e in entries if e.checkpoint_id == ref] or \
                [e for e in entries if e.checkpoint_id.startswith(ref) or e.checkpoint_id.endswith(ref)]
        if len(found) != 1:
            hint = "several match; use the full checkpoint id" if found else "see `naestro runs history RUN`"
            raise UsageError(f"no single checkpoint {ref!r} in run {run_id} ({hint})")
        return found[0]

    def _guard_workspace(self, record: RunRecord, force: bool) -> None:
        snapshots = self._snapshots(record.run_id)
        latest = snapshots.latest()
        ws = Path(record.workspace)
        if latest is not None and not force:
            changed = snapshots.changed(latest, ws)
            if changed:
                raise WorkspaceChanged(ws, changed)

    async def rollback(self, run_id: str, ref: str, *, force: bool = False, action: str = "rollback") -> HistoryEntry:
        """Restore state and files to checkpoint ``ref``; the next `naestro resume` continues from there."""
        record = self.store.load(run_id)
        if record.alive() and record.status in ("running", "planning"):
            raise UsageError(f"run {run_id} is running (pid {record.pid}); `naestro pause {run_id}` first")
        target = await self.resolve(run_id, ref)
        if target.snapshot is None:
            raise UsageError(f"checkpoint {target.checkpoint_id} has no workspace snapshot (taken before "
                             "snapshots existed, or pruned); cannot restore files for it")
        self._guard_workspace(record, force)
        snapshots = self._snapshots(run_id)
        entries = await self.history(run_id)
        old_head = next((e.checkpoint_id for e in entries if e.head), None)
        before = snapshots.take(Path(record.workspace))  # what the rollback replaces: kept, so it is reversible
        if old_head and not snapshots.bound(old_head):
            snapshots.bind(old_head, before)
        touched = snapshots.restore(target.snapshot, Path(record.workspace))
        phase = target.phase
        record.threads, record.plans = record.threads[:phase + 1], record.plans[:phase + 1]
        record.head, record.epoch, record.status, record.error = target.checkpoint_id, record.epoch + 1, \
            "rolled_back", ""
        self.store.save(record)
        self.runner.audit_log(run_id).append(action, to_checkpoint=target.checkpoint_id, from_checkpoint=old_head,
                                             restored_snapshot=target.snapshot, previous_snapshot=before,
                                             files=touched[:200], forced=force)
        return target

    async def fork(self, run_id: str, ref: str, *, edit: dict[str, Any] | None = None) -> RunRecord:
        """A new run from checkpoint ``ref`` (state optionally edited), with its own copy of the files."""
        source = self.store.load(run_id)
        target = await self.resolve(run_id, ref)
        if target.snapshot is None:
            raise UsageError(f"checkpoint {target.checkpoint_id} has no workspace snapshot; cannot fork its files")
        entries = await self.history(run_id)
        if source.head is None:  # both runs now share the thread: pin the source to its own branch
            source.head = next(e.checkpoint_id for e in entries if e.head)
            self.store.save(source)
        fork = self.store.create(source.goal, source_workspace=None, in_place=False, policy=source.policy)
        src_dir, dst_dir = self.store.dir(run_id), self.store.dir(fork.run_id)
        for name in source.plans[:target.phase + 1]:
            shutil.copyfile(src_dir / name, dst_dir / name)
        dst_snaps = SnapshotStore(dst_dir / "snapshots")
        SnapshotStore(src_dir / "snapshots").copy_into(dst_snaps)
        dst_snaps.restore(target.snapshot, Path(fork.workspace))
        head = target.checkpoint_id
        if edit:
            async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver:
                graph = compile_graph(self.runner.services, checkpointer=saver)
                cfg: RunnableConfig = {"configurable": {"thread_id": target.thread, "checkpoint_id": head}}
                as_node = target.node.split(",")[0] if target.node not in ("input", "update") else None
                new_cfg = await graph.aupdate_state(cfg, edit, as_node=as_node)
                head = str(new_cfg["configurable"]["checkpoint_id"])
        dst_snaps.bind(head, target.snapshot)
        fork.threads, fork.plans = source.threads[:target.phase + 1], source.plans[:target.phase + 1]
        fork.plan_source, fork.head, fork.status = f"fork of {run_id} at {target.checkpoint_id}", head, "rolled_back"
        self.store.save(fork)
        self.runner.audit_log(run_id).append("forked", to_run=fork.run_id, at_checkpoint=target.checkpoint_id)
        self.runner.audit_log(fork.run_id).append("fork", from_run=run_id, at_checkpoint=target.checkpoint_id,
                                                  head=head, edited=json.loads(json.dumps(edit or {})))
        return fork
