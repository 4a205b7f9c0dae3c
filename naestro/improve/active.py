"""What runs use from the self-improvement loop: the role prompts of the active, signed release.

Only prompts are taken (tools, models and budgets stay the packaged ones whatever the file says), and only after
the release's Sigstore bundle verifies with this home's key and the file hashes to what the manifest signed. A
home that never merged a self-PR has no active release and runs on the packaged prompts. A tampered release
refuses the run (``ConfigError``) rather than running with prompts nobody validated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from naestro.errors import ConfigError
from naestro.improve.release import Release, verify
from naestro.plan import Role
from nodes.roles import RoleSpec

__all__ = ["ActiveConfig", "load_active", "with_active_prompts"]


@dataclass(frozen=True)
class ActiveConfig:
    version: str
    commit: str
    prompts: dict[str, str]


def load_active(improve_dir: Path, public: Ed25519PublicKey) -> ActiveConfig | None:
    active = improve_dir / "active"
    if not active.exists():
        return None
    meta = active / ".release"
    where = str(meta / "release.json")
    try:
        artifact = (meta / "release.json").read_bytes()
        bundle = json.loads((meta / "release.sigstore.json").read_text())
        roles_text = (active / "roles.yaml").read_bytes()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the active self-improved release is incomplete ({exc}); run `naestro improve rollback` "
                          "or remove HOME/improve/active", file=where) from exc
    verify(artifact, bundle, public, where=where)
    release = Release.model_validate_json(artifact)
    if release.files.get("roles.yaml") != hashlib.sha256(roles_text).hexdigest():
        raise ConfigError("roles.yaml differs from the signed release (edited after the merge); run "
                          "`naestro improve rollback` or remove HOME/improve/active", file=str(active / "roles.yaml"))
    data = yaml.safe_load(roles_text)
    prompts = {str(role): str(spec["prompt"]) for role, spec in (data or {}).items()
               if isinstance(spec, dict) and isinstance(spec.get("prompt"), str) and spec["prompt"].strip()}
    return ActiveConfig(version=release.version, commit=release.commit, prompts=prompts)


def with_active_prompts(roles: dict[Role, RoleSpec], active: ActiveConfig | None) -> dict[Role, RoleSpec]:
    if active is None:
        return roles
    return {role: spec.model_copy(update={"prompt": active.prompts.get(role.value, spec.prompt)})
            for role, spec in roles.items()}
