"""``naestro memory`` and ``naestro skills``: what memory holds across runs (issue 19), searched, shown, forgotten.

Reads go through the policy gate like a run's recalls do, as role ``operator`` by default (``--role`` reads as
an agent would; a slice the role may not read exits 3), audited to ``NAESTRO_HOME/memory/audit.jsonl``.
Exit codes: 0 done, 2 bad input, 3 denied by policy or memory unavailable.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, PolicyDenied, UsageError

if TYPE_CHECKING:
    from naestro.memory import Memory
    from naestro.memory.falkor import FalkorServer
    from policies.gate import Gate

app = typer.Typer(no_args_is_help=True,
                  help="Memory across runs: search, timeline, forget, ingest, status, start, stop.")
skills_app = typer.Typer(no_args_is_help=True, help="Skills induced from plans that passed again and again.")
out = Console(emoji=False)  # "[REDACTED:secret:...]" must not become an emoji
err = Console(stderr=True, soft_wrap=True, emoji=False)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, help="at most this many episodes")]


def _run(work: Callable[[Memory, Gate], Awaitable[T]]) -> T:
    import asyncio  # not for --help (tests/unit/test_cli_imports.py)

    from naestro.memory.operator import open_operator_memory

    settings = load_settings()
    try:
        memory, gate = open_operator_memory(settings)
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2 if isinstance(exc, UsageError) else 3) from exc

    async def main() -> T:
        try:
            return await work(memory, gate)
        finally:
            await memory.close()
    try:
        return asyncio.run(main())
    except PolicyDenied as exc:
        err.print(f"denied: {exc}", markup=False, highlight=False)
        raise typer.Exit(3) from exc
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2 if isinstance(exc, UsageError) else 3) from exc


def _table(rows: list[dict[str, str]], columns: tuple[str, ...]) -> None:
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(row.get(c, "") for c in columns))
    out.print(table)


@app.command()
def search(query: Annotated[str, typer.Argument(help="e.g. 'why did write_fib fail'")],
           role: Annotated[str, typer.Option(help="read as this role (the policy decides its slices)")] = "operator",
           slice_: Annotated[list[str] | None, typer.Option("--slice", help="only these slices (repeatable)")] = None,
           limit: LimitOpt = 10, as_json: JsonOpt = False) -> None:
    """Hybrid search (BM25 + MiniLM, fused) over remembered facts, through the policy gate."""
    from naestro.memory import SLICES, readable_slices

    unknown = [s for s in slice_ or [] if s not in SLICES]
    if unknown:
        err.print(f"error: unknown slice(s) {unknown}; slices: {', '.join(SLICES)}")
        raise typer.Exit(2)

    async def work(memory: Memory, gate: Gate) -> None:
        wanted = [s for s in SLICES if s in slice_] if slice_ else readable_slices(memory.readable, role) or [*SLICES]
        hits = await memory.recall(query, gate=gate, role=role, task="cli", slices=wanted, limit=limit)
        if as_json:
            print(json.dumps([h.model_dump(mode="json", exclude={"plan"}) for h in hits], indent=2))
            return
        if not hits:
            out.print("no matching memory")
            return
        _table([{"when": h.valid_at.strftime("%Y-%m-%d %H:%M"), "run": h.run_id, "kind": h.kind,
                 "outcome": h.outcome, "fact": h.text} for h in hits], ("when", "run", "kind", "outcome", "fact"))
    _run(work)


@app.command()
def timeline(run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
             kind: Annotated[list[str] | None, typer.Option("--kind", help="run|task|verdict|denial|consent")] = None,
             limit: LimitOpt = 50, as_json: JsonOpt = False) -> None:
    """Remembered episodes, newest first (the data of the Studio's memory timeline with --json)."""
    from naestro.memory import timeline_json

    async def work(memory: Memory, gate: Gate) -> None:
        data = await timeline_json(memory, run_id=run, kinds=kind or None, limit=limit)  # type: ignore[arg-type]
        if as_json:
            print(json.dumps(data, indent=2))
            return
        episodes = data["episodes"]
        assert isinstance(episodes, list)
        _table([{k: str(e.get(k, "")) for k in ("valid_at", "run_id", "kind", "slice", "outcome", "text")}
                for e in episodes if isinstance(e, dict)], ("valid_at", "run_id", "kind", "slice", "outcome", "text"))
    _run(work)


@app.command()
def forget(run: Annotated[list[str] | None, typer.Option("--run", help="forget this run (repeatable)")] = None,
           older_than_days: Annotated[float | None, typer.Option(help="forget episodes older than this")] = None,
           ) -> None:
    """Delete remembered episodes of runs, or older than N days (entities no fact mentions go too)."""
    if not run and older_than_days is None:
        err.print("error: say what to forget: --run RUN or --older-than-days N")
        raise typer.Exit(2)
    before = datetime.now(UTC) - timedelta(days=older_than_days) if older_than_days is not None else None

    async def work(memory: Memory, gate: Gate) -> int:
        return await memory.forget(run_ids=run or None, before=None if run else before)
    out.print(f"forgot {_run(work)} episode(s)")


@app.command()
def ingest(runs: Annotated[list[str] | None, typer.Argument(help="run ids (default: every finished run)")] = None,
           ) -> None:
    """Write finished runs' episodes into memory (a backfill; runs are written when they end with NAESTRO_MEMORY=1)."""
    settings = load_settings()
    names = runs or (sorted(p.name for p in settings.runs_dir.iterdir() if p.is_dir())
                     if settings.runs_dir.is_dir() else [])

    async def work(memory: Memory, gate: Gate) -> int:
        total = 0
        for name in names:
            total += await memory.record_run(settings.runs_dir / name)
        return total
    out.print(f"wrote {_run(work)} episode(s) from {len(names)} run(s)")


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Where memory lives and how much it holds."""
    async def work(memory: Memory, gate: Gate) -> dict[str, object]:
        from naestro.memory import SLICES

        hits = await memory.timeline(slices=SLICES, limit=100_000)
        return {"enabled_for_runs": load_settings().memory, "url": load_settings().memory_url or "embedded",
                "episodes": len(hits), "runs": len({h.run_id for h in hits}), "skills": len(memory.skills.load()),
                "server": getattr(memory.store, "describe", dict)()}
    data = _run(work)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        out.print_json(json.dumps(data, default=str))


def _embedded_server() -> FalkorServer:
    from naestro.memory.falkor import FalkorServer

    settings = load_settings()
    if settings.memory_url:
        err.print(f"error: memory is the server at NAESTRO_MEMORY_URL ({settings.memory_url}); Naestro neither "
                  "starts nor stops it", markup=False, highlight=False)
        raise typer.Exit(2)
    return FalkorServer(settings.home / "memory")


@app.command()
def start() -> None:
    """Start the embedded memory server and keep it running without users, until `naestro memory stop`.

    Without this the server runs only while some Naestro process uses it (its keeper stops it after the last one
    ends, even one killed by a signal)."""
    try:
        info = _embedded_server().keep()
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(3) from exc
    out.print(f"memory server on {info.host}:{info.port} (pid {info.pid}); kept until `naestro memory stop`")


@app.command()
def stop() -> None:
    """Stop keeping the embedded memory server: it stops now if no process uses it, else after the last one."""
    server = _embedded_server()
    if server.stop():
        out.print("memory server stopped (data saved)")
    elif server.status()["running"]:
        out.print("memory server no longer kept: it stops when the last process using it ends")
    else:
        out.print("no memory server was running")


@skills_app.command("list")
def list_skills(as_json: JsonOpt = False) -> None:
    """Skills induced so far: shape, support, success rate, keywords."""
    from naestro.memory.skills import SkillBook

    skills = SkillBook(load_settings().home / "memory" / "skills.json").load()
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in skills], indent=2))
        return
    if not skills:
        out.print("no skills yet: a plan shape becomes a skill after it passed in 2 runs (NAESTRO_MEMORY=1)")
        return
    _table([{"id": s.id, "support": f"{s.support}/{s.seen}", "shape": s.name, "keywords": ", ".join(s.keywords)}
            for s in skills], ("id", "support", "shape", "keywords"))


@skills_app.command("show")
def show_skill(skill_id: Annotated[str, typer.Argument(help="a skill id (or its prefix)")],
               as_json: JsonOpt = False) -> None:
    """One skill: its plan template and safety metadata."""
    from naestro.memory.skills import SkillBook

    skill = SkillBook(load_settings().home / "memory" / "skills.json").get(skill_id)
    if skill is None:
        err.print(f"error: no skill {skill_id!r} (see `naestro skills list`)")
        raise typer.Exit(2)
    data = skill.model_dump(mode="json")
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        out.print_json(json.dumps(data))
