"""Model routing: which endpoint serves each call (rules + Thompson-sampling bandit), health, re-route on failure.

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
    "build_router",
    "classify_failure",
    "complete_json_routed",
    "estimate_tokens",
    "open_store",
    "request_for",
]
