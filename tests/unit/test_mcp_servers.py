"""fs and exec over real transports (stdio and streamable HTTP): typed outputs, annotations, actionable errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mcp_servers.workspace import ServerOptions
from naestro.toolbus import McpToolBus, builtin_servers
from tests.mcp_http import http_server

DIFF = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


async def test_specs_carry_schemas_annotations_and_versions(tmp_path: Path) -> None:
    async with McpToolBus(builtin_servers(tmp_path, names=["fs", "exec"])) as bus:
        specs = {s.name: s for s in bus.specs()}
    assert {"fs.read", "fs.write", "fs.list", "fs.search", "fs.patch", "exec.run"} <= set(specs)
    assert specs["fs.read"].read_only and specs["fs.read"].annotations.read_only is True
    assert specs["fs.patch"].annotations.destructive is True and not specs["fs.patch"].read_only
    assert specs["exec.run"].output_schema is not None
    assert "exit_code" in specs["exec.run"].output_schema["properties"]  # type: ignore[operator]
    assert specs["fs.search"].server == "fs" and specs["fs.search"].trusted
    # version = server release + schema hash: tools with different schemas differ
    assert specs["fs.read"].version != specs["fs.write"].version
    assert specs["fs.read"].version.split("+")[0] == specs["exec.run"].version.split("+")[0]


async def test_fs_search_and_patch(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "notes.txt").write_text("add more tests\nnothing here\n")
    async with McpToolBus(builtin_servers(tmp_path, names=["fs"])) as bus:
        found = await bus.call("fs.search", {"pattern": "add"})
        assert found.ok and isinstance(found.structured, dict)
        assert [(m["path"], m["line"]) for m in found.structured["matches"]] == [  # type: ignore[index,union-attr]
            ("calc.py", 1), ("pkg/notes.txt", 1)]
        only_py = await bus.call("fs.search", {"pattern": r"return \w - \w", "regex": True, "glob": "*.py"})
        assert isinstance(only_py.structured, dict) and len(only_py.structured["matches"]) == 1  # type: ignore[arg-type]
        bad_rx = await bus.call("fs.search", {"pattern": "(", "regex": True})
        assert not bad_rx.ok and "invalid regex" in bad_rx.text

        applied = await bus.call("fs.patch", {"diff": DIFF})
        assert applied.ok and applied.structured == {"files": ["calc.py"]}
        assert (tmp_path / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
        # the same diff no longer applies: all or nothing, with a hint
        again = await bus.call("fs.patch", {"diff": DIFF})
        assert not again.ok and "nothing was changed" in again.text and "fs.read" in again.text
        assert (tmp_path / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
        escape = await bus.call("fs.patch", {"diff": DIFF.replace("calc.py", "../outside.py")})
        assert not escape.ok and "outside the workspace" in escape.text
        not_a_diff = await bus.call("fs.patch", {"diff": "just text"})
        assert not not_a_diff.ok and "unified diff" in not_a_diff.text
        created = await bus.call("fs.patch", {"diff": "--- /dev/null\n+++ b/new/hello.txt\n@@ -0,0 +1 @@\n+hi\n"})
        assert created.ok and (tmp_path / "new" / "hello.txt").read_text() == "hi\n"


async def test_read_only_roots(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "sub").mkdir(parents=True)
    (shared / "sub" / "t.csv").write_text("a,b\n1,2\n")
    (tmp_path / "secret.txt").write_text("no")
    ws = tmp_path / "ws"
    async with McpToolBus(builtin_servers(ws, names=["fs"], roots=[shared])) as bus:
        read = await bus.call("fs.read", {"path": str(shared / "sub" / "t.csv")})
        assert read.ok and read.text == "a,b\n1,2\n"
        listed = await bus.call("fs.list", {"path": str(shared)})
        assert isinstance(listed.structured, dict) and listed.structured["entries"] == [str(shared / "sub" / "t.csv")]
        found = await bus.call("fs.search", {"pattern": "1,2", "path": str(shared)})
        assert isinstance(found.structured, dict) and len(found.structured["matches"]) == 1  # type: ignore[arg-type]
        write = await bus.call("fs.write", {"path": str(shared / "x.txt"), "content": "no"})
        assert not write.ok and "outside the workspace" in write.text  # roots are read-only
        other = await bus.call("fs.read", {"path": str(tmp_path / "secret.txt")})
        assert not other.ok and "readable roots" in other.text
        sneaky = await bus.call("fs.read", {"path": str(shared / ".." / "secret.txt")})
        assert not sneaky.ok
    assert not (shared / "x.txt").exists()


async def test_exec_argv_list_and_string(tmp_path: Path) -> None:
    async with McpToolBus(builtin_servers(tmp_path, names=["exec"])) as bus:
        show_args = ["python3", "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME"]
        argv = await bus.call("exec.run", {"command": show_args})
        assert argv.ok and isinstance(argv.structured, dict)
        assert argv.structured["stdout"] == "['a b', '$HOME']\n"  # no shell: arguments arrive verbatim
        shell = await bus.call("exec.run", {"command": "echo $HOME | tr a-z A-Z"})
        assert isinstance(shell.structured, dict) and shell.structured["stdout"] == "/TMP/WORKSPACE\n"
        empty = await bus.call("exec.run", {"command": []})
        assert not empty.ok and "command is empty" in empty.text
        bad = await bus.call("exec.run", {"command": "true", "timeout_s": 9999})
        assert not bad.ok and "timeout_s" in bad.text


async def test_exec_says_what_to_do_about_a_module_the_sandbox_lacks(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("import pandas_nowhere\n")
    async with McpToolBus(builtin_servers(tmp_path, names=["exec"])) as bus:
        missing = await bus.call("exec.run", {"command": "python3 -c 'import pandas_nowhere.io'"})
        own = await bus.call("exec.run", {"command": "python3 -c 'import mine'"})
        absent = await bus.call("exec.run", {"command": "python3 -c 'import json'"})
    assert isinstance(missing.structured, dict) and missing.structured["exit_code"] == 1
    assert "'pandas_nowhere' is not installed" in str(missing.structured["hint"]) and "csv" in missing.text
    assert isinstance(own.structured, dict) and "not installed" in str(own.structured["hint"])
    assert isinstance(absent.structured, dict) and absent.structured["hint"] is None


async def test_exec_refuses_without_bubblewrap(tmp_path: Path) -> None:
    servers = builtin_servers(tmp_path, names=["exec"])
    servers["exec"]["env"] = {"PATH": str(tmp_path / "no-such-bin")}  # type: ignore[typeddict-unknown-key]
    async with McpToolBus(servers) as bus:
        res = await bus.call("exec.run", {"command": "touch made-unsandboxed"})
    assert not res.ok and "bwrap is not installed" in res.text and "apt-get install bubblewrap" in res.text
    assert not (tmp_path / "made-unsandboxed").exists()


async def test_bus_timeout_cancels_the_sandboxed_command(tmp_path: Path) -> None:
    marker = "987.654"  # a sleep argument no other process on the machine uses
    async with McpToolBus(builtin_servers(tmp_path, names=["exec"])) as bus:
        res = await bus.call("exec.run", {"command": ["sleep", marker], "timeout_s": 300}, timeout_s=1.0)
        assert not res.ok and res.timed_out and "cancelled" in res.text
        # the server is still usable after a cancelled call
        ok = await bus.call("exec.run", {"command": "echo alive"})
        assert isinstance(ok.structured, dict) and ok.structured["stdout"] == "alive\n"
        assert not _processes_with(marker)  # the cancel reached the server and killed the sandbox


def _processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"sleep {marker}" in line and "ps -eo" not in line]


async def test_fs_over_streamable_http(tmp_path: Path) -> None:
    with http_server("fs", ServerOptions(workspace=tmp_path)) as url:
        async with McpToolBus({"fs": {"transport": "streamable_http", "url": url}}) as bus:
            w = await bus.call("fs.write", {"path": "h.txt", "content": "over http"})
            assert w.ok and w.structured == {"path": "h.txt", "bytes": 9, "unchanged": False}
            r = await bus.call("fs.read", {"path": "h.txt"})
            assert r.ok and r.text == "over http" and r.result_bytes == 9
            esc = await bus.call("fs.read", {"path": "/etc/passwd"})
            assert not esc.ok and "outside the workspace" in esc.text
            again = await bus.call("fs.write", {"path": "h.txt", "content": "over http"})
            assert again.ok and again.structured == {"path": "h.txt", "bytes": 9, "unchanged": True}
            one = await bus.call("fs.list", {"path": "h.txt"})  # a file lists itself, as `ls FILE` does
            assert one.ok and one.structured == {"path": "h.txt", "entries": ["h.txt"]}
            gone = await bus.call("fs.list", {"path": "nope"})
            assert not gone.ok and "'nope' does not exist" in gone.text


def test_cli_lists_and_rejects_unknown_server() -> None:
    listed = subprocess.run([sys.executable, "-m", "naestro", "mcp", "list"], capture_output=True, text=True)
    assert listed.returncode == 0 and "fs" in listed.stdout.split() and "exec" in listed.stdout.split()
    bad = subprocess.run([sys.executable, "-m", "naestro", "mcp", "serve", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown server 'nope'" in bad.stderr
