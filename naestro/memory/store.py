"""The ``MemoryStore`` seam and how a home opens its store.

One real default and the production backends, all Graphiti on a graph database:

- embedded: FalkorDB as a child process of this home (``memory/falkor.py``), no setup;
- ``NAESTRO_MEMORY_URL=redis://host:port`` (or ``falkor://``): a FalkorDB server;
- ``NAESTRO_MEMORY_URL=bolt://user:password@host:7687`` (or ``neo4j://``): Neo4j through the ``neo4j`` driver.
  No Neo4j server installs on this machine: that path is written against Graphiti's driver, not tested here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from naestro.errors import ConfigError
from naestro.memory.records import Episode, EpisodeKind, MemoryHit, Slice

if TYPE_CHECKING:
    from naestro.memory.embedder import MiniLM

__all__ = ["MemoryStore", "open_store"]


class MemoryStore(Protocol):
    """Where episodes live. Writes are idempotent per episode key; reads are scoped to slices (group ids)."""

    async def write(self, episodes: Sequence[Episode]) -> int:
        """Store the episodes (already redacted); the number written."""
        ...

    async def search(self, query: str, *, slices: Sequence[Slice], limit: int = 10) -> list[MemoryHit]:
        """Hybrid search (BM25 + embeddings, fused) over the episodes' facts in ``slices``, best first."""
        ...

    async def timeline(self, *, slices: Sequence[Slice], run_id: str | None = None,
                       kinds: Sequence[EpisodeKind] | None = None, limit: int = 100) -> list[MemoryHit]:
        """Episodes newest first (by valid time)."""
        ...

    async def forget(self, *, slices: Sequence[Slice], run_ids: Sequence[str] | None = None,
                     before: datetime | None = None) -> int:
        """Delete the episodes of these runs, or valid before ``before``; the number deleted."""
        ...

    async def close(self) -> None: ...


def open_store(*, data_dir: Path, url: str | None, model: MiniLM) -> MemoryStore:
    """The store a home uses: ``url`` when given, else the embedded FalkorDB under ``data_dir``. Starts nothing yet:
    the embedded server starts on the first call that needs it."""
    from naestro.memory.graph import GraphitiStore

    if url is None:
        return GraphitiStore.embedded(data_dir, model=model)
    parts = urlsplit(url)
    user, password = unquote(parts.username or "") or None, unquote(parts.password or "") or None
    if parts.scheme in ("redis", "falkor", "falkordb"):
        return GraphitiStore.falkordb(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, username=user,
                                      password=password, model=model)
    if parts.scheme in ("bolt", "neo4j", "bolt+s", "neo4j+s"):
        netloc = parts.hostname or "localhost"
        uri = f"{parts.scheme}://{netloc}:{parts.port or 7687}"
        return GraphitiStore.neo4j(uri=uri, user=user or "neo4j", password=password or "", model=model)
    raise ConfigError(f"memory URL scheme {parts.scheme!r} is not supported: use redis://host:port (FalkorDB) or "
                      "bolt://user:password@host:7687 (Neo4j)", file="NAESTRO_MEMORY_URL")
