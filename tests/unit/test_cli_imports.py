"""Nothing heavy at import time (issue 15): `naestro --help` and the plan contract load none of the runtime.

Each check runs in a fresh interpreter, because this test process has long since imported everything. Only what
is loaded is asserted here; how long it takes is measured with `python -X importtime` (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import typing

# The runtime `naestro --help` must not load: models, graphs, PII detection, MCP, tracing, policy engines.
CLI_FORBIDDEN = (
    "langchain_core", "langchain_openai", "langgraph", "openai", "presidio_analyzer", "spacy", "mcp",
    "opentelemetry", "regorus", "httpx", "naestro.runner", "naestro.router", "policies.gate", "naestro.llm",
    "naestro.telemetry", "asyncio",  # asyncio (+ ssl): ~20 ms of a ~190 ms `--help` (issue 16, bench.startup)
)
# The plan contract imports nothing of the runtime, so validating a plan cannot pull in an import cycle.
PLAN_FORBIDDEN = ("naestro.router", "policies", "naestro.telemetry", "naestro.context", "langgraph",
                  "langchain_core")

# Prints, as JSON, {forbidden name: how many of its modules are loaded} and the naestro modules loaded, so that a
# failure names both the heavy package and the project module that could have pulled it in.
_REPORT = """
import json as _json, sys as _sys
_hits = {}
for _m in _sys.modules:
    for _f in FORBIDDEN:
        if _m == _f or _m.startswith(_f + "."):
            _hits[_f] = _hits.get(_f, 0) + 1
print(_json.dumps({"hits": _hits, "naestro": sorted(m for m in _sys.modules if m.startswith("naestro"))}))
"""


def _loaded(code: str, forbidden: tuple[str, ...]) -> dict[str, typing.Any]:
    script = f"FORBIDDEN = {forbidden!r}\n{textwrap.dedent(code)}\n{_REPORT}"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, typing.Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def test_help_of_every_command_loads_no_runtime() -> None:
    report = _loaded("""
        import typer
        from typer.testing import CliRunner

        import naestro.cli

        def paths(cmd, prefix):
            yield prefix
            for name, sub in getattr(cmd, "commands", {}).items():  # groups (typer vendors its own click)
                yield from paths(sub, [*prefix, name])

        runner = CliRunner()
        helped = 0
        for args in paths(typer.main.get_command(naestro.cli.app), []):
            result = runner.invoke(naestro.cli.app, [*args, "--help"])
            assert result.exit_code == 0, (args, result.output)
            helped += 1
        assert helped > 40, helped  # the root, every group and every command
    """, CLI_FORBIDDEN)
    assert not report["hits"], (f"`naestro --help` loaded {report['hits']}; "
                                f"naestro modules loaded: {report['naestro']}")


def test_validating_a_plan_loads_no_runtime() -> None:
    report = _loaded("""
        import naestro.plan
        from naestro.validate import parse_plan

        plan = parse_plan({"goal": "g", "tasks": [{
            "id": "t", "role": "coder", "description": "d",
            "accept": [{"kind": "evaluator", "evaluator": "code", "threshold": 0.5, "params": {}}]}]})
        assert plan.tasks[0].accept[0].kind == "evaluator"
    """, PLAN_FORBIDDEN)
    assert not report["hits"], (f"validating a plan loaded {report['hits']}; "
                                f"naestro modules loaded: {report['naestro']}")


def test_cli_copies_of_runtime_names_match() -> None:
    """The CLI repeats two constants so that `--help` need not import their heavy home modules."""
    from mcp_servers.workspace import BUILTIN_SERVERS
    from naestro.baseline import BaselineKind
    from naestro.commands import eval as eval_commands
    from naestro.commands import mcp as mcp_commands

    assert typing.get_args(eval_commands.BaselineKind) == typing.get_args(BaselineKind)
    assert (*BUILTIN_SERVERS, "naestro") == mcp_commands.SERVERS
