"""The installation's audit signing key: Ed25519, created once per NAESTRO_HOME (``keys/``), mode 0600."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from naestro.errors import AuditError

__all__ = ["load_public_key", "load_signing_key"]


def load_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The installation's audit key (created once, mode 0600); its public half sits beside it.

    Several processes may start on a fresh NAESTRO_HOME at once (workers, a CLI beside a server): the key is
    written whole to a private temporary file and then linked into place, which fails if another process got
    there first — that one's key is then used. Before, a second process either crashed on ``O_EXCL`` or read
    the first one's half-written file (a worker of the concurrency test died at start-up)."""
    private = keys_dir / "audit_ed25519.pem"
    if not private.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = keys_dir / f".audit_ed25519.pem.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process linked its key first: use that one
                os.link(tmp, private)
        finally:
            tmp.unlink(missing_ok=True)
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(path=str(private), reason="not an Ed25519 private key")
    public = keys_dir / "audit_ed25519.pub"
    if not public.exists():  # derived from the key in place, so concurrent writers write the same bytes
        tmp_pub = keys_dir / f".audit_ed25519.pub.{os.getpid()}.{secrets.token_hex(4)}"
        tmp_pub.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        os.replace(tmp_pub, public)
    return key


def load_public_key(keys_dir: Path) -> Ed25519PublicKey:
    path = keys_dir / "audit_ed25519.pub"
    if not path.exists():
        raise AuditError(path=str(path), reason="no audit public key; was this log written on this NAESTRO_HOME?")
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(path=str(path), reason="not an Ed25519 public key")
    return key
