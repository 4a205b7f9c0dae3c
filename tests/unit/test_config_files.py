"""Config files that cannot be read are one-line errors naming the file and line (issue 14 left-over: a
tools.yaml that is not UTF-8 printed a UnicodeDecodeError traceback, a YAML error spanned five lines)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from naestro.endpoints import load_registry
from naestro.errors import ConfigInvalid
from naestro.tools import load_tools_config
from tests.conftest import REPO

BROKEN = {
    "not-utf8": (b"servers:\n  x: {command: \"\xff\xfe\"}\n", 2, "not UTF-8"),
    "bad-yaml": (b"servers:\n  x: {command: [1,\n", 3, "invalid YAML"),
    "bad-shape": (b"servers:\n  x: {command: 3}\n", 2, "servers.x.command"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_tools_yaml_is_one_line_naming_file_and_line(tmp_path: Path, case: str) -> None:
    content, line, says = BROKEN[case]
    path = tmp_path / "tools.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigInvalid) as caught:
        load_tools_config(path)
    message = str(caught.value)
    assert "\n" not in message and says in message
    assert message.startswith(f"{path}:{line}: "), message


@pytest.mark.parametrize("case", ["not-utf8", "bad-yaml"])
def test_a_broken_models_yaml_is_one_line_naming_file_and_line(tmp_path: Path, case: str) -> None:
    content, line, says = BROKEN[case]
    path = tmp_path / "models.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigInvalid, match=says) as caught:
        load_registry(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_cli_exits_2_without_a_traceback_on_a_tools_yaml_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_bytes(BROKEN["not-utf8"][0])
    done = subprocess.run([sys.executable, "-m", "naestro", "tools", "list", "--config", str(path)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "NAESTRO_HOME": str(tmp_path / "h")})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert "not UTF-8" in done.stderr
