"""The Studio mounted in the LangGraph server (langgraph.json `http.app` -> studio/api.py:app), on the same port
as the LangGraph API: the UI page, a served run in the runs list, and its consent interrupt answered through the
Studio's route (which resumes it through the server's own API, as `naestro approve --server` does)."""

from __future__ import annotations

import httpx
from langgraph_sdk import get_client

from tests.integration.test_served_graph import _start_until_consent, server  # noqa: F401  (the fixture)


async def test_the_mounted_studio_shows_a_served_run_and_answers_its_consent(
        server: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    url, _ = server
    client = get_client(url=url)
    thread_id, run_id = await _start_until_consent(client)
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "Naestro Studio" in page.text
        asset = page.text.split('src="./')[1].split('"')[0]
        assert (await http.get(f"/{asset}")).status_code == 200
        assert (await http.get("/naestro/info")).json()["actions"] is False
        [row] = [r for r in (await http.get("/naestro/runs")).json() if r["run_id"] == run_id]
        assert row["served"] is True and row["status"] == "waiting"
        [request] = (await http.get(f"/naestro/runs/{run_id}/pending")).json()
        assert request["action"] == "exec.run"
        answered = await http.post(f"/naestro/runs/{run_id}/consent",
                                   json={"consent_id": request["id"], "approve": True, "by": "mounted"})
        assert answered.json() == {"status": "passed"}, answered.text
    state = await client.threads.get_state(thread_id)
    assert state["values"]["status"] == "passed" and "approved by mounted (studio)" in state["values"]["report"]
