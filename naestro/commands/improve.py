"""``naestro improve run | status | rollback | verify``: the guarded self-improvement loop (issue 21).

``run`` collects the Introspector's findings from the newest runs, turns those a rule answers into self-PRs on
the config repository (HOME/improve/config.git), refuses what leaves the allowlist, validates the rest on the
golden counter-examples against the current config (and, when the role prompts stay, by replaying recorded runs
offline), shadows them on live runs and merges what holds as a signed release whose prompts and router priors the
next runs use. ``--proposal FILE`` sends a hand-written proposal (JSON: kind, title, rationale,
changes [{path, text}]) through the same guards. Exit codes: 0 done (whatever the proposals' outcomes), 2 bad
input, 3 the world failed (an endpoint down, git missing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands._errors import fail as _fail
from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, UsageError

if TYPE_CHECKING:
    from naestro.improve.ledger import ProposalRecord

app = typer.Typer(no_args_is_help=True, help="Self-improvement: propose, validate, canary and merge config changes.")
out = Console()
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _records_table(records: list[ProposalRecord]) -> Table:
    table = Table("proposal", "kind", "state", "version", "why", title="proposals")
    for r in records:
        table.add_row(r.id, r.kind, r.state, r.version or "", "; ".join(r.reasons)[:300] or r.title)
    return table


@app.command()
def run(proposal: Annotated[Path | None, typer.Option(help="a hand-written proposal (JSON) instead of the rules")]
        = None,
        last: Annotated[int, typer.Option(min=1, help="findings from, and shadow traffic of, the newest N runs")] = 20,
        k: Annotated[int, typer.Option(min=1, help="attempts per golden goal and config in validation")] = 1,
        fraction: Annotated[float, typer.Option(min=0.01, max=1.0, help="share of live runs shadowed")] = 0.5,
        min_samples: Annotated[int, typer.Option(min=0, help="shadowed runs needed to merge")] = 1,
        replays: Annotated[int, typer.Option(min=0, help="recorded runs replayed offline (recorded model replies) "
                                             "under a candidate that keeps the role prompts")] = 3,
        model_proposals: Annotated[bool, typer.Option(help="ask a model (through the router) for a prompt "
                                                      "sentence when no rule applies")] = False,
        live_canary: Annotated[bool, typer.Option(help="put a validated proposal on live canary: the runs started "
                                                  "from now on are shadowed (--fraction of them); a later `improve "
                                                  "run` merges it after --min-samples without a breach")] = False,
        as_json: JsonOpt = False) -> None:
    """Collect → propose → validate → canary → merge (signed) → learn; each proposal ends merged, refused,
    rejected or rolled back, with its reasons."""
    import asyncio  # the runtime loads when a command runs, never for `--help` (issue 15)

    from naestro.improve.loop import ImproveLoop, LoopOptions
    from naestro.improve.proposal import Proposal
    from naestro.runtime import build_runtime

    try:
        settings = load_settings()
        given = Proposal.model_validate_json(proposal.read_text()) if proposal is not None else None
        runtime = build_runtime(settings)
    except (OSError, ValueError) as exc:
        raise _fail(UsageError(f"--proposal {proposal}: {str(exc).splitlines()[0]}")) from exc
    except NaestroError as exc:
        raise _fail(exc) from exc
    store = runtime.router.store if runtime.router is not None else None
    loop = ImproveLoop(settings=settings, provider=runtime.provider, engine=runtime.engine, key=runtime.signing_key,
                       options=LoopOptions(last=last, k=k, fraction=fraction, min_samples=min_samples,
                                           model_proposals=model_proposals, replays=replays,
                                           live_canary=live_canary),
                       arms=store.load if store is not None else None, router=runtime.router,
                       say=(lambda _m: None) if as_json else (lambda m: err.print(m, markup=False, highlight=False)))

    async def go() -> list[ProposalRecord]:
        try:
            return [await loop.process(given)] if given is not None else await loop.run()
        finally:
            await runtime.aclose()

    try:
        records = asyncio.run(go())
    except NaestroError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps([r.model_dump(mode="json", exclude={"validation": {"outcomes"}}) for r in records],
                         indent=1))
        return
    out.print(_records_table(records) if records else "no proposals (see `naestro improve status` for findings "
                                                      "no rule answers)")


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """The active release, every proposal's latest state, and the findings queue."""
    from naestro.improve.status import status as loop_status

    info = loop_status(load_settings())
    if as_json:
        print(info.model_dump_json(indent=1))
        return
    out.print(f"active release: {info.active or 'none (packaged prompts)'}; releases: "
              f"{', '.join(info.releases) or 'none'}")
    out.print(_records_table(info.proposals))
    out.print(f"findings: {info.findings or 'none collected'}")
    if info.canary is not None:
        c, r = info.canary, info.canary.report
        out.print(f"on live canary: {c.proposal} ({c.title}) since {c.since}, {c.fraction:.0%} of new runs shadowed; "
                  f"{len(r.pairs)} of {c.min_samples} needed paired ({r.considered} shadowed)"
                  + (f"; breaches: {'; '.join(r.breaches)}" if r.breaches else ""), markup=False, highlight=False)
    for i in info.open:
        out.print(f"open: {i.finding.kind} in {i.finding.run}/{i.finding.task} ({i.role}): {i.finding.evidence}",
                  markup=False, highlight=False)


@app.command()
def rollback(to: Annotated[str | None, typer.Option("--to", help="a release version (default: the one before "
                                                                 "the active release)")] = None,
             as_json: JsonOpt = False) -> None:
    """Make an earlier release's config active again, as a new signed release (the history stays)."""
    from naestro.improve.rollback import rollback as loop_rollback
    from policies.audit import load_signing_key

    settings = load_settings()
    try:
        release = loop_rollback(settings, load_signing_key(settings.keys_dir), to=to)
    except NaestroError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps({"version": release.version, "commit": release.commit, "previous": release.previous}))
    else:
        out.print(f"rolled back: release {release.version} (commit {release.commit[:12]}) is active")


@app.command()
def verify(version: Annotated[str | None, typer.Argument(help="default: every release")] = None) -> None:
    """Check releases' Sigstore bundles against this home's key and the config repository's files."""
    import hashlib

    from naestro.improve.release import releases
    from naestro.improve.release import verify as verify_bundle
    from naestro.improve.repo import ConfigRepo
    from policies.audit import load_signing_key

    settings = load_settings()
    improve = settings.home / "improve"
    public = load_signing_key(settings.keys_dir).public_key()
    chosen = [r for r in releases(improve) if version in (None, r.version)]
    if not chosen:
        raise _fail(UsageError(f"no release {version!r} under {improve}" if version
                               else f"no releases under {improve}"))
    repo = ConfigRepo.open(improve / "config.git")
    bad = 0
    for r in chosen:
        folder = improve / "releases"
        try:
            verify_bundle((folder / f"{r.version}.json").read_bytes(),
                          json.loads((folder / f"{r.version}.sigstore.json").read_text()), public,
                          where=str(folder / f"{r.version}.json"))
            tree = repo.files(r.commit)
            if {p: hashlib.sha256(t.encode()).hexdigest() for p, t in tree.items()} != r.files:
                raise UsageError(f"release {r.version}: the repository's files at {r.commit[:12]} differ from the "
                                 "signed manifest")
            out.print(f"{r.version}: signature OK, files match commit {r.commit[:12]}")
        except (NaestroError, OSError, ValueError) as exc:
            bad += 1
            err.print(f"{r.version}: {exc}", markup=False, highlight=False)
    if bad:
        raise typer.Exit(3)
