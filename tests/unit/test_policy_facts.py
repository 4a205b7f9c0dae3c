"""What the gate tells the policy: resolved paths (incl. diff targets and symlinks) and classified URLs."""

from __future__ import annotations

from pathlib import Path

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
