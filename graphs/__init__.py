"""Plan → LangGraph compiler and the graphs that langgraph.json exposes."""

from naestro.graphs.compile import compile_plan
from naestro.graphs.state import RunState, TaskRecord

__all__ = ["RunState", "TaskRecord", "compile_plan"]
