"""The OpenAPI adapter: an HTTP API (a real local server) described by an OpenAPI 3 document becomes MCP tools,
declared in tools.yaml next to MCP servers and listed in the registry as adapter `openapi`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from mcp_servers.openapi import OpenApiError, load_operations
from naestro.errors import ConfigError
from naestro.toolbus import McpToolBus
from naestro.tools import ToolsConfig, build_registry, load_tools_config, run_servers

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Shop", "version": "1"},
    "paths": {
        "/items/{item_id}": {
            "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"operationId": "getItem", "summary": "One item by id.",
                    "parameters": [{"name": "fields", "in": "query", "schema": {"type": "string"}}]},
            "delete": {"operationId": "deleteItem", "summary": "Delete an item."},
        },
        "/items": {"post": {"operationId": "createItem", "summary": "Create an item.", "requestBody": {
            "required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}},
    },
    "components": {"schemas": {"Item": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "qty": {"type": "integer"}}}}},
}


class Api(BaseHTTPRequestHandler):
    items: ClassVar[dict[str, dict[str, object]]] = {"a 1": {"name": "bolt", "qty": 3}}

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(self.path)
        key = unquote(parts.path.removeprefix("/items/"))
        if key in self.items:
            self.reply(200, {**self.items[key], "query": parts.query})
        else:
            self.reply(404, {"error": f"no item {key}"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.items[body["name"]] = body
        self.reply(201, {"created": body["name"]})


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_operations_from_the_document() -> None:
    ops = {op.name: op for op in load_operations(SPEC)}
    assert set(ops) == {"getItem", "deleteItem", "createItem"}
    assert ops["getItem"].input_schema["required"] == ["item_id"]
    assert ops["createItem"].input_schema["properties"]["body"]["required"] == ["name"]  # $ref inlined
    with pytest.raises(OpenApiError, match="OpenAPI 3"):
        load_operations({"swagger": "2.0"})


async def test_openapi_tools_are_callable_and_registered(api: str, tmp_path: Path) -> None:
    spec = tmp_path / "shop.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    config = ToolsConfig.model_validate({"servers": {"shop": {"openapi": str(spec), "base_url": api}}})
    servers, untrusted = run_servers(tmp_path, config)
    async with McpToolBus({"shop": servers["shop"]}, untrusted=untrusted) as bus:
        specs = {s.name: s for s in bus.specs()}
        assert specs["shop.getItem"].annotations.read_only is True and not specs["shop.getItem"].trusted
        assert specs["shop.deleteItem"].annotations.destructive is True
        got = await bus.call("shop.getItem", {"item_id": "a 1", "fields": "qty"})
        assert got.ok and got.structured == {"status": 200, "content_type": "application/json",
                                             "body": {"name": "bolt", "qty": 3, "query": "fields=qty"}}
        made = await bus.call("shop.createItem", {"body": {"name": "nut", "qty": 5}})
        assert made.ok and isinstance(made.structured, dict) and made.structured["status"] == 201
        missing = await bus.call("shop.getItem", {"item_id": "zzz"})
        assert not missing.ok and "HTTP 404" in missing.text and "no item zzz" in missing.text
        invalid = await bus.call("shop.createItem", {"body": {"qty": 1}})
        assert not invalid.ok and "'name' is a required property" in invalid.text
    registry = await build_registry(tmp_path, config, roles={})
    entry = registry.get("shop.getItem")
    assert entry.adapter == "openapi" and entry.transport == "stdio" and not entry.trusted
    assert registry.get("fs.read").adapter == "mcp"


def test_openapi_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "tools.yaml"
    bad.write_text(yaml.safe_dump({"servers": {"shop": {"openapi": "x.yaml"}}}))
    with pytest.raises(ConfigError, match="`openapi` and `base_url` go together"):
        load_tools_config(bad)
