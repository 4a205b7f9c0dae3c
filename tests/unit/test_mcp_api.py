"""The public names of the tool bus, the registry and the server entry point, pinned."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "naestro.toolbus": ["McpToolBus", "ToolAnnotations", "ToolBus", "ToolResult", "ToolSpec", "builtin_servers",
                        "schema_version"],
    "naestro.tools": ["BuiltinOptions", "ExternalServer", "Registry", "ToolEntry", "ToolsConfig", "build_registry",
                      "builtin_options", "builtin_input_schemas", "load_tools_config", "pooled_run_servers",
                      "run_servers"],
    "mcp_servers.workspace": ["BUILTIN_SERVERS", "ServerOptions", "build_server", "confine",
                                      "confine_read", "new_server", "serve", "serve_server"],
    "mcp_servers.sandbox": ["Completed", "Limits", "SandboxUnavailable", "run_sandboxed", "sandbox_argv"],
}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_exported_names_are_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PINNED[module])
    for name in mod.__all__:
        assert hasattr(mod, name)


def test_every_builtin_server_module_builds() -> None:
    from mcp_servers.workspace import BUILTIN_SERVERS

    for name in BUILTIN_SERVERS:
        module = importlib.import_module(f"mcp_servers.{name}")
        assert callable(module.build) and callable(module.main)
    frontdoor = importlib.import_module("naestro.frontdoor")  # the run-driving server lives with the CLI
    assert callable(frontdoor.build) and callable(frontdoor.main)


def test_tool_servers_import_no_runtime() -> None:
    """mcp_servers/ are standalone: building every one loads no runner, graph, router, policy gate or planner."""
    import subprocess
    import sys

    code = ("import sys, tempfile, pathlib\n"
            "from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions, build_server\n"
            "ws = pathlib.Path(tempfile.mkdtemp())\n"
            "for n in BUILTIN_SERVERS: build_server(n, ServerOptions(workspace=ws))\n"
            "bad = ('naestro.runner', 'graphs', 'naestro.router', 'policies.gate', 'nodes',"
            " 'naestro.context', 'naestro.frontdoor', 'langgraph')\n"
            "print(sorted(m for m in sys.modules if m.startswith(bad)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
