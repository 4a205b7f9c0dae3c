"""The graph `langgraph.json` exposes to `langgraph dev`: goal in, a full Naestro run out.

Exported compiled WITHOUT a checkpointer (the LangGraph server brings its own). The per-plan graphs are
built at run time (the plan is not known when the server loads this module), so this outer graph runs
the Runner, which compiles the plan and checkpoints it in Naestro's own store (resumable with
`naestro resume RUN`).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph

from naestro.endpoints import load_registry
from naestro.llm import EndpointProvider
from naestro.runner import Runner
from naestro.settings import Settings


class ServeState(TypedDict):
    goal: str
    run_id: NotRequired[str]
    status: NotRequired[str]
    report: NotRequired[str]


async def run_goal(state: ServeState) -> ServeState:
    settings = Settings()
    runner = Runner(settings, EndpointProvider(load_registry(settings.models_file), settings))
    result = await runner.start(state["goal"])
    return {"goal": state["goal"], "run_id": result.record.run_id, "status": result.record.status,
            "report": result.report_path.read_text() if result.report_path.exists() else ""}


def build() -> StateGraph[ServeState, None, ServeState, ServeState]:
    graph: StateGraph[ServeState, None, ServeState, ServeState] = StateGraph(ServeState)
    graph.add_node("run_goal", run_goal)
    graph.add_edge(START, "run_goal")
    graph.add_edge("run_goal", END)
    return graph


graph = build().compile(name="naestro")
