"""The proposal on live canary, as files another process can read: HOME/improve/canary/<id>.json (its candidate
tree and everything a later merge needs) and <id>.pairs.jsonl (one line per shadowed live run). Kept apart from
``naestro.improve.live_canary`` (which runs shadows) so the ledger's status can show it without a runtime.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from naestro.errors import UsageError
from naestro.improve.validate import Outcome, Tolerance, Validation

__all__ = ["ShadowLine", "Standing", "record_shadow", "shadow_lines", "stand", "standing", "withdraw"]


class Standing(BaseModel):
    """A proposal on live canary: everything the merge needs later, in another process."""

    model_config = ConfigDict(extra="forbid")

    proposal: str
    kind: str
    title: str
    branch: str
    commit: str  # the self-PR's commit on ``branch``
    base: str  # main when it was put on canary: a merge onto a main that moved since is refused
    candidate: dict[str, str]  # the tree the shadows run (the branch's files and the learned priors)
    learned: dict[str, str] = Field(default_factory=dict)
    patch: str
    validation: Validation
    fraction: float = Field(gt=0, le=1)
    min_samples: int = Field(ge=1)
    slo: Tolerance
    timeout_s: float | None = None
    since: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class ShadowLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live_run: str
    shadow: Outcome
    at: str


def _folder(improve: Path) -> Path:
    return improve / "canary"


def standing(improve: Path) -> Standing | None:
    """The proposal on live canary, if any."""
    found = sorted(_folder(improve).glob("*.json"))
    return Standing.model_validate_json(found[0].read_text()) if found else None


def stand(improve: Path, canary: Standing) -> None:
    other = standing(improve)
    if other is not None and other.proposal != canary.proposal:
        raise UsageError(f"{other.proposal} is on live canary already; one candidate at a time (`naestro improve "
                         "run` settles it once enough live runs were shadowed)")
    _folder(improve).mkdir(parents=True, exist_ok=True)
    path = _folder(improve) / f"{canary.proposal}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(canary.model_dump_json(indent=1))
    tmp.replace(path)  # atomic: a live run reading it sees the whole candidate or none


def withdraw(improve: Path, proposal: str) -> bool:
    """Take the proposal off canary (its pairs stay, for the record). False when another process did it first."""
    try:
        (_folder(improve) / f"{proposal}.json").unlink()
    except FileNotFoundError:
        return False
    return True


def shadow_lines(improve: Path, proposal: str) -> list[ShadowLine]:
    path = _folder(improve) / f"{proposal}.pairs.jsonl"
    if not path.exists():
        return []
    return [ShadowLine.model_validate_json(ln) for ln in path.read_text().splitlines() if ln.strip()]




def record_shadow(improve: Path, proposal: str, line: ShadowLine) -> None:
    """Appended in one ``write`` (live runs in several processes may shadow at once)."""
    with (_folder(improve) / f"{proposal}.pairs.jsonl").open("a") as fh:
        fh.write(line.model_dump_json() + "\n")
