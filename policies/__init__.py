"""Rego policies and the policy-engine seam (issue 4). Nothing here yet: tool calls are not gated so far."""
