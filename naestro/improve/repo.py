"""The local git repository of Naestro's own config (issue 21): role prompts, router priors, tool adapter configs
and the golden counter-examples, under ``NAESTRO_HOME/improve/config.git``.

A bare repository driven with git's plumbing (hash-object, a throwaway index, write-tree, commit-tree,
update-ref): a self-PR is a branch made without any checkout, and ``main`` moves only by a compare-and-swap
``update-ref``, so two loops racing on one home cannot both merge onto the same parent. Nothing reads a working
tree: what runs use is the exported, signed release (naestro/improve/active.py).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from naestro.errors import UsageError

__all__ = ["ConfigRepo", "GitFailed", "seed_files"]

MAIN = "refs/heads/main"
_IDENTITY = ("-c", "user.name=naestro-improve", "-c", "user.email=improve@naestro.invalid",
             "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main")


class GitFailed(UsageError):
    """A git command failed on the config repository; ``command`` and ``stderr`` say which and why."""

    def __init__(self, *, command: list[str], stderr: str) -> None:
        self.command, self.stderr = command, stderr
        super().__init__(f"git {' '.join(command)} failed: {stderr.strip()[:400]}")


def seed_files() -> dict[str, str]:
    """What a new config repository starts with: the packaged role prompts, no learned priors, version 0.1.0."""
    roles = resources.files("nodes").joinpath("roles.yaml").read_text()
    return {"roles.yaml": roles, "router/priors.yaml": "[]\n", "VERSION": "0.1.0\n",
            "CHANGELOG.md": "# Changelog of Naestro's self-improved config\n\n## 0.1.0\n\n- seeded from the packaged "
                            "nodes/roles.yaml\n"}


@dataclass(frozen=True)
class ConfigRepo:
    path: Path  # the bare repository (HOME/improve/config.git)

    @classmethod
    def open(cls, path: Path, *, seed: dict[str, str] | None = None) -> ConfigRepo:
        """Open the repository, creating it with ``seed`` (default: ``seed_files()``) on ``main`` the first time."""
        repo = cls(path)
        if not (path / "HEAD").exists():
            path.mkdir(parents=True, exist_ok=True)
            repo._git("init", "--bare", "--quiet", str(path), bare_init=True)
            commit = repo.commit(None, seed if seed is not None else seed_files(), "seed the config repository")
            repo.update_ref(MAIN, commit, None)
        return repo

    def _git(self, *args: str, stdin: str | None = None, index: Path | None = None, bare_init: bool = False
             ) -> str:
        command = [*_IDENTITY, *args] if bare_init else [*_IDENTITY, f"--git-dir={self.path}", *args]
        # The inherited environment carries PATH/HOME; GIT_DIR-like variables of a caller must not redirect us.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        # Bytes, decoded as UTF-8 here: text mode would translate newlines and use the locale's encoding.
        proc = subprocess.run(["git", *command], input=None if stdin is None else stdin.encode(),
                              capture_output=True, env=env, check=False)
        if proc.returncode != 0:
            raise GitFailed(command=list(args), stderr=proc.stderr.decode(errors="replace"))
        return proc.stdout.decode()

    # --- reading --------------------------------------------------------------------------------------------

    def rev(self, ref: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip() or None
        except GitFailed:
            return None

    def files(self, ref: str) -> dict[str, str]:
        """Every file of the tree at ``ref`` as text."""
        names = [n for n in self._git("ls-tree", "-r", "-z", "--name-only", ref).split("\0") if n]
        return {n: self.show(ref, n) or "" for n in names}

    def show(self, ref: str, path: str) -> str | None:
        try:
            return self._git("show", f"{ref}:{path}")
        except GitFailed:
            return None

    def branches(self, prefix: str = "improve/") -> list[str]:
        out = self._git("for-each-ref", "--format=%(refname:short)", f"refs/heads/{prefix}")
        return [line for line in out.splitlines() if line]

    def log(self, ref: str = MAIN, *, limit: int = 20) -> list[tuple[str, str]]:
        """(commit, subject), newest first."""
        out = self._git("log", f"--max-count={limit}", "--format=%H%x09%s", ref)
        return [(c, s) for c, _, s in (line.partition("\t") for line in out.splitlines() if line)]

    def diff(self, old: str, new: str) -> str:
        return self._git("diff", "--no-color", old, new)

    # --- writing --------------------------------------------------------------------------------------------

    def commit(self, base: str | None, changes: Mapping[str, str | None], message: str, *,
               parents: tuple[str, ...] | None = None) -> str:
        """A commit of ``base``'s tree with ``changes`` (path → text, None deletes); no ref moves.

        ``parents`` defaults to ``(base,)``. A throwaway index keeps the repository's own untouched."""
        with tempfile.TemporaryDirectory(prefix="naestro-improve-") as tmp:
            index = Path(tmp) / "index"
            if base is not None:
                self._git("read-tree", base, index=index)
            # --index-info: mode 0 removes an entry; works in a bare repository (--force-remove needs a work tree)
            lines = [f"0 {'0' * 40}\t{path}" if text is None else
                     f"100644 {self._git('hash-object', '-w', '--stdin', stdin=text).strip()}\t{path}"
                     for path, text in sorted(changes.items())]
            if lines:
                self._git("update-index", "--index-info", stdin="\n".join(lines) + "\n", index=index)
            tree = self._git("write-tree", index=index).strip()
        heads = parents if parents is not None else ((base,) if base is not None else ())
        args = ["commit-tree", tree]
        for p in heads:
            args += ["-p", p]
        return self._git(*args, "-F", "-", stdin=message).strip()

    def update_ref(self, ref: str, new: str, old: str | None) -> None:
        """Move ``ref`` to ``new`` only if it still points at ``old`` (None: only if it does not exist yet)."""
        self._git("update-ref", ref, new, old if old is not None else "0" * 40)

    def delete_ref(self, ref: str) -> None:
        self._git("update-ref", "-d", ref)

    def tag(self, name: str, commit: str) -> None:
        self._git("tag", name, commit)
