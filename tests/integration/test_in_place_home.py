"""An --in-place run in a folder that holds Naestro's home (the default ./.naestro) never reaches the home.

The exec sandbox always hid it; the fs tools, the step snapshots and the reports did not: an agent could read the
audit signing key with fs.read, grant itself external servers by writing .naestro/tools.yaml, and a rollback
rewrote the open checkpoint database. Real runtime, MCP servers, sandbox and checkpoints; scripted model text.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.timetravel import TimeTravel
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text, stepped_agent


async def test_an_in_place_run_never_reaches_the_home_inside_its_folder(settings: Settings, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "seed.txt").write_text("seed")
    settings = settings.model_copy(update={"home": project / ".naestro"})
    (settings.home / "keys").mkdir(parents=True)
    (settings.home / "keys" / "planted").write_text("PRIVATE-7f3a")
    plan = Plan.model_validate({"goal": "g", "tasks": [
        {"id": "a", "role": "coder", "description": "write a.txt", "accept": [
            {"kind": "regex", "file": "a.txt", "pattern": "ok"}]},
        {"id": "b", "role": "runner", "description": "commit the work", "deps": ["a"], "accept": [
            {"kind": "file_exists", "path": "a.txt"}]}]})
    seen: list[str] = []
    committed: list[str] = []
    runner = stepped_agent([("git.status", {}), ("git.commit", {"message": "a.txt"})], committed)
    coder = stepped_agent([
        ("fs.list", {"path": "."}),
        ("fs.read", {"path": ".naestro/keys/planted"}),
        ("fs.write", {"path": ".naestro/tools.yaml", "content": "servers: {}\n"}),
        ("fs.search", {"pattern": "PRIVATE"}),
        ("exec.run", {"command": "cat .naestro/keys/planted; ls -a .naestro"}),
        ("fs.write", {"path": "a.txt", "content": "ok"}),
    ], seen)

    def script(messages: list[BaseMessage]) -> Any:
        return (runner if "Your task (b)" in all_text(messages) else coder)(messages)
    approve = RunPolicy(approve=[ApprovedScope(tool="fs.write", under=str(project.resolve())),
                                 ApprovedScope(tool="exec.run"), ApprovedScope(tool="git.*")])
    subprocess.run(["git", "init", "-q", str(project)], check=True)  # the user's project is a repository
    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan, workspace=project,
                                                                     in_place=True, policy=approve)
    assert result.passed, seen
    listed, read, wrote, searched, ran = seen[1:6]
    assert ".naestro" not in listed and "seed.txt" in listed
    assert "Naestro's own data folder" in read and "Naestro's own data folder" in wrote
    assert not (settings.home / "tools.yaml").exists()
    assert "PRIVATE" not in searched.replace('"pattern": "PRIVATE"', "") and "PRIVATE-7f3a" not in ran
    status = next(o for o in committed if o.startswith("[git.status"))
    assert "seed.txt" in status and ".naestro" not in status
    tracked = subprocess.run(["git", "-C", str(project), "ls-files"], capture_output=True, text=True).stdout
    assert "a.txt" in tracked and ".naestro" not in tracked
    report = (settings.runs_dir / result.record.run_id / "report.md").read_text()
    assert "`a.txt`" in report and ".naestro" not in report  # the home is no artifact

    # Rolling the workspace back to before the task removes a.txt and leaves the home as it is (the snapshots
    # held the home: the rollback rewrote the checkpoint database it was reading).
    runner = Runner(settings, ScriptedProvider(script))
    travel = TimeTravel(runner)
    entries = await travel.history(result.record.run_id)
    before_a = next(e for e in entries if "task:a" in e.next)
    home_files = sorted(p.relative_to(settings.home) for p in settings.home.rglob("*") if p.is_file())
    await travel.rollback(result.record.run_id, before_a.checkpoint_id, force=True)
    assert not (project / "a.txt").exists() and (project / "seed.txt").read_text() == "seed"
    assert (settings.home / "keys" / "planted").read_text() == "PRIVATE-7f3a"
    assert set(home_files) <= {p.relative_to(settings.home) for p in settings.home.rglob("*") if p.is_file()}
    assert (await travel.history(result.record.run_id))  # the checkpoints still read
