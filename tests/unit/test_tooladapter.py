"""Tool adapters (issue 21: what a merged ``tool_adapter`` self-PR changes): parsed from ``tools/<server>.yaml``,
refused with the file and field when wrong, and used by the agents' context: the hint reaches the tool's prompt
line and the timeout the tool call."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from naestro.errors import ConfigError
from naestro.improve.validate import static_problems
from naestro.tooladapter import DEFAULT_TIMEOUT_S, ToolAdapter, adapters_from_tree, parse_server_adapter, timeout_for

EXEC = """timeout_s: 240
tools:
  run:
    hint: run tests with python3 -m pytest -q
    timeout_s: 120
  status: {hint: poll it}
"""


def test_a_server_file_gives_adapters_by_full_tool_name() -> None:
    adapters = parse_server_adapter("tools/exec.yaml", EXEC)
    assert adapters == {"exec.run": ToolAdapter(hint="run tests with python3 -m pytest -q", timeout_s=120),
                        "exec.status": ToolAdapter(hint="poll it"), "exec.*": ToolAdapter(timeout_s=240)}
    assert timeout_for(adapters, "exec.run") == 120  # the tool's own
    assert timeout_for(adapters, "exec.status") == 240  # its server's
    assert timeout_for(adapters, "fs.write") == DEFAULT_TIMEOUT_S  # no adapter
    assert parse_server_adapter("tools/fs.yaml", "") == {}  # an empty file changes nothing


@pytest.mark.parametrize(("text", "field"), [
    ("timeout_s: 0\n", "timeout_s"),
    ("tools: {run: {timeout_s: 9000}}\n", "tools.run.timeout_s"),
    ("tools: {run: {allow: true}}\n", "tools.run.allow"),
    ("tools: {run: {hint: ''}}\n", "tools.run.hint"),
    ("tools: [run]\n", "tools"),
])
def test_a_wrong_file_names_itself_and_the_field(text: str, field: str) -> None:
    with pytest.raises(ConfigError, match="^tools/exec\\.yaml: " + re.escape(field) + ": "):
        parse_server_adapter("tools/exec.yaml", text)


def test_not_yaml_names_the_file() -> None:
    with pytest.raises(ConfigError, match=r"^tools/exec\.yaml: not YAML"):
        parse_server_adapter("tools/exec.yaml", "tools: {run: [\n")


def test_only_tools_yaml_files_of_a_tree_count_and_validation_refuses_a_broken_one() -> None:
    roles = (Path(__file__).parents[2] / "nodes" / "roles.yaml").read_text()
    tree = {"roles.yaml": roles, "tools/exec.yaml": EXEC, "tools/notes.md": "x", "golden/tools/a.yaml": "x: 1"}
    assert set(adapters_from_tree(tree)) == {"exec.run", "exec.status", "exec.*"}
    assert static_problems(tree, tree) == []
    broken = {**tree, "tools/exec.yaml": "timeout_s: -1\n"}
    (problem,) = static_problems(tree, broken)
    assert problem.startswith("tools/exec.yaml: timeout_s: ")


@given(st.one_of(st.none(), st.floats(min_value=1, max_value=600)),
       st.one_of(st.none(), st.floats(min_value=1, max_value=600)))
def test_the_tool_timeout_wins_over_the_server_one(tool: float | None, server: float | None) -> None:
    adapters = {"exec.run": ToolAdapter(timeout_s=tool), "exec.*": ToolAdapter(timeout_s=server)}
    assert timeout_for(adapters, "exec.run") == (tool if tool is not None else
                                                  server if server is not None else DEFAULT_TIMEOUT_S)
