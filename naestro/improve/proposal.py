"""Proposals: minimal diffs to the config repository, each with its rationale (a "self-PR" once on a branch).

Proposals come from rules over the Introspector's findings: a ``weak_prompt`` finding (retries failed the same
way, or the agent left the workspace) becomes one sentence appended to the prompt of the role that did the
task, chosen by what failed. Other kinds (wrong_tool, flaky_check, router_mistake, budget) stay in the queue for
a human: their fixes touch tool allowlists, checks or budgets, which the loop may not change. A proposal
can also be written by hand (``naestro improve run --proposal FILE``); it goes through the same allowlist,
validation and canary.
"""

from __future__ import annotations

import difflib
import hashlib
from datetime import UTC, datetime
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from naestro.events import Event
from naestro.introspect import Finding

__all__ = ["Change", "Proposal", "ProposalKind", "changed_role_fields", "patch_of", "prompt_delta_for",
           "role_of_task", "with_sentence"]

ProposalKind = Literal["prompt_delta", "router_prior", "tool_adapter", "new_test"]


class Change(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="a path inside the config repository (posix, relative)")
    text: str | None = Field(description="the file's new text; None deletes it")


class Proposal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = ""
    kind: ProposalKind
    title: str = Field(min_length=1, max_length=200)
    rationale: str = Field(min_length=1)
    changes: tuple[Change, ...]
    finding: Finding | None = None
    target_goal: str | None = Field(default=None, description="the counter-example this proposal must fix")
    created: str = ""

    def identified(self) -> Proposal:
        """With an id derived from its content (the same change proposed twice is one proposal) and a time."""
        body = self.model_dump_json(include={"kind", "changes"}).encode()
        return self.model_copy(update={"id": self.id or "p-" + hashlib.sha256(body).hexdigest()[:10],
                                       "created": self.created or datetime.now(UTC).isoformat(timespec="seconds")})


def patch_of(base: dict[str, str], changes: tuple[Change, ...]) -> str:
    """The unified diff the changes make to ``base`` (path → text): what a reviewer reads."""
    out: list[str] = []
    for c in changes:
        old = base.get(c.path)
        out += difflib.unified_diff((old or "").splitlines(keepends=True), (c.text or "").splitlines(keepends=True),
                                    fromfile="/dev/null" if old is None else f"a/{c.path}",
                                    tofile="/dev/null" if c.text is None else f"b/{c.path}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)


def changed_role_fields(old: str | None, new: str | None) -> list[str]:
    """``role.field`` for every field of roles.yaml that differs (a role added or removed: ``role.*``).

    A fact for the allowlist policy: a prompt delta may change ``*.prompt`` only, never tools or budgets."""
    def parse(text: str | None) -> dict[str, object]:
        try:
            data = yaml.safe_load(text or "") or {}
        except yaml.YAMLError:
            return {"<unparsable>": text}
        return data if isinstance(data, dict) else {"<not a mapping>": data}

    a, b = parse(old), parse(new)
    fields: list[str] = []
    for role in sorted(set(a) | set(b), key=str):
        ra, rb = a.get(role), b.get(role)
        if not isinstance(ra, dict) or not isinstance(rb, dict):
            if ra != rb:
                fields.append(f"{role}.*")
            continue
        fields += [f"{role}.{f}" for f in sorted(set(ra) | set(rb), key=str) if ra.get(f) != rb.get(f)]
    return fields


# What to tell a role when its retries failed the same way, by the kind of check that kept failing. Each is one
# sentence, appended once: a delta a reviewer can read in the diff and a rollback can take back.
_DELTAS = {
    "code": "When the task has tests or an acceptance command, run exactly that command with exec.run before you "
            "finish, read its whole output, and change the code until it passes: never finish on a failing run.",
    "text": "Before you finish, read every file you wrote back with fs.read and compare it with the task's "
            "acceptance checks character by character (exact text, case and format); fix any difference.",
    "paths": "All paths are relative to the workspace: never use absolute paths or '..'.",
    "other": "When a previous attempt FAILED, do not repeat it: name the cause from the evidence in your first "
             "thought and change that part before anything else.",
}


def _delta_key(finding: Finding) -> str:
    if "failed the same way" not in finding.evidence:
        return "paths"
    failing = finding.evidence.split(": ", 1)[-1].lower()
    if failing.startswith(("evaluator: code", "command", "evaluator: tests")) or "exited" in failing:
        return "code"
    if failing.startswith(("regex", "json_schema", "file_exists", "evaluator: contract")):
        return "text"
    return "other"


def role_of_task(events: list[Event], task: str) -> str | None:
    """The role that did the task's first attempt (a Reviewer pass after it is the fallback, not the doer)."""
    for e in events:
        if e.get("event") == "task_started" and e.get("task") == task and isinstance(e.get("role"), str):
            return str(e["role"])
    return None


def _append_to_folded_prompt(text: str, role: str, sentence: str) -> str | None:
    """One line added at the end of the role's ``prompt: >-`` block: the smallest diff (comments and layout stay)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == f"{role}:"), None)
    if start is None:
        return None
    head = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("prompt:")
                 and lines[i].startswith(" ")), None)
    if head is None or lines[head].split(":", 1)[1].strip() not in (">-", ">"):
        return None
    indent = len(lines[head]) - len(lines[head].lstrip()) + 2
    end = head + 1
    while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) >= indent:
        end += 1
    if end == head + 1:
        return None
    return "".join([*lines[:end], " " * indent + sentence + "\n", *lines[end:]])


def prompt_delta_for(finding: Finding, *, role: str, roles_yaml: str) -> Proposal | None:
    """A weak_prompt finding → one sentence appended to the role's prompt; None when no rule applies or the
    sentence is there already (the same delta twice would be a no-op PR)."""
    if finding.kind != "weak_prompt":
        return None
    data = yaml.safe_load(roles_yaml)
    spec = data.get(role) if isinstance(data, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("prompt"), str):
        return None
    key = _delta_key(finding)
    sentence = _DELTAS[key]
    if sentence in spec["prompt"]:
        return None
    return prompt_delta(roles_yaml, role, sentence, finding, label=key, by=f"rule `{key}`")


def prompt_delta(roles_yaml: str, role: str, sentence: str, finding: Finding, *, label: str, by: str) -> Proposal:
    """The proposal to append ``sentence`` to ``role``'s prompt, whoever wrote it (a rule or a model)."""
    return Proposal(kind="prompt_delta", title=f"{role} prompt: {label} delta for {finding.run}/{finding.task}",
                    rationale=f"Introspector finding {finding.kind} in run {finding.run}, task {finding.task}: "
                              f"{finding.evidence}\nProposed by {by}: append to the {role} prompt: \"{sentence}\"",
                    changes=(Change(path="roles.yaml", text=with_sentence(roles_yaml, role, sentence)),),
                    finding=finding).identified()


def with_sentence(roles_yaml: str, role: str, sentence: str) -> str:
    """roles.yaml with ``sentence`` appended to the role's prompt: one added line when the file has the packaged
    layout (a folded ``prompt: >-`` block), else the file rewritten (comments go, the facts stay)."""
    data = yaml.safe_load(roles_yaml)
    wanted = str(data[role]["prompt"]).rstrip() + " " + sentence
    text = _append_to_folded_prompt(roles_yaml, role, sentence)
    check = yaml.safe_load(text) if text is not None else None
    if text is not None and isinstance(check, dict) and check.get(role, {}).get("prompt") == wanted:
        return text
    data[role]["prompt"] = wanted
    return yaml.safe_dump(data, sort_keys=False, width=110, allow_unicode=True)
