"""The tool registry: every tool an agent can call, named ``server.tool``, typed and versioned.

Built from the MCP ``tools/list`` of Naestro's own servers plus the external MCP servers declared in a
``tools.yaml`` (a stdio command or a streamable-HTTP URL each). External servers' tools get the server name as
prefix like ours, and their descriptions and annotations are marked untrusted: the policy gate decides what
they may do, never the annotation. ::

    # tools.yaml
    builtin:                       # options for Naestro's own servers
      allow_domains: [docs.python.org]
      database: data/shop.sqlite   # SQLite in the workspace, or a postgresql:// DSN
    servers:                       # external MCP servers
      weather: {command: python3, args: [weather_server.py], env: {UNITS: metric}}
      search: {url: "http://127.0.0.1:8080/mcp", headers: {Authorization: "Bearer ..."}}
      shop: {openapi: shop.openapi.yaml, base_url: "https://shop.example.com/api"}   # HTTP API → shop.<operationId>
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from langchain_mcp_adapters.sessions import Connection
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions, build_server
from naestro.configfile import invalid_shape, read_yaml
from naestro.errors import ConfigError
from naestro.plan import Role
from naestro.toolbus import McpToolBus, ToolAnnotations, ToolSpec, builtin_servers
from nodes.roles import RoleSpec

if TYPE_CHECKING:
    from naestro.mcppool import McpServerPool

__all__ = ["BuiltinOptions", "ExternalServer", "Registry", "ToolEntry", "ToolsConfig", "build_registry",
           "builtin_input_schemas", "builtin_options", "load_tools_config", "pooled_run_servers", "run_servers"]

_SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ExternalServer(BaseModel):
    """A server someone else wrote: an MCP stdio command, an MCP streamable-HTTP URL, or an HTTP API described
    by an OpenAPI 3 document (served through Naestro's ``openapi`` adapter, itself an MCP server)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    openapi: str | None = Field(default=None, description="OpenAPI 3 document (file); needs base_url")
    base_url: str | None = None
    roles: tuple[str, ...] = Field(default=(), description="roles whose allowlist gets this server's tools "
                                                           "(the policy still decides every call)")

    @model_validator(mode="after")
    def _one_transport(self) -> ExternalServer:
        if sum(x is not None for x in (self.command, self.url, self.openapi)) != 1:
            raise ValueError("give exactly one of `command` (stdio MCP), `url` (streamable-HTTP MCP) or `openapi` "
                             "(an OpenAPI document, with `base_url`)")
        if self.command is None and (self.args or self.env or self.cwd):
            raise ValueError("`args`, `env` and `cwd` apply to stdio servers only")
        if (self.openapi is None) != (self.base_url is None):
            raise ValueError("`openapi` and `base_url` go together")
        return self

    @property
    def adapter(self) -> Literal["mcp", "openapi"]:
        return "openapi" if self.openapi is not None else "mcp"

    def connection(self) -> Connection:
        if self.url is not None:
            return {"transport": "streamable_http", "url": self.url, "headers": self.headers}
        if self.openapi is not None:
            assert self.base_url is not None
            return {"transport": "stdio", "command": sys.executable,
                    "args": ["-m", "mcp_servers.openapi", "--spec", self.openapi, "--base-url", self.base_url]}
        assert self.command is not None
        return {"transport": "stdio", "command": self.command, "args": list(self.args), "env": self.env,
                "cwd": self.cwd}


class BuiltinOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    allow_domains: tuple[str, ...] = ()
    database: str | None = None
    search_url: str | None = None


class ToolsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    builtin: BuiltinOptions = BuiltinOptions()
    servers: dict[str, ExternalServer] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> ToolsConfig:
        for name in self.servers:
            if name in BUILTIN_SERVERS:
                raise ValueError(f"server name {name!r} is taken by a builtin server; rename it (its tools are "
                                 f"called {name}.<tool>)")
            if not _SERVER_NAME.match(name):
                raise ValueError(f"server name {name!r} must match {_SERVER_NAME.pattern} (it prefixes tool names)")
        return self


def load_tools_config(path: Path | None) -> ToolsConfig:
    """``tools.yaml``; a missing file (or None) means builtin servers only, with their defaults."""
    if path is None or not path.exists():
        return ToolsConfig()
    data, text = read_yaml(path)
    try:
        return ToolsConfig.model_validate(data or {})
    except ValidationError as exc:
        raise invalid_shape(exc, text, where=str(path)) from exc


def builtin_options(workspace: Path, config: ToolsConfig, *, allow_domains: Sequence[str] = (),
                    roots: Sequence[str] = (), hidden: Sequence[Path] = ()) -> ServerOptions:
    """What a run's builtin servers are confined to. ``allow_domains`` (e.g. the run policy's) is added to the
    configured web allowlist; ``hidden``: Naestro's home, never reachable by a tool even inside the workspace."""
    domains = tuple(dict.fromkeys([*config.builtin.allow_domains, *allow_domains]))
    return ServerOptions(workspace=workspace, allow_domains=domains, database=config.builtin.database,
                         search_url=config.builtin.search_url, roots=tuple(Path(r) for r in roots),
                         hidden=tuple(hidden))


def run_servers(workspace: Path, config: ToolsConfig, *, allow_domains: Sequence[str] = (),
                roots: Sequence[str] = ()) -> tuple[dict[str, Connection], set[str]]:
    """Connections for one run (builtin servers as its own stdio children + external) and the names of the
    untrusted (external) servers."""
    o = builtin_options(workspace, config, allow_domains=allow_domains, roots=roots)
    servers = builtin_servers(o.workspace, allow_domains=o.allow_domains, database=o.database,
                              search_url=o.search_url, roots=o.roots)
    return {**servers, **external_servers(config)}, set(config.servers)


async def pooled_run_servers(pool: McpServerPool, workspace: Path, config: ToolsConfig, *,
                             allow_domains: Sequence[str] = (),
                             roots: Sequence[str] = (),
                             hidden: Sequence[Path] = ()) -> tuple[dict[str, Connection], set[str]]:
    """Like ``run_servers``, with the builtin servers from the runtime's shared pool (the run's own sessions,
    its confinement sent with them). External servers stay the run's own connections: they are not ours to
    share."""
    options = builtin_options(workspace, config, allow_domains=allow_domains, roots=roots, hidden=hidden)
    return {**await pool.connections(options), **external_servers(config)}, set(config.servers)


def external_servers(config: ToolsConfig) -> dict[str, Connection]:
    return {name: ext.connection() for name, ext in config.servers.items()}


class ToolEntry(BaseModel):
    """One registered tool: what the registry, policies, audit and the CLI know about it."""

    model_config = ConfigDict(frozen=True)
    name: str = Field(description="server.tool")
    server: str
    version: str
    description: str
    input_schema: dict[str, JsonValue]
    output_schema: dict[str, JsonValue] | None
    annotations: ToolAnnotations
    trusted: bool = Field(description="False: description and annotations come from an external server")
    adapter: Literal["mcp", "openapi"] = Field(default="mcp", description="mcp, or openapi (an HTTP API)")
    transport: Literal["stdio", "streamable_http", "sse", "websocket"]
    scopes: tuple[str, ...] = Field(description="roles (nodes/roles.yaml) allowed to call it")

    @classmethod
    def from_spec(cls, spec: ToolSpec, *, transport: str, scopes: Sequence[str], adapter: str = "mcp") -> ToolEntry:
        return cls.model_validate({"adapter": adapter,
            "name": spec.name, "server": spec.server, "version": spec.version, "description": spec.description,
            "input_schema": spec.input_schema, "output_schema": spec.output_schema,
            "annotations": spec.annotations, "trusted": spec.trusted, "transport": transport,
            "scopes": tuple(scopes)})


class Registry(BaseModel):
    model_config = ConfigDict(frozen=True)
    tools: tuple[ToolEntry, ...]

    def get(self, name: str) -> ToolEntry:
        for tool in self.tools:
            if tool.name == name:
                return tool
        near = [t.name for t in self.tools if t.name.split(".")[-1] == name.split(".")[-1]]
        hint = f"; did you mean {', '.join(near)}?" if near else "; see `naestro tools list`"
        raise ConfigError(f"no tool {name!r} in the registry{hint}")


def with_external_roles(roles: Mapping[Role, RoleSpec], config: ToolsConfig) -> dict[Role, RoleSpec]:
    """Role specs whose allowlists also name the external servers granted to them (``server.*``)."""
    extra: dict[str, list[str]] = {}
    for name, server in config.servers.items():
        for role in server.roles:
            extra.setdefault(role, []).append(f"{name}.*")
    unknown = sorted(set(extra) - {r.value for r in roles})
    if unknown:
        raise ConfigError(f"tools.yaml grants servers to unknown roles {unknown}; known: "
                          f"{sorted(r.value for r in roles)}")
    return {r: spec.model_copy(update={"tools": (*spec.tools, *extra.get(r.value, []))}) for r, spec in roles.items()}


def role_scopes(roles: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """tool name → roles whose allowlist names it."""
    scopes: dict[str, list[str]] = {}
    for role, tools in roles.items():
        for tool in tools:
            scopes.setdefault(tool, []).append(role)
    return scopes


async def build_registry(workspace: Path, config: ToolsConfig, *, roles: Mapping[str, Sequence[str]]) -> Registry:
    """Start every configured server, read its tools/list, and close it again."""
    servers, untrusted = run_servers(workspace, config)
    scopes = role_scopes(roles)
    async with McpToolBus(servers, untrusted=untrusted) as bus:
        specs = bus.specs()
    adapters = {name: ext.adapter for name, ext in config.servers.items()}
    return Registry(tools=tuple(ToolEntry.from_spec(s, transport=servers[s.server]["transport"],
                                                    scopes=sorted(scopes.get(s.name, ())),
                                                    adapter=adapters.get(s.server, "mcp")) for s in specs))



@functools.cache
def builtin_input_schemas() -> Mapping[str, Mapping[str, JsonValue]]:
    """``server.tool`` → input schema of every builtin tool, as its server derives it from the tool's signature.

    Plan validation checks direct-action arguments against these without starting a server: each FastMCP server
    is built (no process, no workspace access) and its tool manager read. Read from the servers, not a copy, so
    the schemas cannot drift. ``web.search`` exists only when a search URL is configured, so one is given.
    Cached: the servers are the same for the life of the process, and the planner validates every attempt.
    """
    options = ServerOptions(workspace=Path("."), search_url="http://search.invalid")
    schemas: dict[str, Mapping[str, JsonValue]] = {}
    for server in BUILTIN_SERVERS:
        # The tool manager, not the async list_tools(): the planner validates from inside its event loop.
        for tool in build_server(server, options)._tool_manager.list_tools():
            schemas[f"{server}.{tool.name}"] = tool.parameters
    return schemas
