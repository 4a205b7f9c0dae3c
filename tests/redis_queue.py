"""A Celery queue of one test's own on the machine's shared Redis (database index 5): its keys are deleted before
and after, nothing else is, so tests that queue runs do not see each other's messages."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import redis

from naestro.distributed import ScaleSettings

REDIS_URL = "redis://127.0.0.1:6379/5"


@contextlib.contextmanager
def own_queue(prefix: str) -> Iterator[ScaleSettings]:
    """Scale settings naming a queue ``PREFIX-PID`` (with its priority lists, steps 3/6/9) on ``REDIS_URL``."""
    queue = f"{prefix}-{os.getpid()}"
    broker = redis.Redis.from_url(REDIS_URL)
    keys = [queue, *(f"{queue}:{step}" for step in (3, 6, 9))]
    broker.delete(*keys)
    try:
        yield ScaleSettings(broker_url=REDIS_URL, queue=queue)
    finally:
        broker.delete(*keys)
        broker.close()
