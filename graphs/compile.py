"""Plan → LangGraph StateGraph.

Per task: ``task_<id>`` (agent or direct action) → ``check_<id>`` (acceptance) → retry or ``done_<id>``.
Tasks without deps start at START, so independent tasks share a superstep and run in parallel; a task
with several deps waits on all their ``done_`` nodes (a LangGraph join). ``report`` waits on every task.
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from naestro.context import RunContext
from naestro.graphs.state import RunState
from naestro.nodes.reporter import report_node
from naestro.nodes.task import check_node, done_node, execute_node, route_after_check
from naestro.plan import Plan

__all__ = ["build_graph", "compile_plan"]


def build_graph(plan: Plan) -> StateGraph[RunState, RunContext, RunState, RunState]:
    graph: StateGraph[RunState, RunContext, RunState, RunState] = StateGraph(RunState, context_schema=RunContext)
    for task in plan.tasks:
        run, check, done = f"task_{task.id}", f"check_{task.id}", f"done_{task.id}"
        graph.add_node(run, execute_node(task))
        graph.add_node(check, check_node(task))
        graph.add_node(done, done_node(task))
        if not task.deps:
            graph.add_edge(START, run)
        elif len(task.deps) == 1:
            graph.add_edge(f"done_{task.deps[0]}", run)
        else:
            graph.add_edge([f"done_{d}" for d in task.deps], run)
        graph.add_edge(run, check)
        graph.add_conditional_edges(check, route_after_check(task), [run, done])
    graph.add_node("report", report_node)
    graph.add_edge([f"done_{t.id}" for t in plan.tasks], "report")
    graph.add_edge("report", END)
    return graph


def compile_plan(plan: Plan, *, checkpointer: BaseCheckpointSaver[str] | None = None,
                 ) -> CompiledStateGraph[RunState, RunContext, RunState, RunState]:
    """Compile a validated plan. Pass a checkpointer for runs; none for `langgraph dev` (it brings its own)."""
    return build_graph(plan).compile(checkpointer=checkpointer, name="naestro")
