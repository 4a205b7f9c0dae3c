"""``naestro improve rollback``: take a merged release back as a new signed release (the history stays)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from naestro.errors import UsageError
from naestro.improve.findings import FindingsQueue
from naestro.improve.ledger import ProposalRecord, append, improve_dir
from naestro.improve.release import Release, bump, publish, releases
from naestro.improve.repo import MAIN, ConfigRepo
from naestro.settings import Settings

__all__ = ["rollback"]


def rollback(settings: Settings, key: Ed25519PrivateKey, *, to: str | None = None) -> Release:
    """Take back the active release: ``main`` gets the tree of ``to`` (default: the release before the active
    one) as a new version, released signed and made active. The proposals merged since are marked rolled back."""
    improve = improve_dir(settings.home)
    history = releases(improve)
    if not history:
        raise UsageError("nothing to roll back: no release yet (see `naestro improve status`)")
    current = history[-1]
    target = next((r for r in history if r.version == to), None) if to is not None else \
        next((r for r in history if r.version == current.previous), None)
    if target is None:
        versions = ", ".join(r.version for r in history)
        raise UsageError(f"no release {to or current.previous!r} to roll back to (releases: {versions})"
                         if to or current.previous else "the active release is the first: nothing before it")
    repo = ConfigRepo.open(improve / "config.git")
    head = repo.rev(MAIN)
    assert head is not None
    now, then = repo.files(head), repo.files(target.commit)
    version = bump(now["VERSION"])
    undone = [r for r in history if _newer(r.version, target.version) and r.proposal]
    entry = (f"## {version}\n\n- rollback of {current.version} to the tree of {target.version} (undoes "
             f"{', '.join(r.proposal or '' for r in undone) or 'nothing merged'})\n")
    head_log, sep, rest = now["CHANGELOG.md"].partition("\n## ")
    changes: dict[str, str | None] = {p: None for p in now if p not in then}
    changes.update({p: t for p, t in then.items() if now.get(p) != t})
    changes["VERSION"] = version + "\n"
    changes["CHANGELOG.md"] = f"{head_log.rstrip()}\n\n{entry}\n" + (f"## {rest}" if sep else "")
    commit = repo.commit(head, changes, f"Rollback to {target.version} ({version})\n\n{entry}")
    repo.update_ref(MAIN, commit, head)
    repo.tag(f"v{version}", commit)
    release = publish(repo, improve, key, proposal=None)
    queue = FindingsQueue(improve / "findings.json")
    for r in undone:
        if r.proposal:
            queue.mark_proposal(r.proposal, "rolled_back", note=f"rolled back with {version}")
        append(improve, ProposalRecord(id=r.proposal or "", kind="rollback", title=f"rolled back with {version}",
                                        state="rolled_back", version=version,
                                        reasons=[f"naestro improve rollback to {target.version}"]))
    return release


def _newer(a: str, b: str) -> bool:
    return tuple(int(x) for x in a.split(".")) > tuple(int(x) for x in b.split("."))
