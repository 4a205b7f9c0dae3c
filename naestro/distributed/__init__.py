"""Scale-out (issue 20): runs executed by Celery workers on a Redis queue, sharing the Postgres checkpointer.

One process → N machines by setting two URLs (``NAESTRO_CHECKPOINT_URL``, ``NAESTRO_BROKER_URL``) and sharing
NAESTRO_HOME (run directories, journals, audit keys). ``naestro worker`` executes "advance run R" messages,
``naestro serve`` / ``naestro run --remote`` / ``naestro approve`` queue them. See README "Scale-out (issue 20)".
"""

from naestro.distributed.advance import AdvanceOutcome, AdvanceRequest, advance
from naestro.distributed.config import ScaleSettings
from naestro.distributed.locks import FileLocks, PostgresLocks, RunLocks, open_locks
from naestro.distributed.queue import QueueDepth, enqueue, make_app, queue_depth, serve_tasks
from naestro.distributed.submit import QueueFull, RemoteRun, Submitter, remote_run

__all__ = ["AdvanceOutcome", "AdvanceRequest", "FileLocks", "PostgresLocks", "QueueDepth", "QueueFull",
           "RemoteRun", "RunLocks", "ScaleSettings", "Submitter", "advance", "enqueue", "make_app", "open_locks",
           "queue_depth", "remote_run", "serve_tasks"]
