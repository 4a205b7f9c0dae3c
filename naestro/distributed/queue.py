"""The Celery app: one queue on Redis, one task ("advance run R"), and the settings that make a lost worker cheap.

* ``acks_late`` + ``reject_on_worker_lost``: a message is acknowledged only after its task returned, so a worker
  killed mid-run leaves it unacknowledged and another worker gets it;
* prefetch 1: a worker holds no message it is not executing (a held one would wait behind a long run);
* ``visibility_timeout`` + ``unacked_restore_interval``/``_throttle``: how soon live workers put a dead worker's
  message back (FACTS.md: 95 s with kombu's defaults, 16.6 s with 2 s / 1); a run driving longer than the timeout is
  delivered again meanwhile, which the run lock (naestro/distributed/locks.py) turns into a short wait and a
  delayed re-delivery (``busy_retry_s``);
* priorities: one Redis list per step, step 0 (interactive) popped first.

``make_app`` is what clients need (publish, queue depth); ``serve_tasks`` adds the task for a worker process.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import Celery

from naestro.distributed.advance import AdvanceOutcome, AdvanceRequest, advance
from naestro.distributed.config import PRIORITY, ScaleSettings
from naestro.distributed.locks import RunLocks, open_locks
from naestro.errors import UnknownRun

if TYPE_CHECKING:
    from naestro.runner import Runner
    from naestro.settings import Settings

__all__ = ["ADVANCE", "QueueDepth", "enqueue", "make_app", "queue_depth", "serve_tasks"]

ADVANCE = "naestro.advance"
SEP = ":"
MAX_ATTEMPTS = 8
"""Unexpected failures of one run's delivery before it is left for a person (backoff 1, 2, 4 ... 60 s)."""
STEPS = sorted(set(PRIORITY.values()) | {0, 3, 6, 9})

log = logging.getLogger(__name__)


def make_app(scale: ScaleSettings) -> Celery:
    app = Celery("naestro", broker=scale.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_default_queue=scale.queue, task_ignore_result=True, task_serializer="json", accept_content=["json"],
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False, worker_redirect_stdouts=False,
        broker_transport_options={
            "visibility_timeout": scale.visibility_timeout_s, "unacked_restore_interval": scale.restore_interval_s,
            "unacked_restore_throttle": 1, "priority_steps": STEPS, "sep": SEP, "queue_order_strategy": "priority"},
    )
    return app


def enqueue(app: Celery, scale: ScaleSettings, request: AdvanceRequest, *, countdown: float | None = None) -> None:
    app.send_task(ADVANCE, args=[request.model_dump(mode="json")], queue=scale.queue,
                  priority=PRIORITY[request.priority], countdown=countdown or None)


@dataclass(frozen=True)
class QueueDepth:
    """Messages waiting per priority, and messages delivered but not yet acknowledged (runs executing or lost)."""

    waiting: dict[str, int]
    in_flight: int

    @property
    def total(self) -> int:
        return sum(self.waiting.values())


def queue_depth(app: Celery, scale: ScaleSettings) -> QueueDepth:
    names = {v: k for k, v in PRIORITY.items()}
    with app.connection_for_write() as conn:
        client: Any = conn.default_channel.client  # redis-py client of kombu's Redis channel
        waiting = {names.get(step, f"step{step}"): int(client.llen(scale.queue if step == 0 else
                                                                   f"{scale.queue}{SEP}{step}")) for step in STEPS}
        in_flight = int(client.hlen("unacked"))
    return QueueDepth(waiting={k: v for k, v in waiting.items() if k in PRIORITY or v}, in_flight=in_flight)


@dataclass
class _Executor:
    """This worker process's runner, built by its first task (a prefork child builds its own, after the fork)."""

    settings: Settings
    scale: ScaleSettings
    _runner: Runner | None = None
    _locks: RunLocks | None = field(default=None)

    def warm(self) -> tuple[Runner, RunLocks]:
        if self._runner is None or self._locks is None:
            from naestro.runner import Runner
            from naestro.runtime import build_runtime

            self._runner = Runner.of(build_runtime(self.settings))
            self._locks = open_locks(self.settings.checkpoint_url, self.settings.home)
        return self._runner, self._locks

    def run(self, request: AdvanceRequest) -> AdvanceOutcome:
        runner, locks = self.warm()
        return asyncio.run(advance(runner, locks, request, scale=self.scale))


def serve_tasks(app: Celery, settings: Settings, scale: ScaleSettings, *, warm: bool = False) -> None:
    """Register "advance run R" on ``app`` for a worker process. ``warm``: build the runner now, in this process
    (the solo pool's executor), so a broken models.yaml or policy stops the worker at start instead of failing
    every run it takes, and its first run does not wait for the imports; a prefork pool's children build theirs
    after the fork (a runtime is not shared across processes)."""
    executor = _Executor(settings, scale)
    if warm:
        executor.warm()

    @app.task(name=ADVANCE, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def advance_task(body: dict[str, Any]) -> dict[str, Any]:
        request = AdvanceRequest.model_validate(body)
        try:
            outcome = executor.run(request)
        except UnknownRun as exc:
            # The submitter created the run directory before queueing it: a worker that cannot see it does not
            # share the submitters' NAESTRO_HOME. Say so, and give the run back (counted: see MAX_ATTEMPTS).
            log.error("run %s: %s; every worker must mount the NAESTRO_HOME the submitters use (README "
                      "'Scale-out'); queued again for another worker", request.run_id, exc)
            if request.attempt >= MAX_ATTEMPTS:
                raise
            enqueue(app, scale, request.model_copy(update={"attempt": request.attempt + 1}),
                    countdown=min(60.0, 2.0 ** request.attempt))
            return {"run_id": request.run_id, "action": "unknown_run"}
        except Exception:
            # Not a Naestro error (those end in the outcome): the database or the network failed under us. The
            # message is acknowledged when a task raises, so without a new one the run would wait forever.
            if request.attempt >= MAX_ATTEMPTS:
                log.exception("run %s: giving up after %d attempts; `naestro queue kick %s` queues it again",
                              request.run_id, request.attempt + 1, request.run_id)
                raise
            log.exception("run %s: attempt %d failed; queued again", request.run_id, request.attempt + 1)
            enqueue(app, scale, request.model_copy(update={"attempt": request.attempt + 1}),
                    countdown=min(60.0, 2.0 ** request.attempt))
            return {"run_id": request.run_id, "action": "retry"}
        log.info("run %s: %s -> %s%s", outcome.run_id, outcome.action, outcome.status,
                 f" ({outcome.error})" if outcome.error else "")
        # A fresh message before this one is acknowledged: the run is never without one.
        if (delay := outcome.requeue_delay(scale)) is not None:
            enqueue(app, scale, request, countdown=delay)
        return outcome.model_dump()
