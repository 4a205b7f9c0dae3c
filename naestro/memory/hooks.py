"""The places a run touches memory, each one call from a graph node: the Planner's recall before it plans
(``plan_context``, from ``nodes/planning.py``), an agent's recall before its task (``task_context``, from
``nodes/agent.py``) and the episodes written when the run ends (``remember_run``, from the ``finish`` node in
``graphs/compile.py``). Memory is advice and history: when it is off, denied or down, the run goes on exactly as
without it, and its events say why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from naestro.errors import PolicyDenied
from naestro.events import EventLog

if TYPE_CHECKING:
    from naestro.memory.fabric import Memory
    from policies.gate import Gate

__all__ = ["plan_context", "remember_run", "task_context"]


async def plan_context(memory: Memory | None, goal: str, *, gate: Gate, events: EventLog) -> str:
    """Similar past goals and their plans as prompt text for the Planner; "" without memory or hits."""
    if memory is None:
        return ""
    try:
        text, hits, skills = await memory.planner_context(goal, gate=gate)
    except PolicyDenied as exc:
        events.emit("memory_denied", role="planner", reasons=[*exc.reasons])
        return ""
    except Exception as exc:  # noqa: BLE001 - memory is advice: a planner without it still plans
        events.emit("memory_unavailable", stage="recall", error=f"{type(exc).__name__}: {exc}"[:500])
        return ""
    if hits:
        events.emit("memory_recalled", role="planner", keys=[h.key for h in hits],
                    outcomes=[h.outcome for h in hits], skills=[s.id for s in skills])
    return text


async def task_context(memory: Memory | None, query: str, *, gate: Gate, role: str, task: str, run_id: str,
                       events: EventLog) -> str:
    """Facts of earlier runs relevant to a task, as prompt text for its agent; "" without memory, scope or hits.

    A role the policy lets read nothing gets a ``memory_denied`` event (and the audited deny), not data."""
    if memory is None:
        return ""
    try:
        text, hits = await memory.task_context(query, gate=gate, role=role, task=task, run_id=run_id)
    except PolicyDenied as exc:
        events.emit("memory_denied", role=role, task=task, reasons=[*exc.reasons])
        return ""
    except Exception as exc:  # noqa: BLE001 - memory is advice: an agent without it still works
        events.emit("memory_unavailable", stage="recall", task=task, error=f"{type(exc).__name__}: {exc}"[:500])
        return ""
    if hits:
        events.emit("memory_recalled", role=role, task=task, keys=[h.key for h in hits],
                    outcomes=[h.outcome for h in hits], chars=len(text))
    return text


async def remember_run(memory: Memory | None, run_dir: Path, *, events: EventLog) -> None:
    """Write the finished run's episodes; a failure is an event, never the run's failure."""
    if memory is None:
        return
    try:
        written = await memory.record_run(run_dir)
    except Exception as exc:  # noqa: BLE001 - the run has finished; losing its memory must not change its outcome
        events.emit("memory_unavailable", stage="write", error=f"{type(exc).__name__}: {exc}"[:500])
        return
    events.emit("memory_written", episodes=written)
