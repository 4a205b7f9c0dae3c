"""Model routing: which endpoint serves each call (rules, a Thompson-sampling bandit, or a cascade that escalates
from the small to the large model when a cheap check fails), health, re-route on failure.

The router sits between a model call and the endpoints of models.yaml; see ``route.py`` for the rules.
"""

from naestro.router.bandit import (
    ArmStats,
    BanditStore,
    MemoryBanditStore,
    PostgresBanditStore,
    SqliteBanditStore,
    ThompsonBandit,
    open_store,
)
from naestro.router.cascade import Cascade, Thresholds
from naestro.router.feedback import OutcomeFeed
from naestro.router.health import HealthBoard
from naestro.router.model_call import complete_json_routed, request_for
from naestro.router.route import (
    NoRoute,
    RouteDecision,
    Router,
    RouteRequest,
    build_router,
    classify_failure,
    estimate_tokens,
)

__all__ = [
    "ArmStats",
    "BanditStore",
    "Cascade",
    "HealthBoard",
    "MemoryBanditStore",
    "NoRoute",
    "OutcomeFeed",
    "PostgresBanditStore",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "SqliteBanditStore",
    "ThompsonBandit",
    "Thresholds",
    "build_router",
    "classify_failure",
    "complete_json_routed",
    "estimate_tokens",
    "open_store",
    "request_for",
]
