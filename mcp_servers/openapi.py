"""MCP server ``openapi``: an HTTP API described by an OpenAPI 3 document, exposed as MCP tools.

The adapter for HTTP/OpenAPI tools: one tool per operation (named by its ``operationId``), inputs from the
path/query/header parameters and the JSON request body, calls made with httpx against ``--base-url``. Keeping
it an MCP server means HTTP tools reach agents the same way as every other tool (same bus, receipts, gate).
Declare it in tools.yaml as ``NAME: {openapi: spec.yaml, base_url: "https://api.example.com"}``; the document
and the API are external, so the registry marks these tools untrusted.

Usage: ``python -m mcp_servers.openapi --spec FILE --base-url URL [--http PORT]``
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
import mcp.types as mt
import yaml
from mcp.server.fastmcp import FastMCP
from pydantic import BaseModel, ConfigDict, JsonValue

from mcp_servers.workspace import new_server, serve_server

__all__ = ["OpenApiError", "Operation", "build_openapi", "load_document", "load_operations", "main"]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
MAX_BODY_CHARS = 100_000


class OpenApiError(Exception):
    """The OpenAPI document cannot be used; the message says what is wrong where."""


class Operation(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    method: str
    path: str
    description: str
    input_schema: dict[str, Any]
    params: tuple[tuple[str, Literal["path", "query", "header"]], ...]
    has_body: bool


def _resolve(node: Any, doc: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline local ``$ref``s (``#/components/...``); a cycle is cut to an open object schema."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise OpenApiError(f"only local $refs are supported, not {ref!r}")
            if ref in seen:
                return {"type": "object"}
            target: Any = doc
            for part in ref[2:].split("/"):
                if not isinstance(target, dict) or part not in target:
                    raise OpenApiError(f"$ref {ref!r} points nowhere")
                target = target[part]
            return _resolve(target, doc, (*seen, ref))
        return {k: _resolve(v, doc, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, doc, seen) for v in node]
    return node


def load_operations(doc: dict[str, Any]) -> list[Operation]:
    if not str(doc.get("openapi", "")).startswith("3."):
        raise OpenApiError("not an OpenAPI 3 document (missing `openapi: 3.x`)")
    ops: list[Operation] = []
    for path, item in (doc.get("paths") or {}).items():
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            name = op.get("operationId") or f"{method}_{path}"
            name = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:64]
            props: dict[str, Any] = {}
            required: list[str] = []
            params: list[tuple[str, Literal["path", "query", "header"]]] = []
            for p in _resolve([*shared, *op.get("parameters", [])], doc):
                where = p.get("in")
                if where not in ("path", "query", "header"):
                    continue
                props[p["name"]] = {**p.get("schema", {}), **({"description": p["description"]}
                                                               if p.get("description") else {})}
                params.append((p["name"], where))
                if p.get("required") or where == "path":
                    required.append(p["name"])
            body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
            if body is not None:
                props["body"] = _resolve(body.get("schema", {}), doc)
                if (op.get("requestBody") or {}).get("required"):
                    required.append("body")
            text = " ".join(x for x in (op.get("summary"), op.get("description")) if x) or f"{method.upper()} {path}"
            ops.append(Operation(name=name, method=method.upper(), path=path, description=text,
                                 input_schema={"type": "object", "properties": props, "required": required},
                                 params=tuple(params), has_body=body is not None))
    if not ops:
        raise OpenApiError("the document has no operations under `paths`")
    return ops


class Response(BaseModel):
    status: int
    content_type: str
    body: JsonValue


OUTPUT_SCHEMA = Response.model_json_schema()


def build_openapi(doc: dict[str, Any], *, base_url: str, timeout_s: float = 30.0) -> FastMCP:
    ops = {op.name: op for op in load_operations(doc)}
    title = str((doc.get("info") or {}).get("title", "HTTP API"))
    mcp = new_server("openapi", instructions=f"{title} at {base_url}, one tool per operation.")
    server = mcp._mcp_server

    @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]  # untyped in the SDK
    async def list_tools() -> list[mt.Tool]:
        return [mt.Tool(name=op.name, description=op.description, inputSchema=op.input_schema,
                        outputSchema=OUTPUT_SCHEMA, annotations=_annotations(op.method)) for op in ops.values()]

    @server.call_tool()  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any] | mt.CallToolResult:
        op = ops.get(name)
        if op is None:
            return _error(f"unknown operation {name!r}; known: {', '.join(sorted(ops))}")
        path = op.path
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for pname, where in op.params:
            if pname not in arguments:
                continue
            value = arguments[pname]
            if where == "path":
                path = path.replace("{" + pname + "}", quote(str(value), safe=""))
            elif where == "query":
                query[pname] = value
            else:
                headers[pname] = str(value)
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, follow_redirects=False) as client:
                resp = await client.request(op.method, path, params=query, headers=headers,
                                            json=arguments.get("body") if op.has_body else None)
        except httpx.HTTPError as exc:
            return _error(f"{op.method} {path} failed: {exc!r}; is {base_url} reachable?")
        ctype = resp.headers.get("content-type", "").split(";")[0]
        body: JsonValue
        try:
            body = resp.json() if "json" in ctype else resp.text[:MAX_BODY_CHARS]
        except json.JSONDecodeError:
            body = resp.text[:MAX_BODY_CHARS]
        result = Response(status=resp.status_code, content_type=ctype, body=body).model_dump(mode="json")
        if resp.status_code >= 400:
            text = json.dumps(result)[:2000]
            return _error(f"{op.method} {op.path} returned HTTP {resp.status_code}: {text}")
        return result

    return mcp


def _annotations(method: str) -> mt.ToolAnnotations:
    read = method in ("GET", "HEAD", "OPTIONS")
    return mt.ToolAnnotations(readOnlyHint=read, destructiveHint=method == "DELETE",
                              idempotentHint=method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"),
                              openWorldHint=True)


def _error(message: str) -> mt.CallToolResult:
    return mt.CallToolResult(content=[mt.TextContent(type="text", text=message)], isError=True)


def load_document(spec: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(spec).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise OpenApiError(f"cannot read OpenAPI document {spec}: {exc}") from exc
    if not isinstance(data, dict):
        raise OpenApiError(f"{spec} is not an OpenAPI document")
    return data


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="naestro-mcp-openapi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, help="OpenAPI 3 document (JSON or YAML file)")
    p.add_argument("--base-url", required=True, help="where the API is served")
    p.add_argument("--http", type=int, default=None, metavar="PORT", help="serve streamable HTTP instead of stdio")
    args = p.parse_args(argv)
    try:
        server = build_openapi(load_document(args.spec), base_url=args.base_url)
    except OpenApiError as exc:
        p.error(str(exc))
    serve_server(server, http_port=args.http)


if __name__ == "__main__":
    main()
