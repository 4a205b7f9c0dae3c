"""Where a run executed by workers stands, told truthfully from any machine.

run.json says what the run last did and names the process that last took it (``pid`` on ``host``); only the run's
lock (naestro/distributed/locks.py) says whether a worker drives it *now*: a worker holds it for the whole drive
and loses it with its process. A process id on another machine cannot be checked from here, and the submitting
CLI's pid says nothing once a worker has the run, so neither decides.

    queued                           submitted, no worker has taken it yet
    planning|running on HOST:PID     a worker holds the run's lock and drives it
    queued again (HOST:PID stopped)  run.json says running, nobody holds the lock: its worker died; the message
                                     comes back after NAESTRO_VISIBILITY_TIMEOUT_S (else `naestro queue kick`)
    waiting for consent              ended its delivery asking; `naestro approve RUN` queues the continuation
    passed | failed | error | ...    as run.json says
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from naestro.distributed.locks import open_locks, run_keys
from naestro.errors import ConfigError

if TYPE_CHECKING:
    from naestro.runs import RunRecord
    from naestro.settings import Settings

__all__ = ["RemoteStatus", "remote_statuses"]

DRIVING = ("planning", "running")


@dataclass(frozen=True)
class RemoteStatus:
    """``status``: run.json's, except "queued" for a run that no worker drives though it says it runs;
    ``worker``: ``HOST:PID`` of the worker driving it now; ``text``: one line for tables."""

    status: str
    worker: str | None
    text: str


def remote_statuses(settings: Settings, records: Sequence[RunRecord]) -> dict[str, RemoteStatus]:
    """The status of each remote run among ``records`` (local runs are left out: ``display_status`` tells them)."""
    remote = [r for r in records if r.remote]
    driving = [r for r in remote if r.status in DRIVING]
    held: set[str] | None = set()
    problem = ""
    if driving:
        try:
            held = open_locks(settings.checkpoint_url, settings.home).held(
                [k for r in driving for k in run_keys(r.run_id)])
        except ConfigError as exc:
            held, problem = None, str(exc)
    out: dict[str, RemoteStatus] = {}
    for r in remote:
        worker = f"{r.host or '?'}:{r.pid}"
        if r.status == "queued":
            out[r.run_id] = RemoteStatus("queued", None, "queued")
        elif r.status == "waiting":
            out[r.run_id] = RemoteStatus("waiting", None, "waiting for consent")
        elif r.status not in DRIVING:
            out[r.run_id] = RemoteStatus(r.status, None, r.status)
        elif held is None:
            out[r.run_id] = RemoteStatus(r.status, None, f"{r.status} on {worker}? ({problem})")
        elif run_keys(r.run_id)[0] in held:
            out[r.run_id] = RemoteStatus(r.status, worker, f"{r.status} on {worker}")
        else:
            out[r.run_id] = RemoteStatus("queued", None, f"queued again ({worker} stopped)")
    return out
