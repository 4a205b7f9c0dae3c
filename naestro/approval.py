"""Turning a human's answer into consent answers for a waiting run: one rule set for every front end.

``naestro approve`` and the Studio's consent banner both call ``choose_answers``, so a request id that is not
pending, edited arguments for several requests at once, or a "remember" on a denial are refused the same way
wherever the answer comes from. The caller then resumes the run as the CLI does: ``Runner.resume`` for a run of
this machine's checkpointer, ``ServedRun.resume`` for a run a LangGraph server executes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import JsonValue

from naestro.errors import UsageError

if TYPE_CHECKING:
    from naestro.runner import PendingConsent
    from policies.gate import ConsentAnswer

__all__ = ["choose_answers"]


def choose_answers(run_id: str, pending: list[PendingConsent], *, consent_id: str | None, approve: bool,
                   arguments: JsonValue = None, remember: bool = False, by: str,
                   purpose: str = "") -> dict[str, ConsentAnswer]:
    """Interrupt id → answer for ``consent_id`` (default: every pending request).

    Edited ``arguments`` need exactly one request and a JSON object: the gate decides them again, and applying
    one set of arguments to different actions would approve something nobody looked at.
    """
    from policies.gate import ConsentAnswer  # the gate pulls in the runtime; `naestro --help` must not

    chosen = [p for p in pending if consent_id is None or p.id == consent_id]
    if not chosen:
        known = ", ".join(p.id for p in pending) or "none"
        raise UsageError(f"run {run_id} has no pending consent {consent_id or ''} (pending: {known})")
    if arguments is not None and (len(chosen) != 1 or not isinstance(arguments, dict)):
        raise UsageError("edited arguments need exactly one consent id and a JSON object")
    edited = arguments if isinstance(arguments, dict) else None
    return {p.id: ConsentAnswer(approve=approve, arguments=edited, remember=remember and approve, by=by,
                                purpose=purpose) for p in chosen}
