"""Graph nodes: the planner, role agents, acceptance evaluator and reporter; one node kind per module."""
