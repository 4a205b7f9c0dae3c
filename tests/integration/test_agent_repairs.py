"""An agent's Python typed with JSON slips runs as meant, and the agent is told what was repaired (the real graph,
gate, MCP exec/fs servers and bubblewrap sandbox; only the model's text is scripted)."""

from __future__ import annotations

from pathlib import Path

from naestro.plan import Plan
from naestro.program_repair import NEWLINES, QUOTES
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, stepped_agent
from tests.unit.test_program_repair import ORDERS, SEEN

PLAN = Plan.model_validate({"goal": "filter orders", "tasks": [{
    "id": "filter", "role": "coder", "description": "Write big_orders.csv (amount over 100) and report.md",
    "accept": [{"kind": "regex", "file": "big_orders.csv", "pattern": "^id,customer,amount\n2,bob,150.5\n4,di,220\n"
                                                                         "6,fa,101\n$"},
               {"kind": "regex", "file": "report.md", "pattern": "Number of big orders: 3"},
               {"kind": "regex", "file": "check.py", "pattern": "print\\('a\\\\nb'\\)"}]}]})


async def test_the_slices_failing_command_and_a_broken_py_file_run_as_meant(settings: Settings,
                                                                            tmp_path: Path) -> None:
    settings = settings.model_copy(update={"review": False})
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "orders.csv").write_text(ORDERS)
    seen: list[str] = []
    steps = [("exec.run", {"command": SEEN}), ("fs.write", {"path": "check.py", "content": "print('a\nb')\n"}),
             ("exec.run", {"command": "python3 check.py"})]

    result = await Runner(settings, ScriptedProvider(stepped_agent(steps, seen))).start(
        "filter orders", plan=PLAN, workspace=seed,
        policy=RunPolicy(approve=[ApprovedScope(tool="exec.run")]))
    assert result.passed, result.tasks
    ran, wrote, checked = seen[1:4]  # what the three tool calls returned
    assert '"exit_code": 0' in ran and f"Naestro repaired your program before it ran: {QUOTES}; {NEWLINES}." in ran
    assert f"repaired your program before it ran: {NEWLINES}." in wrote
    assert '"stdout": "a\\nb\\n"' in checked and "repaired" not in checked
