"""Memory across runs (issue 19): typed episodes of past runs on Graphiti (embedded FalkorDB, or FalkorDB / Neo4j
by URL), recalled through the policy gate; the Planner's reuse of plans that passed; induced skills.

Importing this package loads neither graphiti nor torch: they load when a store is opened (``Memory.open``).
"""

from naestro.memory.fabric import Memory, readable_slices
from naestro.memory.records import SLICES, Entity, Episode, MemoryHit, Slice
from naestro.memory.retention import Retention
from naestro.memory.skills import Skill, SkillBook, SkillSafety
from naestro.memory.store import MemoryStore, open_store
from naestro.memory.timeline import timeline_json

__all__ = ["SLICES", "Entity", "Episode", "Memory", "MemoryHit", "MemoryStore", "Retention", "Skill", "SkillBook",
           "SkillSafety", "Slice", "open_store", "readable_slices", "timeline_json"]
