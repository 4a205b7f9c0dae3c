"""Agents in a real run use the MCP servers end to end: pdf → fs → exec (sandboxed) → git, through the runner's
bus and the policy gate; only the model's text is scripted."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text

# What each task's agent does, step by step (the model's replies; the tool results are real).
STEPS: dict[str, list[dict[str, Any]]] = {
    "extract": [
        {"tool": "pdf.text", "arguments": {"path": "invoice.pdf"}},
        {"tool": "pdf.tables", "arguments": {"path": "invoice.pdf", "format": "csv", "out_dir": "tables"}},
        {"tool": "exec.run", "arguments": {"command": ["python3", "-c", (
            "import csv; rows = list(csv.reader(open('tables/invoice-p1-t0.csv'))); "
            "open('total.txt', 'w').write(str(sum(int(r[1]) for r in rows[1:])))")]}},
    ],
    "commit": [
        {"tool": "git.status", "arguments": {}},
        {"tool": "git.commit", "arguments": {"message": "Add invoice tables and total"}},
    ],
}


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    text = all_text(messages)
    if "Write 2-4 sentences" in text:
        return {"summary": "Extracted the invoice table, summed it in the sandbox and committed the result."}
    task = re.search(r"Your task \((\w+)\)", text)
    assert task, text
    steps = STEPS[task.group(1)]
    done = sum(isinstance(m, AIMessage) for m in messages)
    if done < len(steps):
        return {"thought": "next step", **steps[done]}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}


def seed(folder: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Invoice 42")
    pdf.ln(12)
    with pdf.table() as table:
        for cells in [("item", "qty"), ("bolts", "30"), ("nuts", "12")]:
            row = table.row()
            for c in cells:
                row.cell(c)
    pdf.output(str(folder / "invoice.pdf"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=folder, check=True)
    subprocess.run([*git, "add", "invoice.pdf"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "invoice"], cwd=folder, check=True)


async def test_agents_use_pdf_exec_and_git_tools(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    seed(source)
    plan = Plan.model_validate({"goal": "sum the invoice and commit", "tasks": [
        {"id": "extract", "role": "dataops", "description": "extract the invoice table and total the quantities",
         "accept": [{"kind": "regex", "file": "total.txt", "pattern": "^42$"}]},
        {"id": "commit", "role": "runner", "description": "commit the results", "deps": ["extract"],
         "accept": [{"kind": "command", "command": "git log -1 --format=%s | grep -q 'invoice tables'"}]},
    ]})
    runner = Runner(settings, ScriptedProvider(script))
    # Shell commands need consent in the default (copilot) mode; the operator pre-approves them for this run.
    policy = RunPolicy(approve=[ApprovedScope(tool="exec.run")])
    result = await runner.start("", plan=plan, workspace=source, policy=policy)
    events = read_events(settings.runs_dir / result.record.run_id / "events.jsonl")
    tools = [e for e in events if e["event"] == "tool_call"]
    assert result.passed, json.dumps(tools, indent=1)[-3000:]
    ws = Path(result.record.workspace)
    with (ws / "tables" / "invoice-p1-t0.csv").open() as f:
        assert list(csv.reader(f)) == [["item", "qty"], ["bolts", "30"], ["nuts", "12"]]
    assert (ws / "total.txt").read_text() == "42"
    called = [str(e["tool"]) for e in tools]
    assert called[:5] == ["pdf.text", "pdf.tables", "exec.run", "git.status", "git.commit"]
    log = subprocess.run(["git", "log", "--format=%s|%an"], cwd=ws, capture_output=True, text=True).stdout
    assert log.splitlines() == ["Add invoice tables and total|Naestro agent", "invoice|t"]
    assert not (source / "total.txt").exists()  # the run worked on its own copy
