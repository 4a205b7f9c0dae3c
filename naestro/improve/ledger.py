"""The loop's ledger: HOME/improve/ledger.jsonl, one line per state a proposal reached, with its reasons and
measurements. ``naestro improve status`` shows each proposal's latest line.

* ``canary``       validated and on live canary (``naestro.improve.live_canary``): not an end state
* ``refused``      the allowlist policy said no; nothing was written (no branch)
* ``rejected``     validation failed (static checks, a metric regressed beyond tolerance, or no gain)
* ``rolled_back``  the canary breached an SLO (or had too few samples): withdrawn automatically, ``main`` untouched;
                   or a merged release taken back by ``naestro improve rollback``
* ``merged``       on ``main``, version bumped, changelog written, released signed and made active
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from naestro.improve.canary import CanaryReport
from naestro.improve.validate import Validation

__all__ = ["ProposalRecord", "ProposalState", "append", "improve_dir", "ledger"]

ProposalState = Literal["canary", "refused", "rejected", "rolled_back", "merged"]


def improve_dir(home: Path) -> Path:
    return home / "improve"


class ProposalRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    kind: str
    title: str
    state: ProposalState
    reasons: list[str] = Field(default_factory=list)
    branch: str | None = None
    version: str | None = None
    validation: Validation | None = None
    canary: CanaryReport | None = None
    seconds: dict[str, float] = Field(default_factory=dict, description="wall time per phase (allowlist, "
                                      "validate, canary, merge)")
    at: str = ""


def ledger(improve: Path) -> list[ProposalRecord]:
    path = improve / "ledger.jsonl"
    if not path.exists():
        return []
    return [ProposalRecord.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def append(improve: Path, record: ProposalRecord) -> ProposalRecord:
    """``record`` stamped with the time, appended (one ``write`` of one line: processes appending at once, the
    loop and a live run's canary, do not interleave)."""
    record = record.model_copy(update={"at": datetime.now(UTC).isoformat(timespec="seconds")})
    improve.mkdir(parents=True, exist_ok=True)
    with (improve / "ledger.jsonl").open("a") as fh:
        fh.write(record.model_dump_json() + "\n")
    return record
