"""Skill induction: plans that succeeded again and again, distilled into typed plan templates with safety metadata.

A plan's *shape* is its tasks in order, each as its role, its check kinds and the kinds of file it delivers; the
goal's words are left out, so "write fib.py ..." and "write primes.py ..." share a shape. A shape that passed in
at least ``min_support`` runs becomes a ``Skill``: the latest passing plan as a template (``{goal}`` in place of
the goal), the words its goals share, and what running it takes (tools, effects, denials and consents seen).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from naestro.memory.records import MemoryHit

__all__ = ["Skill", "SkillBook", "SkillSafety", "SkillShape", "induce_skills", "skill_of"]

_WORD = re.compile(r"[a-z][a-z0-9_]{2,}")
_STOP = frozenset({"the", "and", "with", "that", "this", "from", "into", "for", "its", "are", "was", "were",
                   "which", "then", "when", "each", "file", "files", "write", "create", "make", "using", "use",
                   "all", "one", "two", "print", "return", "returns", "given"})
_EXT = re.compile(r"\.(py|txt|csv|json|md|yaml|yml|toml|html|sh|sql|pdf)\b")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SkillShape(_Frozen):
    id: str
    name: str


class SkillSafety(_Frozen):
    """What a plan of this shape did when it ran: read before reusing it under a stricter policy."""

    roles: tuple[str, ...]
    tools: tuple[str, ...] = Field(description="tools the roles of the plan may call (nodes/roles.yaml)")
    shell_checks: int = Field(description="command acceptance checks: they run in the sandbox")
    denials_seen: int = Field(description="policy denials in the runs it was induced from")
    consents_seen: int = Field(description="consent requests answered in those runs")


class Skill(_Frozen):
    id: str
    name: str
    support: int = Field(description="runs of this shape that passed")
    seen: int = Field(description="runs of this shape")
    success_rate: float
    keywords: tuple[str, ...]
    runs: tuple[str, ...]
    template: dict[str, JsonValue] = Field(description="the latest passing plan with {goal} for its goal")
    safety: SkillSafety
    induced_at: datetime


def _task_shape(task: Mapping[str, Any]) -> str:
    kinds = sorted({str(c.get("kind")) for c in task.get("accept", []) if isinstance(c, dict)})
    text = json.dumps(task.get("accept", [])) + str(task.get("description", ""))
    exts = sorted(set(_EXT.findall(text)))
    return f"{task.get('role', '?')}[{','.join(kinds)}]" + (f"({','.join(exts)})" if exts else "")


def skill_of(plan: Mapping[str, Any]) -> SkillShape | None:
    tasks = [t for t in plan.get("tasks", []) if isinstance(t, dict)]
    if not tasks:
        return None
    name = " -> ".join(_task_shape(t) for t in tasks)
    return SkillShape(id="skill-" + hashlib.sha256(name.encode()).hexdigest()[:10], name=name)


def _template(plan: Mapping[str, Any], goal: str) -> dict[str, JsonValue]:
    text = json.dumps(plan, ensure_ascii=False)
    if goal:
        text = text.replace(json.dumps(goal, ensure_ascii=False)[1:-1], "{goal}")
    template: dict[str, JsonValue] = json.loads(text)
    template["goal"] = "{goal}"
    return template


def induce_skills(runs: Iterable[MemoryHit], *, roles: Mapping[str, Iterable[str]], min_support: int = 2,
                  denials: Mapping[str, int] | None = None, consents: Mapping[str, int] | None = None,
                  now: datetime) -> list[Skill]:
    """Skills from run episodes (``kind == "run"``, plan attached), most supported first."""
    by_shape: dict[str, list[tuple[MemoryHit, dict[str, Any], str]]] = {}
    names: dict[str, str] = {}
    for hit in runs:
        if hit.kind != "run" or not hit.plan:
            continue
        try:
            plan = json.loads(hit.plan)
        except json.JSONDecodeError:
            continue
        shape = skill_of(plan) if isinstance(plan, dict) else None
        if shape is None:
            continue
        names[shape.id] = shape.name
        by_shape.setdefault(shape.id, []).append((hit, plan, str(plan.get("goal", ""))))
    skills: list[Skill] = []
    for sid, members in by_shape.items():
        passed = sorted((m for m in members if m[0].outcome == "passed"), key=lambda m: m[0].valid_at)
        if len(passed) < min_support:
            continue
        _, plan, goal = passed[-1]
        words = Counter(w for _, _, g in passed for w in set(_WORD.findall(g.lower())) if w not in _STOP)
        plan_roles = tuple(dict.fromkeys(str(t.get("role")) for t in plan.get("tasks", [])))
        tools = sorted({t for r in plan_roles for t in roles.get(r, ())})
        shell = sum(1 for t in plan.get("tasks", []) for c in t.get("accept", [])
                    if isinstance(c, dict) and c.get("kind") == "command")
        run_ids = tuple(m[0].run_id for m in passed)
        skills.append(Skill(
            id=sid, name=names[sid], support=len(passed), seen=len(members),
            success_rate=round(len(passed) / len(members), 3),
            keywords=tuple(w for w, n in words.most_common(8) if n >= 2 or len(passed) == 1), runs=run_ids,
            template=_template(plan, goal),
            safety=SkillSafety(roles=plan_roles, tools=tuple(tools), shell_checks=shell,
                               denials_seen=sum((denials or {}).get(r, 0) for r in run_ids),
                               consents_seen=sum((consents or {}).get(r, 0) for r in run_ids)),
            induced_at=now))
    return sorted(skills, key=lambda s: (-s.support, -s.success_rate, s.id))


class SkillBook:
    """The induced skills of a home (``memory/skills.json``), rewritten whole (tmp + rename) after each induction."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Skill]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return []
        return [Skill.model_validate(s) for s in raw] if isinstance(raw, list) else []

    def save(self, skills: list[Skill]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([s.model_dump(mode="json") for s in skills], indent=2, ensure_ascii=False),
                       encoding="utf-8")
        tmp.replace(self.path)

    def get(self, skill_id: str) -> Skill | None:
        return next((s for s in self.load() if s.id == skill_id or s.id.startswith(skill_id)), None)
