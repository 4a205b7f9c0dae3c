"""The baseline memory: hybrid BM25 + MiniLM over run records, in this process, with no database.

Built from the same episodes the graph gets (``harvest.episodes_of_run`` over ``NAESTRO_HOME/runs``), so it answers
"why did X fail" from the run files alone, and it is what the bench holds Graphiti's search against: BM25 alone,
vectors alone (a plain vector store) and both fused by reciprocal rank (RRF, k=60, as Graphiti fuses).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from rank_bm25 import BM25Okapi

from naestro.memory.embedder import MiniLM, Vectors
from naestro.memory.harvest import episodes_of_run
from naestro.memory.records import Episode, MemoryHit, Slice
from naestro.memory.retention import redacted

__all__ = ["Mode", "RecordIndex", "tokens"]

Mode = Literal["hybrid", "bm25", "vector"]
_TOKEN = re.compile(r"[a-z0-9]+(?:[._][a-z0-9]+)*")
_RRF_K = 60


def tokens(text: str) -> list[str]:
    """Words, plus the parts of dotted and snake_case names (``fib.py`` → fib.py, fib, py)."""
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        out.append(tok)
        parts = re.split(r"[._]", tok)
        if len(parts) > 1:
            out += parts
    return out


@dataclass
class RecordIndex:
    """Episodes, their BM25 index and unit vectors; rebuilt whole by ``add`` (small: thousands of records)."""

    model: MiniLM
    episodes: list[Episode] = field(default_factory=list)
    _bm25: BM25Okapi | None = None
    _vectors: Vectors | None = None

    @classmethod
    def from_runs(cls, runs_dir: Path, *, model: MiniLM) -> RecordIndex:
        index = cls(model)
        runs = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
        index.add(e for run in runs for e in episodes_of_run(run))
        return index

    def add(self, episodes: Iterable[Episode]) -> None:
        known = {e.key for e in self.episodes}
        fresh = [redacted(e) for e in episodes if e.key not in known]
        if not fresh:
            return
        vectors = self.model.encode([e.text for e in fresh])
        self.episodes += fresh
        self._vectors = vectors if self._vectors is None else np.vstack([self._vectors, vectors])
        self._bm25 = BM25Okapi([tokens(e.text) or ["_"] for e in self.episodes])

    def search(self, query: str, *, slices: Sequence[Slice] | None = None, limit: int = 10,
               mode: Mode = "hybrid") -> list[MemoryHit]:
        if not self.episodes or self._bm25 is None or self._vectors is None:
            return []
        allowed = np.array([slices is None or e.slice in slices for e in self.episodes])
        ranked: list[np.ndarray] = []
        if mode in ("hybrid", "bm25"):
            scores = np.asarray(self._bm25.get_scores(tokens(query)), dtype=np.float64)
            scores[scores <= 0] = -np.inf  # no shared word: not a BM25 match at all
            ranked.append(scores)
        if mode in ("hybrid", "vector"):
            ranked.append((self._vectors @ self.model.encode([query])[0]).astype(np.float64))
        fused = np.zeros(len(self.episodes))
        for scores in ranked:
            scores = np.where(allowed, scores, -np.inf)
            order = np.argsort(-scores, kind="stable")
            ranks = np.empty(len(order), dtype=np.float64)
            ranks[order] = np.arange(len(order))
            fused += np.where(np.isfinite(scores), 1.0 / (_RRF_K + ranks + 1), 0.0)
        best = [int(i) for i in np.argsort(-fused, kind="stable")[:limit] if fused[i] > 0]
        return [MemoryHit(key=e.key, run_id=e.run_id, kind=e.kind, slice=e.slice, valid_at=e.valid_at, text=e.text,
                          outcome=e.outcome, score=round(float(fused[i]), 6), plan=e.plan)
                for i in best for e in (self.episodes[i],)]
