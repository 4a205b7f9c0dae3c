"""The one static run graph (a plan is data in its state) and the graphs that langgraph.json exposes.

Nothing is imported here: ``nodes`` import ``graphs.state`` and ``graphs.compile`` imports ``nodes``, so a package
``__init__`` that imported ``compile`` made ``import nodes.goal_checks`` (or any node module first) a cycle.
Import ``graphs.compile.compile_graph`` and ``graphs.state`` directly.
"""
