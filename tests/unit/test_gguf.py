from __future__ import annotations

import struct
from pathlib import Path

import pytest

from naestro.endpoints import GgufSource, load_registry
from naestro.engines.gguf import ensure_gguf, read_general_name
from naestro.errors import ConfigError, ModelIntegrityError


def _gguf(path: Path, name: str) -> None:
    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()
    kvs = s("general.architecture") + struct.pack("<I", 8) + s("qwen2")
    kvs += s("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32)
    kvs += s("general.name") + struct.pack("<I", 8) + s(name)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 3) + kvs)


def test_reads_general_name(tmp_path: Path) -> None:
    _gguf(tmp_path / "m.gguf", "Tiny Model")
    assert read_general_name(tmp_path / "m.gguf") == "Tiny Model"
    (tmp_path / "bad.gguf").write_bytes(b"NOPE" + b"\0" * 40)
    with pytest.raises(ModelIntegrityError, match="bad magic"):
        read_general_name(tmp_path / "bad.gguf")


def test_missing_chunk_package_is_a_clear_error(tmp_path: Path) -> None:
    src = GgufSource(file="x.gguf", sha256="0" * 64, size=1, general_name="x",
                     packages={"prefix": "naestro_no_such_package_part", "parts": 2})
    with pytest.raises(ModelIntegrityError, match="naestro_no_such_package_part1 is not installed"):
        ensure_gguf(src, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_registry_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("default: a\nendpoints:\n  - name: a\n    kind: nope\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_registry(bad)
    reg = load_registry()
    assert reg.get(None).name == "coder-1.5b" and reg.fast == "coder-0.5b"
    with pytest.raises(ConfigError, match="unknown endpoint 'zz'"):
        reg.get("zz")
