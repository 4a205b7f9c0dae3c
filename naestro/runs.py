"""The run directory (HOME/runs/RUN/): run.json, plan.json, events.jsonl, report.md and the workspace.

run.json is rewritten atomically (tmp + rename) so a crash never leaves it half-written.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from naestro.errors import UnknownRun, UsageError
from naestro.homes import copy_workspace
from policies.decision import ApprovedScope, RunPolicy

RunStatus = Literal["queued", "planning", "running", "waiting", "paused", "rolled_back", "passed", "failed", "error"]


class RunRecord(BaseModel):
    run_id: str
    goal: str
    status: RunStatus
    created: str
    updated: str
    pid: int
    workspace: str
    host: str = ""  # the machine of ``pid`` ("" in records written before it was kept: this machine)
    threads: list[str] = []
    plans: list[str] = []
    plan_source: str = ""
    error: str = ""
    policy: RunPolicy = RunPolicy()
    remembered: list[ApprovedScope] = []  # consents a human approved "for the rest of the run"
    # Set by rollback / fork / replay: the checkpoint this run continues from (None: the thread's latest),
    # and a counter that keys the effect journal anew, so restored steps are really re-executed.
    head: str | None = None
    epoch: int = 0
    replay_epoch: int | None = None  # offline replay: model replies come from this epoch's journal entries
    pruned: bool = False  # checkpoints, snapshots and journal dropped by `naestro runs prune`
    served: bool = False  # executed by a LangGraph server: its thread lives in the server's checkpointer
    remote: bool = False  # executed by `naestro worker`s (naestro/distributed/): status "queued" until one takes it

    @property
    def created_at(self) -> datetime | None:
        """``created`` as a time (None for a record made without one, e.g. a bare runner's placeholder)."""
        try:
            return datetime.fromisoformat(self.created)
        except ValueError:
            return None

    def claim(self) -> None:
        """This process drives the run now (the record names it, so others can tell whether it still does)."""
        self.pid, self.host = os.getpid(), socket.gethostname()

    def alive(self) -> bool:
        """Whether the process named by the record still exists; a process on another machine cannot be checked
        from here and counts as alive (a remote run's executor is known by its lock: naestro/distributed/)."""
        if self.host and self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @property
    def display_status(self) -> str:
        if self.status in ("planning", "running") and not self.alive():
            return "interrupted"
        return self.status


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunStore:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir

    def dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def create(self, goal: str, *, source_workspace: Path | None, in_place: bool,
               policy: RunPolicy | None = None) -> RunRecord:
        if source_workspace is not None and not source_workspace.is_dir():
            raise UsageError(f"--workspace {source_workspace} is not a folder")
        run_id, run_dir = self._new_dir()
        if source_workspace is not None and in_place:
            workspace = source_workspace.resolve()
        elif source_workspace is not None:
            workspace = run_dir / "workspace"
            # The home and its runs folder left out when they lie inside the source (``--workspace .`` with the
            # default home ./.naestro): copied, the copy recursed into itself ("File name too long").
            copy_workspace(source_workspace, workspace, leave_out=(self.runs_dir, self.runs_dir.parent))
        else:
            workspace = run_dir / "workspace"
            workspace.mkdir()
        record = RunRecord(run_id=run_id, goal=goal, status="planning", created=_now(), updated=_now(),
                           pid=os.getpid(), host=socket.gethostname(), workspace=str(workspace),
                           policy=(policy or RunPolicy()).model_copy(update={"scratch": not in_place}))
        self.save(record)
        return record

    def _new_dir(self) -> tuple[str, Path]:
        """A fresh run id and its directory. Ids are the second plus 16 random bits, so runs started in the same
        second by many processes can collide (~26 % for 200 in one second): ``mkdir`` claims the id atomically,
        and a taken one is drawn again."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        while True:
            run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
            run_dir = self.dir(run_id)
            try:
                run_dir.mkdir()
            except FileExistsError:
                continue
            return run_id, run_dir

    def save(self, record: RunRecord) -> None:
        record.updated = _now()
        path = self.dir(record.run_id) / "run.json"
        # A temporary name per writer: the driver and a node's worker thread may save the same run at once, and a
        # shared name let one writer rename the other's half-written file (or find it gone).
        tmp = path.with_name(f"run.json.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(record.model_dump_json(indent=2))
        tmp.replace(path)

    def load(self, run_id: str) -> RunRecord:
        path = self.dir(run_id) / "run.json"
        if not path.exists():
            raise UnknownRun(run_id, home=str(self.runs_dir.parent))
        return RunRecord.model_validate_json(path.read_text())

    def list(self) -> list[RunRecord]:
        if not self.runs_dir.exists():
            return []
        out = [RunRecord.model_validate_json((d / "run.json").read_text())
               for d in self.runs_dir.iterdir() if (d / "run.json").exists()]
        return sorted(out, key=lambda r: r.created)
