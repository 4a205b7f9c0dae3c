"""Where runs executed by workers stand, for every place that lists runs (`naestro runs`, the Studio, the MCP front
door): one entry point that imports the scale-out package (Celery, the locks) only when a run is remote.

It lives outside ``naestro.distributed`` (whose package imports Celery) and outside ``naestro.runs`` (which the
graph's nodes import: a lazy import of the scale-out package from there closed an import cycle through the
runner).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from naestro.distributed.status import RemoteStatus
    from naestro.runs import RunRecord
    from naestro.settings import Settings

__all__ = ["remote_statuses_of"]


def remote_statuses_of(settings: Settings, records: Sequence[RunRecord]) -> dict[str, RemoteStatus]:
    """Where each worker-executed run among ``records`` stands (issue 20: its lock tells, not run.json's pid, which
    names a process on another machine); empty, and Celery not imported, when none is."""
    if not any(r.remote for r in records):
        return {}
    from naestro.distributed.status import remote_statuses

    return remote_statuses(settings, records)
