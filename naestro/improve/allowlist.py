"""The allowlist of self-PRs, enforced BEFORE anything is written: facts computed here, the decision by Rego
(``policies/rego/improve.rego``, package ``naestro.improve``) on the same engine seam as the gate, so an OPA
server decides it too when ``NAESTRO_POLICY_URL`` is set, and a missing or broken rule denies (fail closed).
"""

from __future__ import annotations

import posixpath

from pydantic import JsonValue

from naestro.improve.proposal import Proposal, changed_role_fields
from policies.decision import Decision
from policies.engines import PolicyEngine

__all__ = ["IMPROVE_DECISION", "change_facts", "check_proposal", "normalised_path"]

IMPROVE_DECISION = "data.naestro.improve.decision"


def normalised_path(path: str) -> tuple[str, str]:
    """(the path as the policy compares it, why it cannot be used or "")."""
    if "\0" in path or "\\" in path:
        return path.replace("\0", "\\0"), "a NUL byte or backslash in the path"
    if path.startswith("/"):
        return path, "an absolute path"
    norm = posixpath.normpath(path)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        return norm, "leaves the repository"
    return norm, ""


def change_facts(proposal: Proposal, base: dict[str, str]) -> list[dict[str, JsonValue]]:
    """What each change does, as the policy's input: normalised path, add/modify/delete, roles fields, size."""
    facts: list[dict[str, JsonValue]] = []
    for c in proposal.changes:
        path, problem = normalised_path(c.path)
        old = base.get(path)
        action = "delete" if c.text is None else "add" if old is None else "modify"
        fields: list[JsonValue] = [*changed_role_fields(old, c.text)] if path == "roles.yaml" else []
        facts.append({"path": path, "action": action, "problem": problem, "fields": fields,
                      "size": len((c.text or "").encode())})
    return facts


def check_proposal(proposal: Proposal, base: dict[str, str], engine: PolicyEngine) -> Decision:
    """Allow or deny (never ask): the whole proposal or nothing of it."""
    document: dict[str, JsonValue] = {"proposal": {"id": proposal.id, "kind": proposal.kind},
                                      "changes": [*change_facts(proposal, base)]}
    try:
        value = engine.evaluate(IMPROVE_DECISION, document)
    except Exception as exc:  # noqa: BLE001 - any engine failure denies, and says which
        return Decision.fail_closed(f"{engine.name}: {str(exc).split('Stack backtrace:')[0].strip()[:300]}")
    if value is None or value == "<undefined>":
        return Decision.fail_closed(f"{engine.name}: {IMPROVE_DECISION} is undefined (no improve.rego in the "
                                    "policy folder?)")
    try:
        return Decision.model_validate(value)
    except ValueError as exc:
        return Decision.fail_closed(f"{engine.name}: the improve decision has the wrong shape: {exc}")
