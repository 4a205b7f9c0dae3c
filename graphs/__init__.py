"""The one static run graph (a plan is data in its state) and the graphs that langgraph.json exposes."""

from graphs.compile import compile_graph
from graphs.state import RunState, TaskRecord

__all__ = ["RunState", "TaskRecord", "compile_graph"]
