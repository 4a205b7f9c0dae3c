"""What the gate tells the policy: resolved paths (incl. diff targets and symlinks) and classified URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.server.fastmcp.exceptions import ToolError

from mcp_servers.sandbox_path import unaliased
from mcp_servers.workspace import ServerOptions, confine, confine_read
from policies.facts import path_facts, url_facts


def test_paths_are_resolved_through_dotdot_and_symlinks(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "out").symlink_to("/etc")
    facts = path_facts({"path": "sub/../../x", "out_dir": "out/cron.d", "paths": ["a", "/abs"], "text": "sub"}, ws)
    assert [(f.arg, f.resolved) for f in facts] == [
        ("path", str(tmp_path / "x")), ("out_dir", "/etc/cron.d"), ("paths", str(ws / "a")), ("paths", "/abs")]


def test_diff_targets_are_paths(tmp_path: Path) -> None:
    diff = ("--- a/src/x.py\n+++ b/src/x.py\n@@ -1 +1 @@\n-a\n+b\n"
            "--- /dev/null\n+++ b/../../etc/cron.d/evil\n@@ -0,0 +1 @@\n+x\n")
    facts = path_facts({"diff": diff}, tmp_path / "ws")
    assert [f.resolved for f in facts] == [str(tmp_path / "ws/src/x.py"), str(tmp_path.parent / "etc/cron.d/evil")]


def test_urls_are_classified() -> None:
    by_host = {f.host: f for f in url_facts({"url": "http://LOCALHOST:8080/x", "a": "https://10.1.2.3/",
                                             "b": "https://[::1]/", "c": "file:///etc/passwd", "d": "not a url"})}
    assert set(by_host) == {"localhost", "10.1.2.3", "::1", ""}
    assert by_host["localhost"].loopback and by_host["localhost"].private and not by_host["localhost"].ip
    assert by_host["10.1.2.3"].ip and by_host["10.1.2.3"].private and by_host["10.1.2.3"].addresses == ["10.1.2.3"]
    assert by_host["::1"].ip and by_host["::1"].loopback
    assert by_host[""].scheme == "file"


def test_the_sandbox_path_of_the_workspace_is_the_workspace(tmp_path: Path) -> None:
    # exec.run mounts the workspace at /tmp/workspace and pytest prints it; an agent copying it reaches the same
    # files through fs.* and the gate (issue-22 slice), and nothing more: `..` still leaves and is denied.
    ws = tmp_path / "ws"
    ws.mkdir()
    facts = path_facts({"path": "/tmp/workspace/test_calc.py", "paths": ["/tmp/workspace", "/tmp/workspace/../etc",
                                                                         "/tmp/workspaces/x"]}, ws)
    assert [f.resolved for f in facts] == [str(ws / "test_calc.py"), str(ws), str(tmp_path / "etc"),
                                           "/tmp/workspaces/x"]
    assert confine(ws, "/tmp/workspace/a/b.txt") == ws / "a" / "b.txt"
    assert confine_read(ServerOptions(workspace=ws, roots=(tmp_path / "docs",)), "/tmp/workspace/") == ws
    with pytest.raises(ToolError, match="resolves outside the workspace"):
        confine(ws, "/tmp/workspace/../../etc/passwd")
    assert unaliased("/tmp/workspace2/x") == "/tmp/workspace2/x" and unaliased("tmp/workspace/x") == "tmp/workspace/x"
