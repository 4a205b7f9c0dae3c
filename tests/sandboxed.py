"""Helpers for tests that run commands in the real bubblewrap sandbox on a seeded workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp_servers.sandbox import Completed, Limits, run_sandboxed


async def sandboxed(command: str, where: Path) -> Completed | None:
    """A ``CommandRunner`` (as the planner's probe and reference programs use) without a gate."""
    return await run_sandboxed(where, command, Limits(wall_s=20, cpu_s=20))


def people_workspace(tmp_path: Path, people: list[dict[str, Any]]) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "people.json").write_text(json.dumps(people))
    return ws
