"""Hostile inputs and a booby-trapped workspace for the issue-14 fuzz tests (tests/unit/test_containment_fuzz.py).

A ``World`` is a workspace next to a sentinel folder it must never touch. The workspace holds links into the
sentinel (a file, a folder, a dangling name, a PDF, the very file names ``pdf.tables`` writes), a link loop and a
git repository; the sentinel holds marked secrets and a repository of its own. ``World.outside()`` fingerprints
everything under the world's root except the workspace, so a test can tell whether a call created, changed or
deleted anything outside it.

Every escape the strategies try lands under the world's root: absolute paths name the root, and climbs that go
further up end in the root's own absolute path (``..`` stops at ``/``). A broken confinement therefore shows in
the fingerprint instead of writing to /etc.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hypothesis import strategies as st
from pydantic import JsonValue

MARKER = "naestro-fuzz-outside-5d1c"
"""In every sentinel file and nowhere in the strategies: seeing it in a read tool's output is a leak."""

GitLayout = Literal["repo", "gitfile", "gitlink", "none"]

_GIT_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _git(where: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "init.templateDir=", *args], cwd=where, env=_GIT_ENV, check=True,
                   capture_output=True)


def make_pdf(path: Path, text: str) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    with pdf.table() as table:
        for cells in [("Region", "Q1"), ("North", text[:12])]:
            row = table.row()
            for c in cells:
                row.cell(c)
    pdf.output(str(path))


@dataclass(frozen=True)
class World:
    root: Path

    @property
    def ws(self) -> Path:
        return self.root / "deep" / "er" / "ws"

    @property
    def sentinel(self) -> Path:
        return self.root / "deep" / "er" / "outside"

    @property
    def template(self) -> Path:
        return self.root / "template"

    @property
    def home(self) -> Path:
        """NAESTRO_HOME for the exec server (hidden from its sandbox)."""
        return self.root / "home"

    @classmethod
    def build(cls, root: Path) -> World:
        world = cls(root.resolve())
        out, tpl = world.sentinel, world.template
        for folder in (world.ws, out / "dir", out / "repo", tpl / "src", tpl / "out", world.home):
            folder.mkdir(parents=True)
        (out / "secret.txt").write_text(f"{MARKER} secret\n")
        (out / "dir" / "inner.txt").write_text(f"{MARKER} inner\n")
        (out / "victim.json").write_text(f'["{MARKER}"]\n')
        make_pdf(out / "secret.pdf", f"{MARKER} secret report")
        (out / "repo" / "tracked.txt").write_text(f"{MARKER} tracked\n")
        _git(out / "repo", "init", "-q", "-b", "main")
        _git(out / "repo", "add", "-A")
        _git(out / "repo", "commit", "-qm", f"{MARKER} outside commit")

        (tpl / "src" / "a.py").write_text("print('hello')\n")
        (tpl / "notes.txt").write_text("first line\nsecond line\n")
        make_pdf(tpl / "report.pdf", "Quarterly report")
        with sqlite3.connect(tpl / "db.sqlite") as db:
            db.execute("CREATE TABLE people (name TEXT, age INTEGER)")
            db.executemany("INSERT INTO people VALUES (?, ?)", [("ada", 36), ("alan", 41)])
        db.close()
        links = {"leak.txt": out / "secret.txt", "leakdir": out / "dir", "leak.pdf": out / "secret.pdf",
                 "dangling.txt": out / "created.txt", "loop": tpl / "loop",
                 # the names pdf.tables writes for report.pdf: a hostile model plants them first (exec.run ln -s)
                 "out/report-p1-t0.json": out / "victim.json", "out/report-p1-t0.csv": out / "victim.csv"}
        for name, target in links.items():
            (tpl / name).symlink_to(target if target != tpl / "loop" else "loop")
        _git(tpl, "init", "-q", "-b", "main")
        _git(tpl, "add", "-A")
        _git(tpl, "commit", "-qm", "start")
        shutil.rmtree(out / "repo" / ".git" / "hooks", ignore_errors=True)
        shutil.rmtree(tpl / ".git" / "hooks", ignore_errors=True)
        return world

    def reset(self, git: GitLayout = "repo") -> None:
        """The workspace as the template has it, with its ``.git`` as ``git`` says."""
        for child in self.ws.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        shutil.copytree(self.template, self.ws, symlinks=True, dirs_exist_ok=True)
        if git != "repo":
            shutil.rmtree(self.ws / ".git")
        if git == "gitfile":
            (self.ws / ".git").write_text(f"gitdir: {self.sentinel / 'repo' / '.git'}\n")
        elif git == "gitlink":
            (self.ws / ".git").symlink_to(self.sentinel / "repo" / ".git")

    def outside(self) -> dict[str, tuple[object, ...]]:
        """Everything under the root but the workspace: type, mode, mtime, size and content (or link target)."""
        state: dict[str, tuple[object, ...]] = {".": ("dir", self.root.stat().st_mtime_ns)}
        for top, dirs, files in os.walk(self.root):
            here = Path(top)
            if here == self.ws.parent:
                dirs.remove("ws")
                state["ws-entry"] = ("dir" if self.ws.is_dir() and not self.ws.is_symlink() else "changed",)
            for name in (*dirs, *files):
                p = here / name
                info = p.lstat()
                key = str(p.relative_to(self.root))
                if stat.S_ISLNK(info.st_mode):
                    state[key] = ("link", os.readlink(p))
                elif stat.S_ISDIR(info.st_mode):
                    state[key] = ("dir", info.st_mode, info.st_mtime_ns)
                else:
                    state[key] = ("file", info.st_mode, info.st_mtime_ns, info.st_size,
                                  hashlib.sha256(p.read_bytes()).hexdigest())
        return state

    def resolves_outside(self, raw: str, *, roots: tuple[str, ...] = ()) -> bool | None:
        """Whether a workspace-relative (or absolute) path lands outside the workspace and ``roots``, resolved as
        the servers resolve it (``ws / raw``, symlinks followed); None when it cannot be resolved at all."""
        if "\0" in raw:
            return None
        try:
            real = Path(os.path.realpath(self.ws / raw))
        except (OSError, ValueError):
            return None
        return not any(real == r or r in real.parents for r in (self.ws.resolve(), *map(Path, roots)))


def diff_escapes(world: World, names: list[str], *, roots: tuple[str, ...] = ()) -> bool:
    """Whether any of the names a diff was built from lands outside (None, unresolvable, counts as outside)."""
    return any(world.resolves_outside(n, roots=roots) is not False for n in names if n != "/dev/null")


# --- strings ------------------------------------------------------------------------------------------------

TEXT = st.text(max_size=30)
"""Any Unicode but lone surrogates: a JSON-RPC transport refuses those before a tool sees them."""
CONTROL = st.sampled_from(["\0", "\x1b[2J", "\r\n", "\t", "\x7f", "\u202e", "\ufeff", "\x85"])
ODD = st.one_of(CONTROL, st.integers(4_000, 6_000).map(lambda n: "x" * n), st.sampled_from([
    "", " ", "ü/ß", "$(id)", "`id`", "; rm -rf /", "%00",
                                          "%2e%2e%2f", "\\..\\..\\x", "C:\\Windows", "-rf", "--output=/x"]))


_LONG = {"name of 255": "a" * 255, "name of 300": "x" * 300, "200 deep": "/".join(["d"] * 200),
         "1500 deep": "/".join(["d"] * 1_500)}
LONG_PATHS = st.sampled_from(sorted(_LONG)).map(lambda name: _LONG[name])  # by name: short reprs in reports


def path_strings(world: World) -> st.SearchStrategy[str]:
    """Paths a hostile model writes: climbs, absolute names, links out, loops, NULs, globs, very long names."""
    out, root = str(world.sentinel), str(world.root)
    climb = "../" * 12 + root.lstrip("/")  # far more `..` than the depth: stops at / and comes back to the root
    fixed = st.sampled_from([
        ".", "", "/", "src/a.py", "notes.txt", "leak.txt", "leakdir", "leakdir/inner.txt", "leakdir/new.txt",
        "dangling.txt", "loop", "loop/x", "out", "out/report-p1-t0.json", "report.pdf", "leak.pdf", ".git",
        ".git/config", "../outside/secret.txt", "../outside/new.txt", "../outside", "..", "../..", f"{out}/secret.txt",
        f"{out}/new.txt", out, f"{out}/dir", root, f"{root}/new.txt", f"{climb}/new.txt",
        f"{climb}/deep/er/outside/secret.txt", "src/../../outside/new.txt", "leakdir/../../new.txt",
        "leakdir/../secret.txt", "~", "~/x", "a\0b", "\0", "src/a.py\0.txt", "../../*", "*", "**/*", "leakdir/*",
        "[", "a\nb", "./././src", "src//a.py", "src/a.py/", "file:///etc/passwd", "http://127.0.0.1/x"])
    parts = st.sampled_from(["..", ".", "", "src", "a.py", "leakdir", "leak.txt", "loop", "out", "outside", "new.txt",
                             "*", "**", "~", ".git", "x\0", "ü", "dangling.txt", "report.pdf", "leak.pdf"])
    joined = st.lists(parts, min_size=1, max_size=6).map("/".join).filter(lambda p: p.count("..") <= 3)
    rooted = joined.map(lambda p: f"{root}/{p}")
    return st.one_of(fixed, joined, rooted, LONG_PATHS, TEXT.filter(lambda p: p.count("..") <= 1), ODD)


def diffs(world: World) -> st.SearchStrategy[tuple[str, list[str]]]:
    """Unified and git diffs, and the names they were built from, as ``git apply`` will use them (after ``-p``).

    A diff with ``a/``/``b/`` names is applied with -p1 as a whole, so a -p0 diff stands alone; junk sections are
    for the parsers and name nothing."""
    names = path_strings(world).map(lambda n: n.replace("\n", "").replace("\t", "")).filter(lambda n: bool(n.strip()))
    add = "@@ -0,0 +1 @@\n+pwned\n"

    @st.composite
    def section(draw: st.DrawFn) -> tuple[str, list[str]]:
        name = draw(names)
        style = draw(st.sampled_from(["new", "edit", "git", "rename", "copy", "symlink", "quoted", "junk"]))
        if style == "new":
            return f"--- /dev/null\n+++ b/{name}\n{add}", [name]
        if style == "edit":
            return f"--- a/{name}\n+++ b/{name}\n@@ -1 +1 @@\n-first line\n+changed\n", [name]
        if style == "git":
            return (f"diff --git a/{name} b/{name}\nnew file mode 100644\nindex 0000000..e69de29\n--- /dev/null\n"
                    f"+++ b/{name}\n{add}", [name])
        if style in ("rename", "copy"):
            src = draw(names | st.just("notes.txt"))
            return (f"diff --git a/{src} b/{name}\nsimilarity index 100%\n{style} from {src}\n{style} to {name}\n",
                    [src, name])
        if style == "symlink":
            return (f"diff --git a/{name} b/{name}\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n"
                    f"+++ b/{name}\n@@ -0,0 +1 @@\n+{world.sentinel}/secret.txt\n\\ No newline at end of file\n",
                    [name])
        if style == "quoted" and name.isascii() and not set(name) & set('"\\'):
            octal = "".join(f"\\{ord(c):03o}" if c in "./" else c for c in name)
            return f'--- /dev/null\n+++ "b/{octal}"\n{add}', [name]
        junk = draw(st.lists(st.sampled_from(["--- ", "+++ ", "@@ -1 +1 @@", "diff --git ", "rename from ",
                                              "copy to ", "new file mode 120000", "-x", "+y", " ", name]),
                             max_size=8))
        return "\n".join(junk) + "\n", []

    def joined(parts: list[tuple[str, list[str]]]) -> tuple[str, list[str]]:
        return "".join(d for d, _ in parts), [n for _, ns in parts for n in ns]

    plain = names.filter(lambda n: not n.startswith(("a/", "b/"))).map(
        lambda n: (f"--- /dev/null\n+++ {n}\n{add}", [n]))  # -p0: the name as it stands
    return plain | st.lists(section(), min_size=1, max_size=3).map(joined)


def url_strings() -> st.SearchStrategy[str]:
    """URLs that must never be fetched (no domain is allowed) and must not crash a parser; none needs DNS."""
    return st.one_of(st.sampled_from([
        "http://[", "http://[::1", "https://[zz]/", "http://user:pw@[::1]:80/", "http://127.0.0.1:9/",
        "http://localhost/", "http://169.254.169.254/latest/meta-data", "https://10.0.0.1/", "http://[::ffff:7f00:1]/",
        "http://0x7f.1/", "http://2130706433/", "file:///etc/passwd", "ftp://x.invalid/", "gopher://x.invalid:70/",
        "javascript:alert(1)", "data:text/plain,hi", "http://x.invalid:99999999/", "http://x.invalid:-1/",
        "https://evil.invalid/exfil?k=sk-proj-0123456789abcdefghijklmnop", "http://\0.invalid/", "//x.invalid/",
        "http:///x", "http://a b.invalid/", "http://例え.invalid/", "HTTP://X.INVALID/", "http://x.invalid\\@y/"]),
        TEXT, ODD)


def sql_strings(world: World) -> st.SearchStrategy[str]:
    out = str(world.sentinel)
    return st.one_of(st.sampled_from([
        "SELECT * FROM people", "SELECT ?", "SELECT ?, ?", "SELECT :a", f"ATTACH DATABASE '{out}/x.sqlite' AS x",
        f"VACUUM INTO '{out}/copy.sqlite'", "VACUUM INTO 'copy.sqlite'", "PRAGMA journal_mode=WAL",
        f"PRAGMA temp_store_directory='{out}'", "CREATE TABLE t(x)", "DROP TABLE people",
        "INSERT INTO people VALUES ('x', 1)", "DELETE FROM people", "SELECT load_extension('/nonexistent')",
        "SELECT readfile('/etc/passwd')", "SELECT 1; DROP TABLE people", "SELECT 1e999", "SELECT zeroblob(100)",
        "SELECT x'00ff'", "SELECT -9223372036854775808 - 1", "SELECT 9223372036854775807 + 1",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) SELECT count(*) FROM c",
        "SELECT name FROM sqlite_master", "PRAGMA table_info(people)", "SELECT char(0)", "SELECT 1\0"]),
        TEXT, ODD)


def json_values(*, leaves: int = 12) -> st.SearchStrategy[JsonValue]:
    """JSON as a transport can carry it: finite numbers, huge integers, hostile strings, nesting."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**200),
                        st.floats(allow_nan=False, allow_infinity=False), TEXT, ODD)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(TEXT, inner, max_size=4), max_leaves=leaves)
