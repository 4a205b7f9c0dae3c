"""graphiti-core, imported with its process-wide switches set first.

graphiti reads ``EMBEDDING_DIM`` when its embedder module is imported (the zero vector of a text-less search has
that length; MiniLM's is 384) and sends anonymous telemetry to a hosted service unless
``GRAPHITI_TELEMETRY_ENABLED`` is false (this machine has no network; a user's machine should not phone home
because Naestro uses memory). Every Naestro module imports graphiti through here, so both hold before it loads.
"""

from __future__ import annotations

import os

os.environ.setdefault("EMBEDDING_DIM", "384")
os.environ["GRAPHITI_TELEMETRY_ENABLED"] = "false"

from graphiti_core import Graphiti
from graphiti_core.cross_encoder.client import CrossEncoderClient
from graphiti_core.driver.driver import GraphDriver, GraphProvider
from graphiti_core.edges import EntityEdge, EpisodicEdge
from graphiti_core.embedder.client import EmbedderClient
from graphiti_core.nodes import EntityNode, EpisodeType, EpisodicNode
from graphiti_core.search.search_config import (
    EdgeReranker,
    EdgeSearchConfig,
    EdgeSearchMethod,
    SearchConfig,
)
from graphiti_core.search.search_filters import SearchFilters
from graphiti_core.search.search_utils import edge_fulltext_search, edge_similarity_search, rrf
from graphiti_core.utils.bulk_utils import add_nodes_and_edges_bulk

__all__ = ["CrossEncoderClient", "EdgeReranker", "EdgeSearchConfig", "EdgeSearchMethod", "EmbedderClient",
           "EntityEdge", "EntityNode", "EpisodeType", "EpisodicEdge", "EpisodicNode", "GraphDriver", "GraphProvider",
           "Graphiti", "SearchConfig", "SearchFilters", "add_nodes_and_edges_bulk", "edge_fulltext_search",
           "edge_similarity_search", "rrf"]
