"""Runs the LangGraph server executes (``langgraph dev`` / ``langgraph up``): answered from the CLI over its API.

The server's checkpointer holds such a run's thread, so ``naestro approve`` cannot resume it locally; it reads
the thread's interrupts and sends ``Command(resume=...)`` through langgraph-sdk, exactly as any SDK client or
Studio does, and all of them see the same state.
"""

from __future__ import annotations

from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import APIError
from langgraph_sdk.schema import Command

from naestro.errors import RunError
from naestro.runs import RunRecord
from policies.gate import ConsentAnswer

__all__ = ["ServedRun"]

ASSISTANT = "naestro"  # the graph id in langgraph.json


class ServedRun:
    def __init__(self, record: RunRecord, url: str) -> None:
        self.record, self.url = record, url
        self.thread = record.threads[-1] if record.threads else record.run_id
        self._client = get_sync_client(url=url)

    def pending(self) -> list[tuple[str, dict[str, object]]]:
        """(interrupt id, consent request) for every interrupt the thread waits on."""
        try:
            thread = self._client.threads.get(self.thread)
        except (APIError, OSError) as exc:
            raise RunError(f"LangGraph server {self.url}: {exc}; is it running? (give --server URL or set "
                           "NAESTRO_SERVER_URL)") from exc
        return [(str(i["id"]), dict(i["value"])) for waiting in (thread.get("interrupts") or {}).values()
                for i in waiting]

    def resume(self, answers: dict[str, ConsentAnswer]) -> str:
        """Resume the thread on the server and wait for it; the run's status afterwards."""
        command: Command = {"resume": {i: a.model_dump(mode="json") for i, a in answers.items()}}
        try:
            run = self._client.runs.create(self.thread, ASSISTANT, command=command)
            self._client.runs.join(self.thread, run["run_id"])
            values = self._client.threads.get_state(self.thread)["values"]
        except (APIError, OSError) as exc:
            raise RunError(f"LangGraph server {self.url}: {exc}") from exc
        status = values.get("status") if isinstance(values, dict) else None
        return str(status or "waiting")
