"""Issue 14: the git server only ever opens the workspace's own repository and work tree.

Real git server over stdio (git inside the real bubblewrap sandbox), real repositories. The sandbox sees the
host's filesystem read-only except /tmp and the home folders, so the project's own checkout (this repository)
is what a hostile ``.git`` could reach; the tests point at it and at a repository next to the workspace.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import JsonValue

from naestro.toolbus import McpToolBus, ToolResult, builtin_servers

REPO = Path(__file__).resolve().parents[2]
SUBJECT = "naestro-other-repo-subject-41c9"


def structured(res: ToolResult) -> dict[str, JsonValue]:
    assert res.ok, res.text
    assert isinstance(res.structured, dict)
    return res.structured


@pytest.fixture
def other_repo(tmp_path: Path) -> Path:
    """A repository next to the workspace, with one commit whose subject no workspace repository has."""
    repo = tmp_path / "other"
    repo.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "o", "GIT_AUTHOR_EMAIL": "o@x.invalid",
           "GIT_COMMITTER_NAME": "o", "GIT_COMMITTER_EMAIL": "o@x.invalid"}
    for argv in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", SUBJECT]):
        subprocess.run(["git", *argv], cwd=repo, env=env, check=True)
    return repo / ".git"


async def test_gitfile_pointing_outside_is_refused_without_echoing_it(tmp_path: Path, other_repo: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    async with McpToolBus(builtin_servers(ws, names=["git"])) as bus:
        for target in (REPO / ".git", other_repo):
            (ws / ".git").write_text(f"gitdir: {target}\n")
            for tool in ("git.log", "git.status", "git.diff", "git.init"):
                res = await bus.call(tool, {})
                assert not res.ok, (tool, target, res.text)
                assert "outside the workspace" in res.text and str(target) not in res.text, res.text
        (ws / ".git").write_text("token=sk-very-secret-value\n")
        for tool in ("git.status", "git.init"):
            garbage = await bus.call(tool, {})
            assert not garbage.ok and "not a gitfile" in garbage.text and "sk-very-secret" not in garbage.text
    assert (ws / ".git").read_text() == "token=sk-very-secret-value\n"  # git.init did not replace it


async def test_git_dir_and_its_links_must_stay_inside(tmp_path: Path, other_repo: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".git").symlink_to(REPO / ".git")
    async with McpToolBus(builtin_servers(ws, names=["git"])) as bus:
        linked = await bus.call("git.log", {})
        (ws / ".git").unlink()
        structured(await bus.call("git.init", {}))
        (ws / ".git" / "objects" / "info" / "alternates").write_text(f"{REPO / '.git' / 'objects'}\n")
        alternates = await bus.call("git.log", {})
        (ws / ".git" / "objects" / "info" / "alternates").unlink()
        (ws / ".git" / "packed-refs").symlink_to(other_repo / "packed-refs")
        symlink_inside = await bus.call("git.status", {})
        (ws / ".git" / "packed-refs").unlink()
        fine = structured(await bus.call("git.status", {}))
    for res in (linked, alternates, symlink_inside):
        assert not res.ok and "outside the workspace" in res.text, res.text
        assert str(REPO) not in res.text and str(other_repo) not in res.text
    assert fine["clean"] is True


async def test_core_worktree_cannot_move_the_work_tree(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_text("x = 1\n")
    async with McpToolBus(builtin_servers(ws, names=["git"])) as bus:
        structured(await bus.call("git.init", {}))
        with (ws / ".git" / "config").open("a") as config:
            config.write(f"[core]\n\tworktree = {REPO}\n")
        st = structured(await bus.call("git.status", {}))
    assert st["entries"] == [{"path": "a.py", "index": "?", "worktree": "?"}]


async def test_inherited_git_environment_is_ignored(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    servers = builtin_servers(ws, names=["git"])
    servers["git"]["env"] = {  # type: ignore[typeddict-unknown-key]
        "PATH": os.environ["PATH"], "GIT_DIR": str(REPO / ".git"), "GIT_WORK_TREE": str(REPO)}
    async with McpToolBus(servers) as bus:
        status = await bus.call("git.status", {})
        log = await bus.call("git.log", {})
    assert not status.ok and "call git.init first" in status.text
    assert log.ok and log.structured == {"commits": []}


async def test_git_path_arguments_are_confined_and_nul_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "out").symlink_to(tmp_path)
    async with McpToolBus(builtin_servers(ws, names=["git"])) as bus:
        structured(await bus.call("git.init", {}))
        calls: list[tuple[str, dict[str, JsonValue], str]] = [
            ("git.diff", {"paths": ["a\0b"]}, "NUL byte"),
            ("git.log", {"path": "\0"}, "NUL byte"),
            ("git.diff", {"against": "HEAD\0"}, "NUL byte"),
            ("git.commit", {"message": "m\0m"}, "NUL byte"),
            ("git.init", {"branch": "ma\0in"}, "NUL byte"),
            ("git.diff", {"paths": ["../x"]}, "paths '../x' resolves outside the workspace"),
            ("git.diff", {"paths": ["out/x"]}, "paths 'out/x' resolves outside the workspace"),
            ("git.log", {"path": str(REPO)}, f"path '{REPO}' resolves outside the workspace"),
            ("git.commit", {"message": "m", "paths": ["/etc/passwd"]}, "paths '/etc/passwd' resolves outside"),
        ]
        for tool, args, expected in calls:
            res = await bus.call(tool, args)
            assert not res.ok and expected in res.text and "embedded null byte" not in res.text, (tool, res.text)
        nothing = structured(await bus.call("git.status", {}))
    assert nothing["entries"] == [{"path": "out", "index": "?", "worktree": "?"}]  # nothing was staged
