"""The consent rules `naestro approve` and the Studio's banner share (naestro/approval.py)."""

from __future__ import annotations

import pytest

from naestro.approval import choose_answers
from naestro.errors import UsageError
from naestro.runner import PendingConsent

PENDING = [PendingConsent(id="i1", request={"action": "exec.run"}), PendingConsent(id="i2", request={})]


def test_every_pending_request_is_answered_unless_one_is_named() -> None:
    answers = choose_answers("r", PENDING, consent_id=None, approve=True, remember=True, by="ann")
    assert set(answers) == {"i1", "i2"} and all(a.approve and a.remember and a.by == "ann" for a in answers.values())
    [only] = choose_answers("r", PENDING, consent_id="i2", approve=True, by="ann").values()
    assert only.arguments is None


def test_a_denial_is_never_remembered_and_edits_need_one_request_and_an_object() -> None:
    [denied] = choose_answers("r", PENDING, consent_id="i1", approve=False, remember=True, by="ann").values()
    assert not denied.approve and not denied.remember
    [edited] = choose_answers("r", PENDING, consent_id="i1", approve=True, arguments={"command": "ls"},
                              by="ann").values()
    assert edited.arguments == {"command": "ls"}
    with pytest.raises(UsageError, match="exactly one consent id"):
        choose_answers("r", PENDING, consent_id=None, approve=True, arguments={"command": "ls"}, by="ann")
    with pytest.raises(UsageError, match="JSON object"):
        choose_answers("r", PENDING, consent_id="i1", approve=True, arguments=["ls"], by="ann")
    with pytest.raises(UsageError, match=r"no pending consent i9 \(pending: i1, i2\)"):
        choose_answers("r", PENDING, consent_id="i9", approve=True, by="ann")
    with pytest.raises(UsageError, match=r"pending: none"):
        choose_answers("r", [], consent_id=None, approve=True, by="ann")
