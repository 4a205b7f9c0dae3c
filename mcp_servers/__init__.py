"""Naestro's own MCP servers, one module each (``fs``, ``exec``, ``git``, ``pdf``, ``db``, ``web``, and
``naestro`` for IDE clients), plus the sandbox behind ``exec`` and the shared entry point (``workspace``).

Each runs standalone over stdio or streamable HTTP: ``naestro mcp serve NAME [--workspace DIR] [--http PORT]``
or ``python -m mcp_servers.NAME --workspace DIR``. Nothing is imported here: a server process loads
only its own module (pdf and web pull heavier libraries).
"""
