"""The Studio's view of memory across runs (issue 19): the timeline and a search, as an operator reads them.

The home's memory opens on the first request that needs it (the embedded FalkorDB starts then, and MiniLM loads
on the first search), not with the Studio, and closes with it. A home that never had memory answers an empty
timeline without starting a server for it. Searches go through the policy gate as role ``operator`` (audited
to ``NAESTRO_HOME/memory/audit.jsonl``), as ``naestro memory search`` does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import JsonValue

from naestro.settings import Settings

if TYPE_CHECKING:
    from naestro.memory.fabric import Memory
    from policies.gate import Gate

__all__ = ["StudioMemory"]


class StudioMemory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opened: tuple[Memory, Gate] | None = None
        self._lock = asyncio.Lock()

    def exists(self) -> bool:
        """Memory to show: a server by URL, or a home whose embedded memory was ever written."""
        return self.settings.memory_url is not None or (self.settings.home / "memory").is_dir()

    async def _open(self) -> tuple[Memory, Gate]:
        async with self._lock:
            if self._opened is None:
                from naestro.memory.operator import open_operator_memory

                self._opened = await asyncio.to_thread(open_operator_memory, self.settings)
            return self._opened

    async def timeline(self, *, run_id: str | None, kinds: list[str], limit: int) -> dict[str, JsonValue]:
        from naestro.memory.records import EpisodeKind
        from naestro.memory.timeline import timeline_json

        if not self.exists():
            return {"enabled_for_runs": self.settings.memory, "episodes": [], "counts": {}, "runs": [],
                    "skills": []}
        allowed: tuple[EpisodeKind, ...] = ("run", "task", "verdict", "denial", "consent", "counterexample")
        wanted = [k for k in allowed if k in kinds]
        if kinds and len(wanted) != len(set(kinds)):
            raise ValueError(f"unknown episode kind in {kinds}; kinds: {', '.join(allowed)}")
        memory, _ = await self._open()
        data = await timeline_json(memory, run_id=run_id, kinds=wanted or None, limit=limit)
        return {"enabled_for_runs": self.settings.memory, **data}

    async def search(self, query: str, *, limit: int) -> list[JsonValue]:
        from naestro.memory.records import SLICES

        if not self.exists():
            return []
        memory, gate = await self._open()
        hits = await memory.recall(query, gate=gate, role="operator", task="studio", slices=SLICES, limit=limit)
        return [h.model_dump(mode="json", exclude={"plan"}) for h in hits]

    async def aclose(self) -> None:
        async with self._lock:
            if self._opened is not None:
                await self._opened[0].close()
                self._opened = None
