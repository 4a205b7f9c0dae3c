"""The composition root: every long-lived part of a Naestro process, built once from ``Settings``.

The CLI, the graph ``langgraph.json`` serves, the MCP front door, the time-travel commands and the benches
all get their provider, router, policy engine, kill switches, signing key, roles, external tools and
telemetry here, so that no entry point runs with a different set (before this, three of five ran without the
router). A broken models file or policy folder fails here, before any run directory exists.

The runtime also owns the pool of builtin MCP server processes every run of the process shares
(naestro/mcppool.py): started on the first run, ended by ``aclose`` (or when the runtime is collected).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from naestro.endpoints import load_registry
from naestro.improve.active import active_release, with_active_priors, with_active_prompts
from naestro.llm import EndpointProvider, ModelProvider
from naestro.mcppool import McpServerPool
from naestro.plan import Role
from naestro.router import Router, build_router
from naestro.runs import RunStore
from naestro.settings import Settings
from naestro.telemetry import Telemetry, TelemetrySettings
from naestro.tooladapter import ToolAdapter
from naestro.tools import ToolsConfig, load_tools_config, with_external_roles
from nodes.roles import RoleSpec, load_roles
from policies.audit import load_signing_key
from policies.engines import REGO_DIR, PolicyBundle, PolicyEngine, configured_engine, load_bundle
from policies.switches import KillSwitches

if TYPE_CHECKING:
    from naestro.memory.fabric import Memory

__all__ = ["Runtime", "build_runtime"]


@dataclass(frozen=True)
class Runtime:
    """Shared by every run of the process: endpoint health, bandit posteriors and policy data outlive a run."""

    settings: Settings
    provider: ModelProvider
    router: Router | None  # None: agents call the requested endpoint directly (no spill, no re-route)
    telemetry: Telemetry
    roles: dict[Role, RoleSpec]
    tools_config: ToolsConfig
    policy_bundle: PolicyBundle
    engine: PolicyEngine
    switches: KillSwitches
    signing_key: Ed25519PrivateKey
    store: RunStore
    mcp_pool: McpServerPool  # builtin MCP servers shared by the runs (each run has its own sessions)
    memory: Memory | None = None  # issue 19: None unless NAESTRO_MEMORY is on; its server starts on first use
    # issue 21: the active release's tool adapters (prompt hints, call timeouts), by tool name or ``server.*``
    tool_adapters: Mapping[str, ToolAdapter] = field(default_factory=dict)

    async def aclose(self) -> None:
        """End what the runtime started: the pooled MCP server processes (they start again if a run follows)."""
        await self.mcp_pool.aclose()
        if self.memory is not None:
            await self.memory.close()


def build_runtime(settings: Settings, *, provider: ModelProvider | None = None, router: Router | None = None,
                  telemetry: Telemetry | None = None) -> Runtime:
    """Build every part once. Without ``provider``: the endpoints of ``models.yaml`` behind the router.

    A given provider (tests' scripted model, a bench's) runs with the given router, or none.
    The active self-improved release (issue 21) is read once here, verified against its signature: its prompts
    go to the roles, its router priors to the registry the router is built from (none: the packaged prompts and
    models.yaml's priors). A given router is used as it was built.
    """
    signing_key = load_signing_key(settings.keys_dir)
    active = active_release(settings, signing_key.public_key())
    if provider is None:
        endpoints = EndpointProvider(with_active_priors(load_registry(settings.models_file), active), settings)
        provider, router = endpoints, router or build_router(
            endpoints.registry, home=settings.home, counted=active.learned_from if active is not None else None)
    # External MCP servers from NAESTRO_HOME/tools.yaml; roles it grants them to get `server.*` in their allowlist.
    tools_config = load_tools_config(settings.home / "tools.yaml")
    roles = with_active_prompts(with_external_roles(load_roles(), tools_config), active)
    # Loaded before any run starts: a broken policy file refuses the run with file:line (PolicyError).
    bundle = load_bundle(settings.policy_dir or REGO_DIR, roles={r.value: list(s.tools) for r, s in roles.items()})
    return Runtime(
        settings=settings, provider=provider, router=router,
        # spans.jsonl per run; OTLP when OTEL_EXPORTER_OTLP_* is set or `naestro observe up` runs for this home
        telemetry=telemetry or Telemetry(TelemetrySettings(naestro_home=settings.home)),
        roles=roles, tools_config=tools_config, policy_bundle=bundle,
        engine=configured_engine(bundle, settings.policy_url), switches=KillSwitches(settings.control_db),
        signing_key=signing_key, store=RunStore(settings.runs_dir),
        mcp_pool=McpServerPool(home=settings.home), memory=_memory(settings, bundle, roles),
        tool_adapters=active.tool_adapters if active is not None else {})


def _memory(settings: Settings, bundle: PolicyBundle, roles: dict[Role, RoleSpec]) -> Memory | None:
    if not settings.memory:
        return None
    from naestro.memory.fabric import Memory  # graphiti and torch load only when memory is on
    from naestro.memory.retention import Retention

    return Memory.open(home=settings.home, url=settings.memory_url,
                       readable=bundle.data.get("naestro", {}).get("memory", {}).get("readable", {}),
                       roles={r.value: list(s.tools) for r, s in roles.items()},
                       retention=Retention(keep_runs=settings.memory_keep_runs,
                                           max_age_days=settings.memory_max_age_days))
