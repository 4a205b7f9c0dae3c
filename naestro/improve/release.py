"""Merge: a version of the config repository's ``main``, released as a signed artifact and made active.

The artifact is a manifest: version, commit, the previous version and the sha256 of every file of the tree.
Its signature is a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``) with a
``messageSignature``: an Ed25519 signature over the manifest's bytes and their SHA2-256 digest, the key named by a
public-key hint (no Fulcio certificate, no transparency log: the key is the home's audit key, HOME/keys).

The active release (HOME/improve/active, a symlink swapped atomically) is a copy of the released tree beside its
manifest and bundle; runs read their role prompts from it after verifying both (naestro/improve/active.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

from naestro.errors import ConfigError
from naestro.improve.repo import MAIN, ConfigRepo

__all__ = ["BUNDLE_MEDIA_TYPE", "Release", "bump", "key_hint", "publish", "releases", "sign", "verify"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    commit: str
    previous: str | None
    proposal: str | None
    created: str
    files: dict[str, str]  # path -> sha256 of the file's bytes

    def artifact(self) -> bytes:
        """The signed bytes: canonical JSON, so the same release always signs the same message."""
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":")).encode()


def bump(version: str) -> str:
    major, minor, patch = (int(p) for p in version.strip().split("."))
    return f"{major}.{minor}.{patch + 1}"


def key_hint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(hashlib.sha256(raw).digest()).decode()


def sign(artifact: bytes, key: Ed25519PrivateKey) -> dict[str, object]:
    return {"mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())}},
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                   "digest": base64.b64encode(hashlib.sha256(artifact).digest())
                                                   .decode()},
                                 "signature": base64.b64encode(key.sign(artifact)).decode()}}


def verify(artifact: bytes, bundle: dict[str, object], public: Ed25519PublicKey, *, where: str) -> None:
    """Raise ``ConfigError`` unless the bundle signs exactly these bytes with this key."""
    try:
        material = bundle["verificationMaterial"]
        message = bundle["messageSignature"]
        assert isinstance(material, dict) and isinstance(message, dict)
        hint = material["publicKey"]["hint"]
        digest = base64.b64decode(message["messageDigest"]["digest"])
        signature = base64.b64decode(message["signature"])
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"not a Sigstore message-signature bundle ({exc.__class__.__name__})", file=where) from exc
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE or hint != key_hint(public):
        raise ConfigError("signed by another key or in another format than this home's", file=where)
    if digest != hashlib.sha256(artifact).digest():
        raise ConfigError("the release manifest does not match its signed digest (edited after signing)", file=where)
    try:
        public.verify(signature, artifact)
    except InvalidSignature as exc:
        raise ConfigError("the release signature does not verify", file=where) from exc


def releases(improve_dir: Path) -> list[Release]:
    """Every release of this home, oldest first."""
    folder = improve_dir / "releases"
    found = [Release.model_validate_json(p.read_text()) for p in folder.glob("*.json")
             if not p.name.endswith(".sigstore.json")] if folder.is_dir() else []
    return sorted(found, key=lambda r: tuple(int(x) for x in r.version.split(".")))


def publish(repo: ConfigRepo, improve_dir: Path, key: Ed25519PrivateKey, *, proposal: str | None) -> Release:
    """Release ``main`` as it is now: manifest + bundle under releases/, then swap the active copy to it."""
    commit = repo.rev(MAIN)
    assert commit is not None
    tree = repo.files(commit)
    version = tree["VERSION"].strip()
    history = releases(improve_dir)
    release = Release(version=version, commit=commit, previous=history[-1].version if history else None,
                      proposal=proposal, created=datetime.now(UTC).isoformat(timespec="seconds"),
                      files={p: hashlib.sha256(t.encode()).hexdigest() for p, t in sorted(tree.items())})
    folder = improve_dir / "releases"
    folder.mkdir(parents=True, exist_ok=True)
    artifact = release.artifact()
    (folder / f"{version}.json").write_bytes(artifact)
    (folder / f"{version}.sigstore.json").write_text(json.dumps(sign(artifact, key), indent=1))
    activate(improve_dir, release, tree)
    return release


def activate(improve_dir: Path, release: Release, tree: dict[str, str]) -> None:
    """Write the release's tree beside its manifest and bundle, then point ``active`` at it in one rename."""
    target = improve_dir / "trees" / release.version
    if target.exists():
        shutil.rmtree(target)
    for path, text in tree.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text)
    meta = target / ".release"
    meta.mkdir()
    shutil.copyfile(improve_dir / "releases" / f"{release.version}.json", meta / "release.json")
    shutil.copyfile(improve_dir / "releases" / f"{release.version}.sigstore.json", meta / "release.sigstore.json")
    link = improve_dir / f".active.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(Path("trees") / release.version)
    link.replace(improve_dir / "active")
