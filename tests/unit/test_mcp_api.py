"""The public names of the tool bus, the registry and the server entry point, pinned."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "naestro.toolbus": ["McpToolBus", "ToolAnnotations", "ToolBus", "ToolResult", "ToolSpec", "builtin_servers",
                        "schema_version"],
    "naestro.tools": ["BuiltinOptions", "ExternalServer", "Registry", "ToolEntry", "ToolsConfig", "build_registry",
                      "load_tools_config", "run_servers"],
    "naestro.mcp_servers.workspace": ["BUILTIN_SERVERS", "IDE_SERVERS", "ServerOptions", "build_server", "confine",
                                      "confine_read", "new_server", "serve", "serve_server"],
    "naestro.mcp_servers.sandbox": ["Completed", "Limits", "SandboxUnavailable", "run_sandboxed", "sandbox_argv"],
}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_exported_names_are_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PINNED[module])
    for name in mod.__all__:
        assert hasattr(mod, name)


def test_every_builtin_server_module_builds() -> None:
    from naestro.mcp_servers.workspace import BUILTIN_SERVERS, IDE_SERVERS

    for name in BUILTIN_SERVERS + IDE_SERVERS:
        module = importlib.import_module(f"naestro.mcp_servers.{name}")
        assert callable(module.build) and callable(module.main)
