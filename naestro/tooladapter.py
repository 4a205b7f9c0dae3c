"""Tool adapters: how a tool is offered to the agents and how long a call may take, set per server by the
self-improvement loop (issue 21: a ``tool_adapter`` proposal changes ``tools/<server>.yaml`` of the config repo).

An adapter never changes what a tool does or who may call it (the role allowlists and the gate decide that):
it adds a usage hint to the tool's line in the agent's prompt ("exec.run: ... Hint: run pytest with -q") and
sets the per-call timeout, which the task's remaining budget still caps. ``tools/exec.yaml``::

    timeout_s: 240          # every exec.* call (default 300 s)
    tools:
      run:
        hint: run tests with python3 -m pytest -q and read the first failure
        timeout_s: 120      # this tool only

A file that does not load is refused when the proposal is validated (``naestro/improve/validate.py``) and
again when a release is loaded, naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.errors import ConfigError

__all__ = ["DEFAULT_TIMEOUT_S", "ServerAdapter", "ToolAdapter", "adapter_path", "adapters_from_tree", "hint_for",
           "parse_server_adapter", "timeout_for"]

DEFAULT_TIMEOUT_S = 300.0
"""A tool call's timeout without an adapter (the agent loop's long-standing cap)."""


class ToolAdapter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    hint: str | None = Field(default=None, min_length=1, max_length=300,
                             description="appended to the tool's line in the agent's prompt")
    timeout_s: float | None = Field(default=None, ge=1, le=600, description="per call; the task budget still caps it")


class ServerAdapter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float | None = Field(default=None, ge=1, le=600, description="every tool of the server")
    tools: dict[str, ToolAdapter] = Field(default_factory=dict, description="by tool name without the server")


def parse_server_adapter(path: str, text: str) -> dict[str, ToolAdapter]:
    """``tools/<server>.yaml`` → adapters by full tool name (``server.tool``; ``server.*`` for the server-wide
    timeout). Raises ConfigError naming the file and the field."""
    server = PurePosixPath(path).stem
    try:
        data = yaml.safe_load(text)
        adapter = ServerAdapter.model_validate(data if data is not None else {})
    except yaml.YAMLError as exc:
        raise ConfigError(f"not YAML: {str(exc).splitlines()[0]}", file=path) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ConfigError(f"{where}: {first['msg']} (fields: timeout_s, tools.<tool>.hint|timeout_s)",
                          file=path) from exc
    out = {f"{server}.{name}": a for name, a in adapter.tools.items()}
    if adapter.timeout_s is not None:
        out[f"{server}.*"] = ToolAdapter(timeout_s=adapter.timeout_s)
    return out


def adapters_from_tree(files: Mapping[str, str]) -> dict[str, ToolAdapter]:
    """Every ``tools/*.yaml`` of a config tree (path → text), merged."""
    out: dict[str, ToolAdapter] = {}
    for path, text in sorted(files.items()):
        if path.startswith("tools/") and path.endswith(".yaml") and path.count("/") == 1:
            out.update(parse_server_adapter(path, text))
    return out


def adapter_path(tool: str) -> str:
    """The config-repository file holding ``server.tool``'s adapter: ``tools/<server>.yaml``."""
    return f"tools/{tool.partition('.')[0]}.yaml"


def hint_for(adapters: Mapping[str, ToolAdapter], tool: str) -> str | None:
    adapter = adapters.get(tool)
    return adapter.hint if adapter is not None else None


def timeout_for(adapters: Mapping[str, ToolAdapter], tool: str) -> float:
    """The tool's own timeout, else its server's, else the default."""
    server = tool.split(".", 1)[0]
    for key in (tool, f"{server}.*"):
        adapter = adapters.get(key)
        if adapter is not None and adapter.timeout_s is not None:
            return adapter.timeout_s
    return DEFAULT_TIMEOUT_S
