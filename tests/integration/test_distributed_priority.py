"""Issue 20, priority for interactive runs: the order in which a real Celery worker takes "advance run R" messages
off the real Redis queue (the README's claim was checked only as "which list a message lands in").

Three batch runs are queued, then an interactive one (a new run from the CLI or the API, or an approval's
continuation): a worker started afterwards takes the interactive run first, then the batch runs in the order they
were queued. The messages are the ones ``enqueue`` publishes, on an app with ``make_app``'s broker settings
(priority steps, prefetch 1, late acknowledgement), consumed by Celery's own worker (solo pool, in a thread). The
task under the worker records what it was given and does nothing else: what ``advance`` does with a message is
tested in test_distributed_locks.py and test_distributed.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from naestro.distributed import AdvanceRequest, ScaleSettings, enqueue, make_app, queue_depth
from naestro.distributed.queue import ADVANCE
from tests.redis_queue import own_queue


@pytest.fixture
def scale() -> Iterator[ScaleSettings]:
    """A queue of this test's own on the shared Redis index (its keys are deleted, nothing else is)."""
    with own_queue("hb-priority") as settings:
        yield settings


def test_a_worker_takes_an_interactive_run_before_batch_runs_queued_earlier(scale: ScaleSettings) -> None:
    app = make_app(scale)
    taken: list[tuple[str, str]] = []
    all_taken = threading.Event()
    batch = [AdvanceRequest(run_id=f"20990101-00000{i}-b0b0", priority="batch", tenant="nightly") for i in range(3)]
    urgent = AdvanceRequest(run_id="20990101-000009-a0a0", priority="interactive", tenant="ann")

    @app.task(name=ADVANCE, acks_late=True)  # type: ignore[untyped-decorator]
    def record(body: dict[str, Any]) -> None:
        taken.append((body["run_id"], body["priority"]))
        if len(taken) == len(batch) + 1:
            all_taken.set()

    for request in [*batch, urgent]:
        enqueue(app, scale, request)
    assert queue_depth(app, scale).waiting == {"interactive": 1, "batch": 3}

    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=60):
        assert all_taken.wait(timeout=600), f"the worker took only {taken}"
    assert taken == [(urgent.run_id, "interactive"), *((r.run_id, "batch") for r in batch)]
    assert queue_depth(app, scale).total == 0
