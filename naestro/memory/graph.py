"""``GraphitiStore``: the ``MemoryStore`` on graphiti-core (FalkorDB embedded or by URL, or Neo4j).

Writes build Graphiti's own node and edge types directly and save them in one bulk call per slice, with no LLM:
each episode is an ``Episodic`` node (its text is the content) and one ``RELATES_TO`` fact edge from the goal to
the most specific thing it is about (a file, a tool, a model, a skill), carrying the fact, its MiniLM embedding,
its valid time and Naestro's typed fields (run, kind, outcome, the plan); ``MENTIONS`` edges tie the episode to
every entity it names. Entity and episode ids are derived from their names and keys, so a second write of the
same run merges instead of duplicating.

Reads fuse two rankings of every fact of the slices by reciprocal rank (k=60): cosine similarity to the fact
embeddings Graphiti stored (MiniLM vectors) and BM25 over the same facts, both in this process over an index of the
graph's facts kept per graph state (one count-and-newest-write query tells when another process changed it; file and
task names split into their parts). Graphiti's cosine edge search (``method="cosine"``) returned the top 50 with
every fact's embedding in its properties, ~190 ms of CPU per question, and ranked fewer candidates than the
baseline, which was 0.08 better at recall@1 (BENCHMARKS.md). Not Graphiti's own ``search()``: on the bench's
labelled why-questions it ranked the right failure first 0.46 of the time against 0.92 for the baseline, for two
reasons found there. Its RRF uses k=1, so each list's first hit wins whatever the other list says; and its fulltext
leg (FalkorDB's RediSearch index, TF-IDF scores so coarse that most facts tie, tie order arbitrary, the group
filter's terms scored with the words) put the right failure in the top 5 only 0.67 of the time, where BM25 over the
same texts does 0.96. Fusing those two searches with k=60 still gave 0.58. ``bench.memory`` measures each of these
beside the baselines.

All slices live in one graph (``naestro_memory`` on FalkorDB, the database on Neo4j) and a slice is a group id
that every query filters on. Graphiti's FalkorDB driver would otherwise put each group id in a graph of its own and
search them one by one; their RRF scores are ranks within each graph, so merging them put every graph's first
hit first (bench.memory: recall@1 0.33 that way, against 0.92 for the same fusion over all records at once).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rank_bm25 import BM25Okapi

from naestro.errors import MemoryUnavailable
from naestro.memory._graphiti import (
    EdgeReranker,
    EdgeSearchConfig,
    EdgeSearchMethod,
    EntityEdge,
    EntityNode,
    EpisodeType,
    EpisodicEdge,
    EpisodicNode,
    GraphDriver,
    Graphiti,
    GraphProvider,
    SearchConfig,
    SearchFilters,
    add_nodes_and_edges_bulk,
    edge_fulltext_search,
    edge_similarity_search,
    rrf,
)
from naestro.memory.baseline import tokens
from naestro.memory.embedder import CosineReranker, MiniLM, MiniLMEmbedder
from naestro.memory.extraction import NoExtraction
from naestro.memory.falkor import FalkorServer, ServerInfo
from naestro.memory.records import Entity, Episode, EpisodeKind, MemoryHit, Slice, derived_uuid, group_id

__all__ = ["GraphitiStore", "SearchMethod"]

_GRAPH = "naestro_memory"
SearchMethod = Literal["fused", "fulltext", "cosine", "fulltext_k60", "graphiti"]
_RRF_K = 60  # 1/(k + rank), rank from 1: the usual constant, and the baseline's (memory/baseline.py)
_DEPTH = 50  # candidates each search contributes to the fusion (Graphiti's search() takes 2 x limit)
# FalkorDB and Neo4j score cosine as (1 + cos) / 2: a floor below 0 keeps every candidate; the fusion ranks them.
_NO_FLOOR = -1.0
# Graphiti's own search() as a bench comparison: its edge hybrid recipe (BM25 + cosine, its RRF).
_STOCK = SearchConfig(edge_config=EdgeSearchConfig(
    search_methods=[EdgeSearchMethod.bm25, EdgeSearchMethod.cosine_similarity], reranker=EdgeReranker.rrf,
    sim_min_score=0.3))
_TARGET_ORDER = ("file", "tool", "skill", "model")


def _hit(edge_attrs: dict[str, Any], *, fact: str, valid_at: datetime | None, score: float) -> MemoryHit | None:
    try:
        return MemoryHit(key=str(edge_attrs["key"]), run_id=str(edge_attrs["run_id"]), kind=edge_attrs["kind"],
                         slice=edge_attrs["slice"], valid_at=valid_at or datetime.now(UTC), text=fact,
                         outcome=edge_attrs["outcome"], score=round(score, 6), plan=edge_attrs.get("plan") or None)
    except (KeyError, ValueError):
        return None  # an edge Naestro did not write (LLM extraction, another tool): not a typed episode


class _FactIndex:
    """The graph's facts in this process: BM25 (``rank_bm25``, the baseline's tokens: file and task names split
    into their parts) and their stored embeddings as unit vectors (a fact without one is left out of cosine)."""

    def __init__(self, stamp: str, uuids: list[str], groups: list[str], hits: dict[str, MemoryHit],
                 index: BM25Okapi | None, vectors: np.ndarray, embedded: np.ndarray) -> None:
        self.stamp, self.uuids, self.groups, self.hits, self.index = stamp, uuids, groups, hits, index
        self.vectors, self.embedded = vectors, embedded

    @classmethod
    def build(cls, stamp: str, records: list[dict[str, Any]]) -> _FactIndex:
        uuids, groups, texts, hits, rows = [], [], [], {}, []
        for r in records:
            hit = _hit(r, fact=str(r["fact"]), valid_at=_parse_time(r["valid_at"]), score=0.0)
            if hit is None:
                continue
            uuids.append(str(r["uuid"]))
            groups.append(str(r["group_id"]))
            texts.append(tokens(hit.text) or ["_"])
            hits[uuids[-1]] = hit
            rows.append(r.get("embedding"))
        width = next((len(v) for v in rows if isinstance(v, list | tuple) and v), 0)
        vectors = np.zeros((len(rows), width), dtype=np.float32)
        embedded = np.zeros(len(rows), dtype=bool)
        for i, v in enumerate(rows):
            if isinstance(v, list | tuple) and len(v) == width and width:
                norm = float(np.linalg.norm(v))
                vectors[i], embedded[i] = (np.asarray(v, dtype=np.float32) / norm if norm else 0.0), norm > 0
        return cls(stamp, uuids, groups, hits, BM25Okapi(texts) if texts else None, vectors, embedded)

    def _ranked(self, scores: np.ndarray, keep: np.ndarray, groups: Sequence[str]) -> list[str]:
        wanted = set(groups)
        allowed = keep & np.array([g in wanted for g in self.groups], dtype=bool)
        order = np.argsort(-np.where(allowed, scores, -np.inf), kind="stable")
        return [self.uuids[int(i)] for i in order if allowed[i]]

    def bm25(self, query: str, groups: Sequence[str]) -> list[str]:
        """Edge uuids in ``groups`` that share a word with the query, best first."""
        if self.index is None:
            return []
        scores = np.asarray(self.index.get_scores(tokens(query)), dtype=np.float64)
        return self._ranked(scores, scores > 0, groups)

    def cosine(self, vector: Sequence[float], groups: Sequence[str]) -> list[str]:
        """Every embedded edge in ``groups``, nearest to ``vector`` first."""
        if not self.uuids or not self.vectors.shape[1]:
            return []
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        return self._ranked((self.vectors @ (query / norm if norm else query)).astype(np.float64), self.embedded,
                            groups)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class GraphitiStore:
    def __init__(self, *, connect: Callable[[ServerInfo | None], GraphDriver], model: MiniLM,
                 server: FalkorServer | None = None) -> None:
        self._connect, self.model, self.server = connect, model, server
        self._graphiti: Graphiti | None = None
        self._driver_: GraphDriver | None = None
        self._fact_index: _FactIndex | None = None

    @classmethod
    def embedded(cls, data_dir: Path, *, model: MiniLM) -> GraphitiStore:
        from graphiti_core.driver.falkordb_driver import FalkorDriver

        def connect(info: ServerInfo | None) -> GraphDriver:
            assert info is not None
            return FalkorDriver(host=info.host, port=info.port)
        return cls(connect=connect, model=model, server=FalkorServer(data_dir))

    @classmethod
    def falkordb(cls, *, host: str, port: int, username: str | None, password: str | None,
                 model: MiniLM) -> GraphitiStore:
        from graphiti_core.driver.falkordb_driver import FalkorDriver

        return cls(connect=lambda _: FalkorDriver(host=host, port=port, username=username, password=password),
                   model=model)

    @classmethod
    def neo4j(cls, *, uri: str, user: str, password: str, model: MiniLM) -> GraphitiStore:
        from graphiti_core.driver.neo4j_driver import Neo4jDriver

        return cls(connect=lambda _: Neo4jDriver(uri, user, password), model=model)

    async def graphiti(self) -> Graphiti:
        """Graphiti over the store's driver (the embedded server starts here, in a worker thread)."""
        if self._graphiti is None:
            info = await asyncio.to_thread(self.server.acquire) if self.server is not None else None
            try:  # in a worker thread: a driver made on the loop schedules index builds of its own
                driver = await asyncio.to_thread(self._connect, info)
            except Exception as exc:  # a driver's own connection errors: wrapped once, here
                raise MemoryUnavailable(reason=f"cannot connect: {exc}", hint="check NAESTRO_MEMORY_URL") from exc
            self._graphiti = Graphiti(graph_driver=driver, llm_client=NoExtraction(),
                                      embedder=MiniLMEmbedder(self.model), cross_encoder=CosineReranker(self.model))
        return self._graphiti

    async def _driver(self) -> GraphDriver:
        """The driver bound to memory's graph, its indices built once per process."""
        if self._driver_ is None:
            base = (await self.graphiti()).driver
            falkor = base.provider == GraphProvider.FALKORDB
            driver = await asyncio.to_thread(base.clone, database=_GRAPH) if falkor else base
            await driver.build_indices_and_constraints()
            self._driver_ = driver
        return self._driver_

    # --- writing -------------------------------------------------------------------------------------------

    async def write(self, episodes: Sequence[Episode]) -> int:
        by_group: dict[str, list[Episode]] = {}
        for ep in episodes:
            by_group.setdefault(group_id(ep.slice), []).append(ep)
        embedder = MiniLMEmbedder(self.model)
        driver = await self._driver()
        for group, eps in by_group.items():
            facts = await self.model.aencode([ep.text for ep in eps])
            nodes: dict[str, EntityNode] = {}
            episodic, mentions, edges = [], [], []
            for ep, vector in zip(eps, facts, strict=True):
                entities = {e.uuid(group): e for e in ep.entities}
                for uid, ent in entities.items():
                    nodes.setdefault(uid, EntityNode(uuid=uid, name=ent.name, group_id=group,
                                                     labels=[ent.kind.capitalize()], summary="",
                                                     attributes={"kind": ent.kind}))
                source = ep.entities[0] if ep.entities else Entity(kind="goal", name=ep.run_id)
                nodes.setdefault(source.uuid(group), EntityNode(uuid=source.uuid(group), name=source.name,
                                                                group_id=group, labels=["Goal"],
                                                                attributes={"kind": "goal"}))
                target = next((e for kind in _TARGET_ORDER for e in ep.entities if e.kind == kind), source)
                edge = EntityEdge(
                    uuid=derived_uuid(ep.key, "fact"), group_id=group,
                    source_node_uuid=source.uuid(group), target_node_uuid=target.uuid(group),
                    name=f"{ep.kind}_{ep.outcome}".upper(), fact=ep.text, fact_embedding=[float(x) for x in vector],
                    episodes=[ep.uuid], created_at=datetime.now(UTC), valid_at=ep.valid_at,
                    attributes={"key": ep.key, "run_id": ep.run_id, "kind": ep.kind, "outcome": ep.outcome,
                                "slice": ep.slice, "role": ep.role or "", "task": ep.task or "",
                                "plan": ep.plan or ""})
                edges.append(edge)
                episodic.append(EpisodicNode(
                    uuid=ep.uuid, name=ep.key, group_id=group, source=EpisodeType.text,
                    source_description=f"naestro {ep.kind} {ep.outcome}", content=ep.text, valid_at=ep.valid_at,
                    created_at=datetime.now(UTC), entity_edges=[edge.uuid]))
                mentions += [EpisodicEdge(uuid=derived_uuid(ep.key, "mentions", uid), group_id=group,
                                          source_node_uuid=ep.uuid, target_node_uuid=uid, created_at=datetime.now(UTC))
                             for uid in entities]
            names = await self.model.aencode([n.name for n in nodes.values()])  # one batch, not a call per node
            for node, name_vector in zip(nodes.values(), names, strict=True):
                node.name_embedding = [float(x) for x in name_vector]
            await add_nodes_and_edges_bulk(driver, episodic, mentions, list(nodes.values()), edges, embedder)
        return len(episodes)

    # --- reading -------------------------------------------------------------------------------------------

    async def search(self, query: str, *, slices: Sequence[Slice], limit: int = 10,
                     method: SearchMethod = "fused") -> list[MemoryHit]:
        """Graphiti's cosine edge search and BM25 over the same facts, fused by reciprocal rank (k=60).

        ``method`` is for the bench (see the module doc): ``fulltext`` and ``cosine`` are Graphiti's two edge
        searches alone, ``fulltext_k60`` fuses those two with k=60, ``graphiti`` is Graphiti's own ``search()``."""
        if not slices:
            return []
        driver = await self._driver()
        groups = [group_id(s) for s in slices]
        vector: list[float] = []
        if method != "fulltext":
            vector = [float(x) for x in (await self.model.aencode([query.replace("\n", " ")]))[0]]
        if method == "graphiti":
            return await self._graphiti_search(query, vector, groups, limit)
        depth = max(_DEPTH, 2 * limit)
        ranked: list[list[str]] = []
        edges: dict[str, MemoryHit] = {}
        if method in ("fulltext", "fulltext_k60"):
            found = await edge_fulltext_search(driver, query, SearchFilters(), groups, depth)
            ranked.append([e.uuid for e in found])
            edges |= {e.uuid: h for e in found if (h := _hit(e.attributes, fact=e.fact, valid_at=e.valid_at,
                                                            score=0.0)) is not None}
        if method == "fused":  # every fact of the slices, ranked twice in this process (as the baseline does)
            facts = await self._facts()
            ranked += [facts.bm25(query, groups), facts.cosine(vector, groups)]
            edges |= facts.hits
        if method in ("cosine", "fulltext_k60"):
            found = await edge_similarity_search(driver, vector, None, None, SearchFilters(), groups, depth,
                                                 _NO_FLOOR)
            ranked.append([e.uuid for e in found])
            edges |= {e.uuid: h for e in found if e.uuid not in edges and (h := _hit(
                e.attributes, fact=e.fact, valid_at=e.valid_at, score=0.0)) is not None}
        uuids, scores = rrf(ranked, rank_const=_RRF_K + 1)
        if method == "fused":  # equal sums (A first in one list, B in the other) go to the nearer in meaning
            nearest = {u: i for i, u in enumerate(ranked[-1])}
            order = sorted(range(len(uuids)), key=lambda i: (-round(scores[i], 12), nearest.get(uuids[i], len(uuids))))
            uuids, scores = [uuids[i] for i in order], [scores[i] for i in order]
        hits = [edges[u].model_copy(update={"score": round(score, 6)}) for u, score in zip(uuids, scores, strict=True)
                if u in edges]
        return hits[:limit]

    async def _facts(self) -> _FactIndex:
        """The BM25 index of every typed fact in the graph, rebuilt when the graph changed (another process may
        have written or forgotten): a count and the newest write time tell, in one aggregate query."""
        driver = await self._driver()
        result = await driver.execute_query(
            "MATCH ()-[e:RELATES_TO]->() WHERE e.kind IS NOT NULL RETURN count(e) AS n, max(e.created_at) AS t")
        stamp = str([dict(r) for r in result[0]]) if result else ""
        if self._fact_index is None or self._fact_index.stamp != stamp:
            rows = await driver.execute_query(
                "MATCH ()-[e:RELATES_TO]->() WHERE e.kind IS NOT NULL RETURN e.uuid AS uuid, e.group_id AS group_id,"
                " e.fact AS fact, e.valid_at AS valid_at, e.key AS key, e.run_id AS run_id, e.kind AS kind,"
                " e.slice AS slice, e.outcome AS outcome, e.plan AS plan, e.fact_embedding AS embedding")
            records = [dict(r) for r in rows[0]] if rows else []
            self._fact_index = await asyncio.to_thread(_FactIndex.build, stamp, records)
        return self._fact_index

    async def _graphiti_search(self, query: str, vector: list[float], groups: list[str],
                               limit: int) -> list[MemoryHit]:
        from graphiti_core.search.search import search

        graphiti = await self.graphiti()
        config = _STOCK.model_copy(update={"limit": limit})
        found = await search(graphiti.clients, query, groups, config, SearchFilters(), query_vector=vector,
                             driver=await self._driver())
        scores = found.edge_reranker_scores or [0.0] * len(found.edges)
        hits = [_hit(edge.attributes, fact=edge.fact, valid_at=edge.valid_at, score=score)
                for edge, score in zip(found.edges, scores, strict=False)]
        return [h for h in hits if h is not None][:limit]

    async def _rows(self, groups: list[str], where: str, limit: int, **params: Any) -> list[dict[str, Any]]:
        driver = await self._driver()
        result = await driver.execute_query(
            "MATCH ()-[e:RELATES_TO]->() WHERE e.group_id IN $groups AND e.kind IS NOT NULL " + where +
            " RETURN e.fact AS fact, e.valid_at AS valid_at, e.key AS key, e.run_id AS run_id, e.kind AS kind,"
            " e.slice AS slice, e.outcome AS outcome, e.plan AS plan, e.episodes AS episodes"
            " ORDER BY e.valid_at DESC LIMIT $limit", groups=groups, limit=limit, **params)
        if not result:
            return []
        records, _, _ = result
        return [dict(r) for r in records]

    async def timeline(self, *, slices: Sequence[Slice], run_id: str | None = None,
                       kinds: Sequence[EpisodeKind] | None = None, limit: int = 100) -> list[MemoryHit]:
        where = (" AND e.run_id = $run_id" if run_id else "") + (" AND e.kind IN $kinds" if kinds else "")
        rows = await self._rows([group_id(s) for s in slices], where, limit, run_id=run_id, kinds=list(kinds or []))
        hits = [_hit(row, fact=str(row["fact"]), valid_at=_parse_time(row["valid_at"]), score=0.0) for row in rows]
        return sorted((h for h in hits if h is not None), key=lambda h: h.valid_at, reverse=True)[:limit]

    async def forget(self, *, slices: Sequence[Slice], run_ids: Sequence[str] | None = None,
                     before: datetime | None = None) -> int:
        """Deletes the matching facts, their episodes, and entities no fact touches any more."""
        if run_ids is None and before is None:
            raise ValueError("forget needs run ids or a time")
        groups = [group_id(s) for s in slices]
        driver = await self._driver()
        if run_ids is not None:
            rows = await self._rows(groups, " AND e.run_id IN $runs", 1_000_000, runs=list(run_ids))
        else:
            # Compared here, not in Cypher: FalkorDB 4.x answered `WHERE e.valid_at < $t` with every row when a
            # range index covers valid_at (the same comparison in RETURN was right).
            rows = [r for r in await self._rows(groups, "", 1_000_000)
                    if (t := _parse_time(r["valid_at"])) is not None and before is not None and t < before]
        if not rows:
            return 0
        episodes = [u for r in rows for u in (r.get("episodes") or [])]
        keys = [str(r["key"]) for r in rows]
        await driver.execute_query("MATCH ()-[e:RELATES_TO]->() WHERE e.group_id IN $groups AND e.key IN $keys "
                                   "DELETE e", groups=groups, keys=keys)
        await driver.execute_query("MATCH (n:Episodic) WHERE n.group_id IN $groups AND n.uuid IN $uuids "
                                   "DETACH DELETE n", groups=groups, uuids=episodes)
        await driver.execute_query("MATCH (n:Entity) WHERE n.group_id IN $groups AND NOT (n)-[:RELATES_TO]-() "
                                   "DETACH DELETE n", groups=groups)
        return len(rows)

    async def close(self) -> None:
        if self._graphiti is not None:
            await self._graphiti.driver.close()  # type: ignore[no-untyped-call]
            self._graphiti, self._driver_ = None, None
        if self.server is not None:
            await asyncio.to_thread(self.server.release)

    def describe(self) -> dict[str, Any]:
        return {"backend": "falkordb-embedded" if self.server else "url",
                **(self.server.status() if self.server else {})}


def plan_of(hit: MemoryHit) -> dict[str, Any] | None:
    if not hit.plan:
        return None
    try:
        plan = json.loads(hit.plan)
    except json.JSONDecodeError:
        return None
    return plan if isinstance(plan, dict) else None
