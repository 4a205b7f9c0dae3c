"""Issue 14, exec: what a command inside ``exec.run`` must not be or see: host root, root's files, the server's
environment, NAESTRO_HOME (the audit signing key, other runs), the host's sockets. The real exec server with
real bubblewrap, driven by a real MCP client over an in-memory transport."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from pydantic import JsonValue

from mcp_servers.exec import build
from mcp_servers.workspace import ServerOptions
from naestro.settings import Settings
from policies.audit import load_signing_key


@asynccontextmanager
async def exec_client(workspace: Path, home: Path) -> AsyncIterator[ClientSession]:
    workspace.mkdir(parents=True, exist_ok=True)
    server = build(ServerOptions(workspace=workspace), settings=Settings(home=home))
    async with create_connected_server_and_client_session(server) as client:
        yield client


async def run(client: ClientSession, command: list[str] | str, **limits: JsonValue) -> dict[str, Any]:
    res = await client.call_tool("run", {"command": command, **limits})
    assert not res.isError, res.content
    assert isinstance(res.structuredContent, dict)
    return res.structuredContent


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A folder the sandbox's private /tmp does not cover, as NAESTRO_HOME usually is (``./.naestro``)."""
    folder = Path("/var/tmp") / f"naestro-containment-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


async def test_command_is_not_root_and_root_files_stay_closed(tmp_path: Path) -> None:
    marker = Path.home() / f".naestro-containment-{uuid.uuid4().hex[:8]}"
    marker.write_text("s3cret")
    try:
        async with exec_client(tmp_path / "ws", tmp_path / "home") as client:
            who = await run(client, "id -u; id -g; cat /etc/shadow; ls -A /root")
            # what the sandbox user must still be able to do: write the workspace, run Python, pytest and git
            work = await run(client, "echo made > made.txt && printf 'def test_ok():\\n    assert True\\n' > "
                                     "test_ok.py && python3 -m pytest -q -p no:cacheprovider test_ok.py && "
                                     "git init -q && git add made.txt && git -c user.name=t -c user.email=t@t "
                                     "commit -qm first && git log --format=%s")
    finally:
        marker.unlink()
    uid, gid, *_ = str(who["stdout"]).split("\n")
    assert uid != "0" and gid != "0"
    assert "root:" not in str(who["stdout"]) and "/etc/shadow: Permission denied" in str(who["stderr"])
    listed = set(str(who["stdout"]).split("\n")[2:]) - {""}
    # /root is an empty tmpfs; only the interpreter's folder comes back when Python is installed under it (pyenv)
    python_homes = {Path(p).relative_to("/root").parts[0] for p in {sys.prefix, sys.base_prefix}
                    if p.startswith("/root/")}
    assert listed <= python_homes and marker.name not in listed
    assert work["exit_code"] == 0, work
    assert "1 passed" in str(work["stdout"]) and str(work["stdout"]).endswith("first\n")
    made, ws = (tmp_path / "ws" / "made.txt").stat(), (tmp_path / "ws").stat()
    assert (tmp_path / "ws" / "made.txt").read_text() == "made\n"
    # written through the id-mapped workspace: on the host the file belongs to the workspace's owner
    assert (made.st_uid, made.st_gid) == (ws.st_uid, ws.st_gid)
    if os.geteuid() == 0:
        assert who["runs_as"] == "nobody" and uid == "65534"


async def test_server_environment_does_not_reach_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As when an IDE client starts `naestro mcp serve exec` with its own keys in the environment.
    secret = f"sk-naestro-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("NAESTRO_TEST_SECRET", secret)
    async with exec_client(tmp_path / "ws", tmp_path / "home") as client:
        res = await run(client, "env; cat /proc/1/environ /proc/$PPID/environ 2>/dev/null | tr '\\0' '\\n'")
    out = str(res["stdout"])
    assert secret not in out and "NAESTRO_TEST_SECRET" not in out
    assert "HOME=/tmp/workspace" in out.split("\n") and any(line.startswith("PATH=") for line in out.split("\n"))


async def test_naestro_home_is_hidden(tmp_path: Path, outside_tmp: Path) -> None:
    home = outside_tmp / ".naestro"
    load_signing_key(home / "keys")  # the audit key pair, as the runner creates it
    (home / "runs" / "other-run").mkdir(parents=True)
    async with exec_client(tmp_path / "ws", home) as client:
        res = await run(client, f"ls -A {home} {home}/keys; cat {home}/keys/audit_ed25519.pub")
    assert "audit_ed25519" not in str(res["stdout"]) and "BEGIN PUBLIC KEY" not in str(res["stdout"])
    assert "other-run" not in str(res["stdout"]) and "keys/audit_ed25519.pub: No such file" in str(res["stderr"])


async def test_naestro_home_inside_the_workspace_is_hidden_there_too(outside_tmp: Path) -> None:
    # `naestro run --in-place` in a project that holds its own .naestro
    project = outside_tmp / "project"
    load_signing_key(project / ".naestro" / "keys")
    (project / "main.py").write_text("print('hi')\n")
    async with exec_client(project, project / ".naestro") as client:
        res = await run(client, f"ls -A /tmp/workspace/.naestro {project}/.naestro; python3 main.py")
    assert "keys" not in str(res["stdout"]) and "hi" in str(res["stdout"])


async def test_home_of_a_run_workspace_is_hidden_without_settings(tmp_path: Path, outside_tmp: Path) -> None:
    # The tool bus starts the server without NAESTRO_HOME: the run's workspace says where the home is.
    home = outside_tmp / "elsewhere-home"
    load_signing_key(home / "keys")
    workspace = home / "runs" / "run-1" / "workspace"
    async with exec_client(workspace, tmp_path / "unrelated-home") as client:
        res = await run(client, f"ls -A {home}; echo ok > out.txt")
    assert str(res["stdout"]) == "" and (workspace / "out.txt").read_text() == "ok\n"


async def test_host_sockets_are_hidden(tmp_path: Path) -> None:
    async with exec_client(tmp_path / "ws", tmp_path / "home") as client:
        res = await run(client, "ls -A /run /var/run")
    assert res["exit_code"] == 0 and str(res["stdout"]).split() == ["/run:", "/var/run:"], res
