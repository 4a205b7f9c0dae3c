"""Issue 14: the fs server and the gate keep every path argument (globs, symlinks, patch headers) in its roots.

Real fs server over stdio, real files and symlinks, real ``git apply``, the real gate facts and Rego policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import JsonValue

from naestro.toolbus import McpToolBus, ToolResult, builtin_servers
from nodes.roles import load_roles
from policies.decision import Mode, RunPolicy
from policies.engines import PolicyBundle, RegorusEngine, load_bundle
from policies.facts import diff_targets, path_facts
from policies.gate import Gate
from policies.switches import KillSwitches

MARKER = "naestro-outside-marker-7f3a"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace next to an outside folder holding a secret file and a folder with another secret."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "src").mkdir(parents=True)
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text(f"{MARKER} secret\n")
    (outside / "dir" / "inner.txt").write_text(f"{MARKER} inner\n")
    (ws / "src" / "a.py").write_text("print('hello')\n")
    return ws, outside


def matches(res: ToolResult) -> list[str]:
    assert res.ok, res.text
    assert isinstance(res.structured, dict) and isinstance(res.structured["matches"], list)
    return [str(m["path"]) for m in res.structured["matches"]]  # type: ignore[index,call-overload]


async def test_search_glob_cannot_climb_out_of_the_workspace(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    async with McpToolBus(builtin_servers(ws, names=["fs"])) as bus:
        up = await bus.call("fs.search", {"pattern": MARKER, "path": ".", "glob": "../outside/secret.txt"})
        deep = await bus.call("fs.search", {"pattern": MARKER, "glob": "../" * 12 + str(outside)[1:] + "/*"})
        absolute = await bus.call("fs.search", {"pattern": MARKER, "glob": str(outside / "*.txt")})
        fine = await bus.call("fs.search", {"pattern": "hello", "glob": "src/*.py"})
    for res in (up, deep, absolute):
        assert not res.ok and "glob" in res.text and "'..'" in res.text
        assert MARKER not in res.text
    assert matches(fine) == ["src/a.py"]


async def test_search_and_list_do_not_follow_symlinks_out(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "leak.txt").symlink_to(outside / "secret.txt")
    (ws / "leakdir").symlink_to(outside / "dir")
    (ws / "alias.py").symlink_to(ws / "src" / "a.py")  # a link that stays inside is fine
    async with McpToolBus(builtin_servers(ws, names=["fs"])) as bus:
        everywhere = await bus.call("fs.search", {"pattern": MARKER})
        into_dir = await bus.call("fs.search", {"pattern": MARKER, "glob": "leakdir/*"})
        listed = await bus.call("fs.list", {})
        inside = await bus.call("fs.search", {"pattern": "hello"})
    assert matches(everywhere) == [] and matches(into_dir) == []
    assert isinstance(listed.structured, dict)
    assert listed.structured["entries"] == ["alias.py", "src/a.py"]
    assert matches(inside) == ["alias.py", "src/a.py"]


async def test_read_list_and_write_refuse_symlinks_out(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "leak.txt").symlink_to(outside / "secret.txt")
    (ws / "leakdir").symlink_to(outside / "dir")
    (ws / "dangling.txt").symlink_to(outside / "created-through-link.txt")
    async with McpToolBus(builtin_servers(ws, names=["fs"])) as bus:
        read = await bus.call("fs.read", {"path": "leak.txt"})
        listed = await bus.call("fs.list", {"path": "leakdir"})
        overwrite = await bus.call("fs.write", {"path": "leak.txt", "content": "pwned"})
        create = await bus.call("fs.write", {"path": "dangling.txt", "content": "pwned"})
        below = await bus.call("fs.write", {"path": "leakdir/new.txt", "content": "pwned"})
    for res in (read, listed, overwrite, create, below):
        assert not res.ok and "outside the workspace" in res.text and MARKER not in res.text
    assert (outside / "secret.txt").read_text() == f"{MARKER} secret\n"
    assert not (outside / "created-through-link.txt").exists() and not (outside / "dir" / "new.txt").exists()


async def test_patch_refuses_symlink_and_gitlink_modes(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    link = (f"diff --git a/link b/link\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/link\n"
            f"@@ -0,0 +1 @@\n+{outside / 'secret.txt'}\n\\ No newline at end of file\n")
    async with McpToolBus(builtin_servers(ws, names=["fs"])) as bus:
        res = await bus.call("fs.patch", {"diff": link})
        gitlink = await bus.call("fs.patch", {"diff": link.replace("120000", "160000")})
    assert not res.ok and "symlink" in res.text and "120000" in res.text
    assert not gitlink.ok and "160000" in gitlink.text
    assert not (ws / "link").is_symlink()


async def test_patch_refuses_renames_and_copies_from_outside(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "a.txt").write_text("hi\n")
    edit = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-hi\n+ho\n"
    copy = (f"{edit}diff --git a/stolen.txt b/stolen.txt\nsimilarity index 100%\n"
            f"copy from {outside / 'secret.txt'}\ncopy to stolen.txt\n")
    rename = (f"{edit}diff --git a/taken.txt b/taken.txt\nsimilarity index 100%\n"
              f"rename from {outside / 'secret.txt'}\nrename to taken.txt\n")
    out = "diff --git a/a.txt b/a.txt\nsimilarity index 100%\nrename from a.txt\nrename to ../moved.txt\n"
    header_only = "diff --git a/../escape.txt b/../escape.txt\nnew file mode 100644\nindex 0000000..e69de29\n"
    async with McpToolBus(builtin_servers(ws, names=["fs"])) as bus:
        results = [await bus.call("fs.patch", {"diff": d}) for d in (copy, rename, out, header_only)]
        plain_rename = await bus.call("fs.patch", {
            "diff": "diff --git a/a.txt b/b.txt\nsimilarity index 100%\nrename from a.txt\nrename to b.txt\n"})
    for res in results:
        assert not res.ok and "diff" in res.text and "outside the workspace" in res.text, res.text
    assert (outside / "secret.txt").read_text() == f"{MARKER} secret\n"
    assert not (ws / "stolen.txt").exists() and not (ws / "taken.txt").exists()
    assert plain_rename.ok, plain_rename.text  # a rename inside the workspace still applies
    assert plain_rename.structured == {"files": ["a.txt", "b.txt"]}
    assert (ws / "b.txt").read_text() == "hi\n" and not (ws / "a.txt").exists()


async def test_nul_bytes_in_paths_are_tool_errors(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    async with McpToolBus(builtin_servers(ws, names=["fs"])) as bus:
        calls = [("fs.read", {"path": "src/a.py\0.txt"}), ("fs.write", {"path": "x\0y", "content": "z"}),
                 ("fs.list", {"path": "src\0"}), ("fs.search", {"pattern": "x", "path": "\0"}),
                 ("fs.search", {"pattern": "x", "glob": "*.py\0"}),
                 ("fs.patch", {"diff": "--- /dev/null\n+++ b/n\0ul.txt\n@@ -0,0 +1 @@\n+x\n"})]
        results = [await bus.call(tool, args) for tool, args in calls]
    for (tool, _args), res in zip(calls, results, strict=True):
        assert not res.ok and "NUL byte" in res.text, (tool, res.text)
        assert "embedded null byte" not in res.text


def test_diff_targets_include_git_headers_and_moves() -> None:
    diff = ('diff --git "a/sp ace\\t.txt" "b/sp ace\\t.txt"\n--- "a/sp ace\\t.txt"\n+++ "b/sp ace\\t.txt"\n'
            "diff --git a/old name.txt b/old name.txt\n"
            "diff --git a/x b/y\nsimilarity index 90%\nrename from x\nrename to /abs/y\ncopy from ../c\ncopy to d\n"
            "--- a/z.py\t2024-01-01 00:00:00\n+++ /dev/null\n")
    assert diff_targets(diff) == ["sp ace\t.txt", "z.py", "old name.txt", "x", "y", "/abs/y", "../c", "d"]
    assert diff_targets("--- calc.py\n+++ calc.py\n") == ["calc.py"]  # -p0: nothing stripped


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle(roles={r.value: list(s.tools) for r, s in load_roles().items()})


def decide(bundle: PolicyBundle, ws: Path, tool: str, arguments: dict[str, JsonValue], *,
           mode: Mode = "guide") -> tuple[bool, list[str]]:
    """What the real gate input and the real policy say (guide mode by default: the strictest, reads allowed)."""
    gate = Gate(RegorusEngine(bundle), run_id="r", workspace=ws, policy=RunPolicy(mode=mode), audit=None,
                switches=KillSwitches(ws.parent / "control.sqlite"), registered=lambda: {tool},
                rate_limits=bundle.data["naestro"]["rate_limits"])
    decision = gate.decide(gate.tool_input(task="t", role="reviewer", tool=tool, arguments=arguments))
    return decision.allow, decision.reasons


def test_gate_resolves_globs_under_the_search_path(bundle: PolicyBundle, layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    ws = ws.resolve()
    allowed, reasons = decide(bundle, ws, "fs.search", {"pattern": "root:x:0", "path": ".",
                                                        "glob": "../../../../../../../../etc/passwd"})
    assert not allowed and reasons == ["glob: path resolves to /etc/passwd, outside the workspace and allowed roots"]
    allowed, reasons = decide(bundle, ws, "fs.search", {"pattern": "x", "glob": "src/*/../../../y"})
    assert not allowed and "glob has a '..' part after a wildcard" in reasons[0]
    assert decide(bundle, ws, "fs.search", {"pattern": "x", "path": "src", "glob": "**/*.py"})[0]

    facts = path_facts({"pattern": "root:x:0", "path": "src", "glob": "../../outside/*.txt"}, ws)
    assert [(f.arg, f.resolved, f.problem) for f in facts] == [
        ("path", str(ws / "src"), None), ("glob", str(outside.resolve()), None)]
    climbing = path_facts({"glob": "**/../../x"}, ws)
    assert climbing[0].problem is not None and "'..' part after a wildcard" in climbing[0].problem


def test_gate_denies_nul_bytes_instead_of_crashing(bundle: PolicyBundle, layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    facts = path_facts({"path": "a\0b", "paths": ["ok.txt", "\0"], "glob": "*\0"}, ws)
    assert [(f.arg, f.problem) for f in facts] == [
        ("path", "path contains a NUL byte"), ("paths", None), ("paths", "path contains a NUL byte"),
        ("glob", "path contains a NUL byte")]
    for arguments in ({"path": "src/a.py\0"}, {"pattern": "x", "glob": "*.py\0"}):
        allowed, reasons = decide(bundle, ws, "fs.read", arguments)
        assert not allowed and len(reasons) == 1 and reasons[0].endswith(": path contains a NUL byte")


def test_gate_sees_every_patch_target(bundle: PolicyBundle, layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    diff = (f"--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-hi\n+ho\ndiff --git a/s.txt b/s.txt\nsimilarity index 100%\n"
            f"copy from {outside / 'secret.txt'}\ncopy to s.txt\n")
    assert [f.resolved for f in path_facts({"diff": diff}, ws.resolve())] == [
        str(ws.resolve() / "a.txt"), str(ws.resolve() / "s.txt"), str((outside / "secret.txt").resolve())]
    allowed, reasons = decide(bundle, ws, "fs.patch", {"diff": diff}, mode="copilot")
    assert not allowed and reasons == [f"diff: path resolves to {(outside / 'secret.txt').resolve()}, outside the "
                                       f"workspace and allowed roots"]
