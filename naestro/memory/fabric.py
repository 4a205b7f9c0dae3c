"""``Memory``: what the runtime, the nodes and the CLI use: record a finished run, recall (gated and traced),
the Planner's recall of similar goals, the timeline, forget, and skill induction.

Every recall is an action for the policy gate (``Gate.authorize_memory``: the slices read are its data scope,
``policies/rego/memory.rego`` says which roles may read which) and a span in the run's trace. Writes happen
after a run finished, from its directory, so a failure to write memory never fails a run (it is an event).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from naestro.memory.harvest import episodes_of_run
from naestro.memory.records import SLICES, EpisodeKind, MemoryHit, Slice
from naestro.memory.retention import Retention, redacted, runs_to_forget
from naestro.memory.skills import Skill, SkillBook, induce_skills
from naestro.memory.store import MemoryStore
from naestro.redact import redact
from naestro.telemetry import span
from policies.gate import Gate

__all__ = ["Memory", "readable_slices"]

_PLAN_CONTEXT_CHARS = 2400  # what a recall adds to the planner's prompt: a few plans, not the archive
_TASK_CONTEXT_CHARS = 1400  # what a recall adds to an agent's prompt: three facts
_FACT_CHARS = 420


def readable_slices(readable: Mapping[str, Sequence[str]], role: str) -> list[Slice]:
    """The slices a role's default recall asks for: the policy data's patterns expanded (the policy still decides)."""
    patterns = readable.get(role, [])
    return [s for s in SLICES if any(fnmatch.fnmatchcase(s, p) for p in patterns)]


def _compact(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A plan as the planner's context shows it: tasks with role, description, deps and checks."""
    return [{k: t[k] for k in ("id", "role", "description", "deps", "accept") if k in t}
            for t in plan.get("tasks", []) if isinstance(t, dict)]


class Memory:
    def __init__(self, store: MemoryStore, *, home: Path, readable: Mapping[str, Sequence[str]],
                 roles: Mapping[str, Sequence[str]], retention: Retention | None = None,
                 min_support: int = 2) -> None:
        self.store, self.home, self.readable, self.roles = store, home, readable, roles
        self.retention = retention or Retention()
        self.skills = SkillBook(home / "memory" / "skills.json")
        self.min_support = min_support

    @classmethod
    def open(cls, *, home: Path, url: str | None, readable: Mapping[str, Sequence[str]],
             roles: Mapping[str, Sequence[str]], retention: Retention | None = None) -> Memory:
        """The home's memory: the store from ``url`` or the embedded FalkorDB; nothing starts until first used."""
        from naestro.memory.embedder import MiniLM
        from naestro.memory.store import open_store

        store = open_store(data_dir=home / "memory", url=url, model=MiniLM())
        return cls(store, home=home, readable=readable, roles=roles, retention=retention)

    # --- writing -------------------------------------------------------------------------------------------

    async def record_run(self, run_dir: Path) -> int:
        """Write a finished run's episodes (redacted), apply retention, re-induce skills; episodes written."""
        episodes = [redacted(e) for e in await asyncio.to_thread(episodes_of_run, run_dir)]
        if not episodes:
            return 0
        with span("naestro.memory.write", attributes={"naestro.run.id": episodes[0].run_id,
                                                      "naestro.memory.episodes": len(episodes)}):
            written = await self.store.write(episodes)
            await self.apply_retention()
            await self.induce()
        return written

    async def apply_retention(self, *, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        forgotten = 0
        cutoff = self.retention.cutoff(now)
        if cutoff is not None:
            forgotten += await self.store.forget(slices=SLICES, before=cutoff)
        runs = await self.store.timeline(slices=["plans"], kinds=["run"], limit=self.retention.keep_runs + 200)
        extra = runs_to_forget(runs, self.retention)
        if extra:
            forgotten += await self.store.forget(slices=SLICES, run_ids=extra)
        return forgotten

    async def induce(self, *, now: datetime | None = None) -> list[Skill]:
        """Skills from every remembered run of the ``plans`` slice; saved to ``memory/skills.json``."""
        runs = await self.store.timeline(slices=["plans"], kinds=["run"], limit=self.retention.keep_runs)
        safety = await self.store.timeline(slices=SLICES, kinds=["denial", "consent"], limit=5000)
        denials = Counter(h.run_id for h in safety if h.kind == "denial")
        consents = Counter(h.run_id for h in safety if h.kind == "consent")
        skills = induce_skills(runs, roles=self.roles, min_support=self.min_support, denials=denials,
                               consents=consents, now=now or datetime.now(UTC))
        await asyncio.to_thread(self.skills.save, skills)
        return skills

    # --- reading -------------------------------------------------------------------------------------------

    async def recall(self, query: str, *, gate: Gate, role: str, task: str, slices: Sequence[Slice] | None = None,
                     limit: int = 5) -> list[MemoryHit]:
        """Gate, then search: ``PolicyDenied`` when the role may not read a slice asked for."""
        wanted = list(slices) if slices is not None else readable_slices(self.readable, role)
        with span("naestro.memory.recall", attributes={"naestro.role": role, "naestro.task.id": task,
                                                       "naestro.memory.slices": [*wanted]}) as sp:
            decision = await asyncio.to_thread(gate.authorize_memory, task=task, role=role, slices=[*wanted],
                                               query=query)
            cap = decision.obligations.get("max_results")
            limit = min(limit, cap) if isinstance(cap, int) else limit
            start = time.perf_counter()
            hits = await self.store.search(query, slices=wanted, limit=limit)
            sp.set_attributes({"naestro.memory.hits": len(hits),
                               "naestro.memory.latency_ms": round((time.perf_counter() - start) * 1000, 2)})
        return hits

    async def planner_context(self, goal: str, *, gate: Gate,
                              limit: int = 3) -> tuple[str, list[MemoryHit], list[Skill]]:
        """Similar past goals: skills their passing plans belong to, plans that passed (to reuse) and runs that
        failed (and why), as prompt text; the hits and skills it shows."""
        hits = await self.recall(goal, gate=gate, role="planner", task="plan", slices=["plans"], limit=8)
        runs = [h for h in hits if h.kind == "run" and h.plan]
        passed = [h for h in runs if h.outcome == "passed"][:limit]
        failed = [h for h in runs if h.outcome == "failed"][:1]
        # A failed run the self-improvement loop merged a fix for (issue 21): what went wrong, and what changed.
        counter = [h for h in hits if h.kind == "counterexample"][:1]
        if not passed and not failed and not counter:
            return "", [], []
        # A skill is a plan shape that passed again and again: shown when one of the similar goals ran it.
        similar = {h.run_id for h in runs if h.outcome == "passed"}
        skills = [s for s in await asyncio.to_thread(self.skills.load) if similar & set(s.runs)][:1]
        lines = ["Memory of similar past goals (reuse a plan that passed when it fits this goal; avoid what failed):"]
        for skill in skills:
            safety = skill.safety
            lines.append(f"- SKILL {skill.id}: this plan shape passed in {skill.support} of {skill.seen} runs "
                         f"(roles {', '.join(safety.roles)}; {safety.shell_checks} command check(s); "
                         f"{safety.denials_seen} policy denial(s) and {safety.consents_seen} consent(s) seen): "
                         f"{json.dumps(_compact(skill.template))}")
        for h in passed:
            plan = json.loads(h.plan or "{}")
            lines.append(f"- PASSED goal {plan.get('goal', '')!r}: plan {json.dumps(_compact(plan))}")
        for h in failed:
            lines.append(f"- FAILED: {h.text}")
        for h in counter:
            lines.append(f"- COUNTER-EXAMPLE: {h.text}")
        text = "\n".join(lines)
        return text[:_PLAN_CONTEXT_CHARS], [*passed, *failed, *counter], skills

    async def task_context(self, query: str, *, gate: Gate, role: str, task: str, run_id: str,
                           limit: int = 3) -> tuple[str, list[MemoryHit]]:
        """Facts of earlier runs for an agent's task, from the slices its role may read, as prompt text.

        Capped (a few facts, each cut short: a small model's prompt is small), redacted again on the way out (a
        pattern added since the write still applies), and never from this run (its own facts are in the
        feedback). ``PolicyDenied`` when the role may read nothing."""
        hits = await self.recall(query, gate=gate, role=role, task=task, limit=limit + 2)
        hits = [h for h in hits if h.run_id != run_id][:limit]
        if not hits:
            return "", []
        lines = ["Facts remembered from earlier runs (they may not apply to this task; use what helps):"]
        for h in hits:
            fact = redact(h.text, depth="data")
            fact = fact if len(fact) <= _FACT_CHARS else fact[:_FACT_CHARS - 1] + "…"
            lines.append(f"- [{h.valid_at:%Y-%m-%d}, {h.kind} {h.outcome}] {fact}")
        return "\n".join(lines)[:_TASK_CONTEXT_CHARS], hits

    async def timeline(self, *, slices: Sequence[Slice] = SLICES, run_id: str | None = None,
                       kinds: Sequence[EpisodeKind] | None = None, limit: int = 100) -> list[MemoryHit]:
        return await self.store.timeline(slices=slices, run_id=run_id, kinds=kinds, limit=limit)

    async def forget(self, *, run_ids: Sequence[str] | None = None, before: datetime | None = None) -> int:
        with span("naestro.memory.forget"):
            forgotten = await self.store.forget(slices=SLICES, run_ids=run_ids, before=before)
            await self.induce()
        return forgotten

    async def close(self) -> None:
        await self.store.close()
