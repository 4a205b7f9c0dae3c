"""``naestro router``: what the bandit has learned (stats), endpoint checks, auto-tune, GPU engine launch."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands._errors import fail as _fail
from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, UsageError

if TYPE_CHECKING:
    from naestro.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Model router: learned win-rates, endpoint checks, auto-tune.")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: expected comma-separated integers") from exc
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{text!r}: expected positive integers")
    return values


def stats_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per (kind, endpoint) of the bandit store: what `router stats` prints and the Studio charts."""
    # The router package loads langchain and openai: only when a command runs, never for `--help` (issue 15).
    from naestro.endpoints import load_registry
    from naestro.improve.active import active_release, with_active_priors
    from naestro.router.bandit import ThompsonBandit, open_store

    # The priors the live router uses (build_runtime): the active self-improved release's, verified, in place of
    # models.yaml's, without counting again the store's outcomes they were learned from (issue 21).
    active = active_release(settings)
    registry = with_active_priors(load_registry(settings.models_file), active)
    released = {(p.kind, p.endpoint) for p in active.priors} if active is not None else set()
    store = open_store(registry.router.store or settings.home / "router.sqlite")
    bandit = ThompsonBandit.from_config(store, registry.router,
                                        counted=active.learned_from if active is not None else None)
    configured = {(p.kind, p.endpoint) for p in registry.router.priors}
    arms = store.load()
    rows = []
    for (kind, endpoint), a in sorted(arms.items()):
        alpha, beta = bandit.posterior(kind, endpoint, arms)
        arm = (kind, endpoint) if (kind, endpoint) in configured else ("*", endpoint)
        source = (f"release {active.version}" if active is not None and arm in released
                  else "models.yaml" if arm in configured else "uniform")
        rows.append({"kind": kind, "endpoint": endpoint, "routed": a.routed,
                     "spill_pct": round(100 * a.spilled / a.routed, 1) if a.routed else None,
                     "outcomes": a.pulls, "win_rate": round(a.successes / a.pulls, 3) if a.pulls else None,
                     "prior": list(bandit.prior(kind, endpoint)), "prior_from": source,
                     "posterior_mean": round(alpha / (alpha + beta), 3),
                     "usd_per_success": round(a.cost_usd / a.successes, 6) if a.successes else None,
                     "latency_s_per_success": round(a.latency_s / a.successes, 2) if a.successes else None})
    return rows


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="machine-readable rows")] = False) -> None:
    """Per (kind, endpoint): calls routed, spill %, outcomes, win-rate, the prior the live router starts from (and
    whether models.yaml or the active self-improved release set it), posterior mean, cost and latency per success."""
    from naestro.endpoints import load_registry

    settings = load_settings()
    try:
        registry = load_registry(settings.models_file)
        rows = stats_rows(settings)
    except NaestroError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no routed calls recorded yet (store: "
                  f"{registry.router.store or settings.home / 'router.sqlite'})")
        return
    table = Table("kind", "endpoint", "routed", "spill %", "outcomes", "win-rate", "prior", "posterior",
                  "$/success", "s/success")
    for r in rows:
        prior = "{:g}/{:g}".format(*r["prior"])
        table.add_row(*("—" if v is None else prior if k == "prior" else str(v) for k, v in r.items()
                        if k != "prior_from"))
    released = sorted({r["prior_from"] for r in rows} - {"models.yaml", "uniform"})
    if released:  # wins/losses pseudo-counts learned by the self-improvement loop (issue 21)
        table.caption = f"prior α/β from the active self-improved {', '.join(released)} where it has one, else " \
                        "models.yaml"
    out.print(table)


@app.command()
def check(endpoint: Annotated[str | None, typer.Argument(help="endpoint name; default: all")] = None) -> None:
    """Ask each endpoint which models it serves; exit 3 if one is unreachable, 2 if a model id is wrong.

    Embedded endpoints that are not running are reported as stopped (they start on demand), not started.
    """
    from naestro.endpoints import load_registry
    from naestro.llm import EndpointProvider
    from naestro.router.tune import check_endpoint

    settings = load_settings()
    try:
        registry = load_registry(settings.models_file)
        targets = [registry.get(endpoint)] if endpoint else list(registry.endpoints)
    except NaestroError as exc:
        raise _fail(exc) from exc
    provider = EndpointProvider(registry, settings)
    failure: NaestroError | None = None
    for e in targets:
        if e.embedded:
            info = provider.server(e).status()
            if info is None:
                out.print(f"{e.name}: stopped (starts on demand)")
                continue
            url = info.base_url
        else:
            assert e.base_url is not None
            url = e.base_url
        try:
            served = check_endpoint(e, url, api_key=os.environ.get(e.api_key_env) if e.api_key_env else None)
            out.print(f"{e.name}: up, serves {', '.join(served)}")
        except NaestroError as exc:
            err.print(f"{e.name}: {exc}", markup=False, highlight=False, soft_wrap=True)
            failure = failure or exc
    if failure is not None:
        raise typer.Exit(2 if isinstance(failure, UsageError) else 3)


@app.command()
def tune(endpoint: Annotated[str, typer.Argument(help="endpoint name from models.yaml")],
         concurrency: Annotated[str, typer.Option(help="comma-separated concurrency levels")] = "1,2",
         prompt_tokens: Annotated[str, typer.Option(help="comma-separated prompt lengths (tokens)")] = "64,512",
         requests: Annotated[int, typer.Option(min=1, help="requests per point")] = 4,
         max_tokens: Annotated[int, typer.Option(min=1, help="reply tokens per request")] = 16,
         write: Annotated[bool, typer.Option(help="write the p95 into the router priors of "
                                                  "NAESTRO_MODELS_FILE")] = True,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Benchmark an OpenAI-compatible endpoint (latency, throughput vs concurrency and prompt length).

    Embedded endpoints are started if needed. The measured single-request p95 becomes the endpoint's
    ``p95_latency_s`` prior (the SLO rule's starting point); the full profile goes to HOME/profiles/.
    """
    import asyncio  # here, like every runtime import: `--help` loads none (issue 16)

    from naestro.endpoints import load_registry
    from naestro.llm import EndpointProvider
    from naestro.router.tune import check_endpoint, profile_endpoint, write_prior

    concurrencies, lengths = _ints(concurrency), _ints(prompt_tokens)  # bad input fails before any request
    settings = load_settings()
    try:
        registry = load_registry(settings.models_file)
        ep = registry.get(endpoint)
        provider = EndpointProvider(registry, settings)
        base_url = provider.base_url(ep)
        key = os.environ.get(ep.api_key_env) if ep.api_key_env else None
        check_endpoint(ep, base_url, api_key=key)
        points = asyncio.run(profile_endpoint(ep, base_url, concurrencies=concurrencies,
                                              prompt_tokens=lengths, requests=requests,
                                              max_tokens=max_tokens, api_key=key))
        written = None
        if write and settings.models_file is not None:
            written = write_prior(settings.models_file, ep.name, points, profile_dir=settings.home / "profiles")
    except NaestroError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps({"endpoint": ep.name, "p95_prior_s": written,
                          "points": [p.__dict__ for p in points]}, indent=2))
        return
    table = Table("concurrency", "prompt tokens", "requests", "errors", "p50 s", "p95 s", "output tok/s")
    for p in points:
        table.add_row(*(str(v) for v in p.__dict__.values()))
    out.print(table)
    if written is not None:
        out.print(f"router prior for {ep.name}: p95_latency_s = {written} (written to {settings.models_file})")
    elif write:
        out.print("not written: the packaged models.yaml is read-only; set NAESTRO_MODELS_FILE to your copy")


@app.command()
def launch(config: Annotated[Path, typer.Argument(help="inference/configs/*.yaml")],
           dry_run: Annotated[bool, typer.Option("--dry-run", help="print the command and the endpoint entry; "
                                                 "start nothing")] = False,
           register: Annotated[bool, typer.Option(help="add the endpoint to NAESTRO_MODELS_FILE once healthy")]
           = True) -> None:
    """Start vLLM or trtllm-serve from a launch config and register it as a router endpoint."""
    import yaml

    from inference.launch import command, endpoint_entry, load_config, trtllm_options
    from inference.launch import launch as launch_engine

    settings = load_settings()
    try:
        cfg = load_config(config)
        if dry_run:
            out.print(" ".join(shlex.quote(a) for a in command(cfg, options_file=Path(f"{cfg.name}.extra.yaml"))),
                      markup=False, highlight=False, soft_wrap=True)
            if cfg.engine == "trtllm":
                print(yaml.safe_dump(trtllm_options(cfg), sort_keys=False))
            entry = endpoint_entry(cfg).model_dump(mode="json", exclude_defaults=True)
            print(yaml.safe_dump({"endpoints": [entry]}, sort_keys=False))
            return
        if register and settings.models_file is None:
            raise UsageError("set NAESTRO_MODELS_FILE to your copy of models.yaml to register the endpoint "
                             "(or pass --no-register)")
        proc = launch_engine(cfg, run_dir=settings.home / "inference",
                             models_file=settings.models_file if register else None)
    except NaestroError as exc:
        raise _fail(exc) from exc
    out.print(f"{cfg.name}: {cfg.engine} pid {proc.pid} healthy at http://{cfg.host}:{cfg.port}/v1"
              + (f", registered in {settings.models_file}" if register else ""))
