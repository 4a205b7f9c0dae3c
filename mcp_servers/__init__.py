"""Naestro's own MCP servers. Each is runnable standalone over stdio:
``python -m naestro.mcp_servers.fs --workspace DIR`` / ``python -m naestro.mcp_servers.exec --workspace DIR``."""
