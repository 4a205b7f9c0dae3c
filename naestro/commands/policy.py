"""``naestro policy``: check one action exactly as the gate would, explain it, run the Rego tests, serve OPA's API.

``check`` builds the same input the gate builds (paths resolved against ``--workspace``, URLs classified,
the live tool registry from Naestro's MCP servers, the kill switches) and asks the configured engine.
Exit codes: 0 allow, 3 deny, 4 ask, 2 bad input (e.g. a policy file that does not load).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, PolicyError
from policies.switches import KillSwitches

if TYPE_CHECKING:
    from naestro.settings import Settings
    from policies.decision import Mode, PolicyInput
    from policies.engines import PolicyBundle

app = typer.Typer(no_args_is_help=True, help="Rego policies: check, explain, test, serve.")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width

EXIT = {"allow": 0, "deny": 3, "ask": 4}


def _bundle(settings: Settings) -> PolicyBundle:
    # The engines load regorus, the roles the node package: only when a command runs, never for `--help` (issue 15).
    from nodes.roles import load_roles
    from policies.engines import REGO_DIR, load_bundle

    roles = {r.value: list(spec.tools) for r, spec in load_roles().items()}
    try:
        return load_bundle(settings.policy_dir or REGO_DIR, roles=roles)
    except PolicyError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc


async def _registered(workspace: Path) -> set[str]:
    from naestro.toolbus import McpToolBus, builtin_servers

    async with McpToolBus(builtin_servers(workspace)) as bus:
        return {s.name for s in bus.specs()}


def _evaluate(*, role: str, mode: Mode, tool: str, args: str, workspace: Path | None, allow_domain: list[str],
              approve: list[str], explain: bool) -> None:
    import asyncio  # here, like every runtime import: `--help` loads none (issue 16)
    import tempfile

    from policies.decision import ApprovedScope, RunPolicy
    from policies.engines import EXPLAIN, configured_engine
    from policies.gate import Gate

    settings = load_settings()
    from naestro.plan import Role  # the plan contract loads when a command runs, not for --help

    if role not in {r.value for r in Role}:
        err.print(f"error: unknown role {role!r} (known: {', '.join(r.value for r in Role)})")
        raise typer.Exit(2)
    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        err.print(f"error: --args is not JSON: {exc.msg} at column {exc.colno}")
        raise typer.Exit(2) from exc
    if not isinstance(arguments, dict):
        err.print("error: --args must be a JSON object, e.g. '{\"path\": \"a.txt\"}'")
        raise typer.Exit(2)
    bundle = _bundle(settings)
    try:
        engine = configured_engine(bundle, settings.policy_url)
        with tempfile.TemporaryDirectory() as scratch:
            ws = (workspace or Path(scratch)).resolve()
            known = asyncio.run(_registered(ws))
            policy = RunPolicy(mode=mode, allow_domains=allow_domain,
                               approve=[ApprovedScope.parse(a) for a in approve])
            gate = Gate(engine, run_id="policy-check", workspace=ws, policy=policy, audit=None,
                        switches=KillSwitches(settings.control_db), registered=lambda: known,
                        rate_limits=bundle.data.get("naestro", {}).get("rate_limits", {}))
            inp: PolicyInput = gate.tool_input(task="check", role=role, tool=tool, arguments=arguments)
            decision = gate.decide(inp)
            payload = {"verdict": decision.verdict, **decision.model_dump(mode="json"), "engine": engine.name}
            if explain:
                payload["fired"] = engine.evaluate(EXPLAIN, inp.document())
                payload["input"] = inp.document()
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    print(json.dumps(payload, indent=2))
    raise typer.Exit(EXIT[decision.verdict])


RoleOpt = Annotated[str, typer.Option("--role", help="the acting role, e.g. coder")]
ModeOpt = Annotated[str, typer.Option("--mode", help="guide | copilot | auto")]
ToolOpt = Annotated[str, typer.Option("--tool", help="server.tool, e.g. fs.read")]
ArgsOpt = Annotated[str, typer.Option("--args", help="tool arguments as a JSON object")]
WsOpt = Annotated[Path | None, typer.Option("--workspace", help="resolve paths against this folder")]
DomOpt = Annotated[list[str] | None, typer.Option("--allow-domain", help="allowlisted domain (repeatable)")]
ApproveOpt = Annotated[list[str] | None, typer.Option("--approve", help="pre-approved scope TOOL[:FOLDER]")]


def _mode(mode: str) -> Mode:
    if mode not in ("guide", "copilot", "auto"):
        err.print(f"error: --mode {mode!r} is not one of guide, copilot, auto")
        raise typer.Exit(2)
    return mode  # type: ignore[return-value]


@app.command()
def check(role: RoleOpt, tool: ToolOpt, mode: ModeOpt = "copilot", args: ArgsOpt = "{}", workspace: WsOpt = None,
          allow_domain: DomOpt = None, approve: ApproveOpt = None) -> None:
    """Decide one action as the gate would; print the decision JSON. Exit 0 allow, 3 deny, 4 ask."""
    _evaluate(role=role, mode=_mode(mode), tool=tool, args=args, workspace=workspace,
              allow_domain=allow_domain or [], approve=approve or [], explain=False)


@app.command()
def explain(role: RoleOpt, tool: ToolOpt, mode: ModeOpt = "copilot", args: ArgsOpt = "{}", workspace: WsOpt = None,
            allow_domain: DomOpt = None, approve: ApproveOpt = None) -> None:
    """Like check, plus the rules that fired and the exact input the policy saw."""
    _evaluate(role=role, mode=_mode(mode), tool=tool, args=args, workspace=workspace,
              allow_domain=allow_domain or [], approve=approve or [], explain=True)


@app.command("test")
def test_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Run the Rego unit tests (*_test.rego) on every available engine (regorus; OPA Go if installed)."""
    from policies.regotest import run_rego_tests

    results = run_rego_tests(_bundle(load_settings()))
    failed = [r for r in results if not r.passed]
    if as_json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        for r in results:
            mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            out.print(f"{mark} {r.engine:8s} {r.file}::{r.name}" + (f"  ({r.error})" if r.error else ""))
        engines = sorted({r.engine for r in results})
        out.print(f"{len(results) - len(failed)}/{len(results)} passed on {', '.join(engines)}")
    if not results:
        err.print("no Rego tests found (files *_test.rego with test_* rules)")
        raise typer.Exit(1)
    raise typer.Exit(1 if failed else 0)


@app.command()
def serve(port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")] = 8181,
          load: Annotated[bool, typer.Option(help="load Naestro's policies and data at start")] = True) -> None:
    """Serve OPA's REST API (reference OPA Go engine) for NAESTRO_POLICY_URL=http://127.0.0.1:PORT."""
    import asyncio

    from policies.engines import OpaRestEngine
    from policies.opa_server import OpaApiServer

    server = OpaApiServer(port=port).start()
    if load:
        OpaRestEngine(server.url, _bundle(load_settings()))
    out.print(f"OPA REST API on {server.url} (policies {'loaded' if load else 'empty'}); Ctrl-C stops")
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        server.stop()
