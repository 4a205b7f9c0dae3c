"""The evaluators' environment outside a run (golden suites, tests, the baseline): the same bubblewrap
sandbox ``exec.run`` uses, with sources and usage given by the caller instead of read from a run."""

from __future__ import annotations

import math
import os
from pathlib import Path

from mcp_servers.sandbox import Limits, SandboxUnavailable, run_sandboxed
from naestro.evaluators._verdict import CommandOutcome, Source, Usage

__all__ = ["SandboxEvalEnv"]


class SandboxEvalEnv:
    def __init__(self, workspace: Path, *, sources: list[Source] | None = None, usage: Usage | None = None) -> None:
        self._workspace, self._sources, self._usage = workspace, list(sources or []), usage or Usage()

    @property
    def workspace(self) -> Path:
        return self._workspace

    async def run(self, command: str, *, timeout_s: float) -> CommandOutcome:
        limits = Limits(wall_s=min(600.0, timeout_s), cpu_s=min(600, math.ceil(timeout_s) * (os.cpu_count() or 1)))
        try:
            done = await run_sandboxed(self._workspace, command, limits)
        except SandboxUnavailable as exc:
            return CommandOutcome(ok=False, note=str(exc))
        return CommandOutcome(ok=True, exit_code=done.exit_code, stdout=done.stdout, stderr=done.stderr,
                              note=done.killed or "", timed_out=done.timed_out)

    def sources(self) -> list[Source]:
        return list(self._sources)

    def usage(self, task_id: str) -> Usage:
        return self._usage

    def conceal(self, text: str) -> str:
        return text  # outside a run there is no vault: nothing was redacted, so nothing is concealed
