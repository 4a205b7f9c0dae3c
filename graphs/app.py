"""The graph ``langgraph.json`` serves: THE run graph (graphs/compile.py), the one ``naestro run`` executes.

Compiled without a checkpointer: the LangGraph server (``langgraph dev``, ``langgraph up``) brings its own, so
its threads hold the whole run (plan, tasks, report) and Studio and the SDK see every node, the state and
the consent interrupts (``Command(resume={"<interrupt id>": {"approve": true}})`` continues one). Each run also
writes its run directory in NAESTRO_HOME, so ``naestro runs show RUN`` lists it.

The runtime (models, policy, keys) is built when the server loads this module, at startup and off any
request, because building it reads files and SQLite.
"""

from __future__ import annotations

from graphs.compile import RunGraph, compile_graph
from graphs.services import RunServices
from naestro.improve.live_canary import shadow_served_runs
from naestro.runtime import build_runtime
from naestro.settings import Settings

__all__ = ["graph", "make_graph"]


def make_graph(settings: Settings | None = None) -> RunGraph:
    """The served graph; the runs it creates are the live canary's traffic as ``naestro run``'s are."""
    runtime = build_runtime(settings or Settings())
    return compile_graph(RunServices(runtime, on_created=shadow_served_runs(runtime)))


graph = make_graph()
