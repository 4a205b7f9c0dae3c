"""`naestro run --mode guide --json` ends with the proposal and still lists the user's tasks (issue 18).

The real CLI, graph, gate and MCP tools against a scripted OpenAI-compatible endpoint (only the text is scripted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.settings import Settings
from tests.scripted_openai import scripted_models

PLAN = {"goal": "Write hello.py printing hello", "tasks": [
    {"id": "write_hello", "role": "coder", "description": "Write hello.py that prints hello",
     "accept": [{"kind": "command", "command": "python3 hello.py"}]},
    {"id": "document", "role": "coder", "description": "Write USAGE.md", "deps": ["write_hello"],
     "accept": [{"kind": "regex", "file": "USAGE.md", "pattern": "hello"}]}]}


def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
    text = "\n".join(str(m.get("content")) for m in messages)
    if "Turn the user's goal into a small plan" in text:
        raise AssertionError("guide mode must not re-plan")
    if "Write 2-4 sentences" in text:
        return {"summary": "proposed"}
    tid = "document" if "Your task (document)" in text else "write_hello"
    if not any(m.get("role") == "assistant" for m in messages):
        path, content = ("USAGE.md", "Run python3 hello.py to say hello.\n") if tid == "document" else \
            ("hello.py", "print('hello')\n")
        return {"thought": "write", "tool": "fs.write", "arguments": {"path": path, "content": content}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "proposed", "outputs": {}}}


def test_guide_mode_json_lists_the_users_tasks(settings: Settings, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(PLAN))
    with scripted_models(script, tmp_path) as models:
        monkeypatch.setenv("NAESTRO_HOME", str(settings.home))
        monkeypatch.setenv("NAESTRO_MODELS_FILE", str(models))
        monkeypatch.setenv("NAESTRO_MAX_REPLANS", "2")
        out = CliRunner().invoke(app, ["run", "--plan", str(plan_file), "--mode", "guide", "--json"])
        shown = CliRunner().invoke(app, ["run", "--plan", str(plan_file), "--mode", "guide"])
    assert shown.exit_code == 1 and "PROPOSED (guide mode: nothing ran)" in shown.output, shown.output
    assert out.exit_code == 1, out.output  # nothing was done: not a success
    result = json.loads(out.stdout)
    assert list(result["tasks"]) == ["write_hello", "document"]
    assert all(t["status"] == "failed" and t["attempts"] == 1 for t in result["tasks"].values())
    report = Path(result["report"]).read_text()
    assert report.startswith("# Naestro proposal (guide mode: nothing was run)")
    assert "new file `hello.py`" in report and "new file `USAGE.md`" in report
    assert not (Path(result["workspace"]) / "hello.py").exists()
