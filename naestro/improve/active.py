"""What runs use from the self-improvement loop: the role prompts, router priors and tool adapters (usage hints and
call timeouts, ``tools/*.yaml``: naestro/tooladapter.py) of the active, signed release.

Only those are taken (role allowlists, models and budgets stay the packaged ones whatever the file says), and
only after the release's Sigstore bundle verifies with this home's key and every file read hashes to what the
manifest signed. A home that never merged a self-PR has no active release and runs on the packaged prompts and
models.yaml's priors. A tampered release refuses the run (``ConfigError``) rather than running with prompts or
priors nobody validated.

The composition root (``naestro/runtime.py``) applies both: prompts to the roles, priors to the registry its router
is built from (with the observations they were learned from, so the bandit does not count them twice; see
``learn.py``). A process reads the active release when its runtime is built: a worker or Studio that was already
running keeps the release it started with until it is restarted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from naestro.endpoints import ModelRegistry, Prior
from naestro.errors import ConfigError
from naestro.improve.learn import parse_learned_from, parse_priors
from naestro.improve.release import Release, verify
from naestro.plan import Role
from naestro.settings import Settings
from naestro.tooladapter import ToolAdapter, adapters_from_tree
from nodes.roles import RoleSpec
from policies.audit_keys import load_public_key

__all__ = ["ActiveConfig", "active_release", "load_active", "with_active_priors", "with_active_prompts",
           "with_priors"]

PRIORS = "router/priors.yaml"
LEARNED_FROM = "router/learned_from.yaml"


@dataclass(frozen=True)
class ActiveConfig:
    version: str
    commit: str
    prompts: dict[str, str]
    priors: tuple[Prior, ...] = ()
    # (kind, endpoint) -> the bandit store's (alpha, beta) sums its prior was learned from
    learned_from: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    # tool name (or ``server.*``) -> its adapter, from the release's tools/*.yaml (naestro/tooladapter.py)
    tool_adapters: dict[str, ToolAdapter] = field(default_factory=dict)
    # golden/*.json: counter-examples the loop made from failed runs (path -> text), for `eval golden --counterexamples`
    counterexamples: dict[str, str] = field(default_factory=dict)


def _signed_file(active: Path, release: Release, path: str, *, required: bool) -> bytes | None:
    """The file's bytes if the release signed it, after checking they are the signed ones."""
    if path not in release.files and not required:
        return None  # a release made before the loop wrote this file
    target = active / path
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise ConfigError(f"the active self-improved release lacks {path} ({exc}); run `naestro improve rollback` "
                          "or remove HOME/improve/active", file=str(target)) from exc
    if release.files.get(path) != hashlib.sha256(data).hexdigest():
        raise ConfigError(f"{path} differs from the signed release (edited after the merge); run "
                          "`naestro improve rollback` or remove HOME/improve/active", file=str(target))
    return data


def load_active(improve_dir: Path, public: Ed25519PublicKey) -> ActiveConfig | None:
    active = improve_dir / "active"
    if not active.exists():
        return None
    meta = active / ".release"
    where = str(meta / "release.json")
    try:
        artifact = (meta / "release.json").read_bytes()
        bundle = json.loads((meta / "release.sigstore.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the active self-improved release is incomplete ({exc}); run `naestro improve rollback` "
                          "or remove HOME/improve/active", file=where) from exc
    verify(artifact, bundle, public, where=where)
    release = Release.model_validate_json(artifact)
    roles_text = _signed_file(active, release, "roles.yaml", required=True)
    priors_text = _signed_file(active, release, PRIORS, required=False)
    learned_text = _signed_file(active, release, LEARNED_FROM, required=False)
    data = yaml.safe_load(roles_text or b"")
    prompts = {str(role): str(spec["prompt"]) for role, spec in (data or {}).items()
               if isinstance(spec, dict) and isinstance(spec.get("prompt"), str) and spec["prompt"].strip()}
    try:
        priors = parse_priors(priors_text.decode()) if priors_text else []
        learned = parse_learned_from(learned_text.decode()) if learned_text else {}
    except (ValidationError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the active release's router priors do not load ({str(exc).splitlines()[0]}); run "
                          "`naestro improve rollback`", file=str(active / PRIORS)) from exc
    signed = {path: (_signed_file(active, release, path, required=True) or b"").decode(errors="replace")
              for path in release.files if path.startswith(("tools/", "golden/"))}
    return ActiveConfig(version=release.version, commit=release.commit, prompts=prompts, priors=tuple(priors),
                        learned_from=learned, tool_adapters=adapters_from_tree(signed),
                        counterexamples={p: t for p, t in signed.items() if p.startswith("golden/")
                                         and p.endswith(".json")})


def active_release(settings: Settings, public: Ed25519PublicKey | None = None) -> ActiveConfig | None:
    """This home's active release, verified (None: it never merged a self-PR), for everything that must see what
    runs see: the runtime, `router stats`, `eval golden --counterexamples`. ``public``: the key if already loaded."""
    improve = settings.home / "improve"
    if not (improve / "active").exists():
        return None
    return load_active(improve, public if public is not None else load_public_key(settings.keys_dir))


def with_active_prompts(roles: dict[Role, RoleSpec], active: ActiveConfig | None) -> dict[Role, RoleSpec]:
    if active is None:
        return roles
    return {role: spec.model_copy(update={"prompt": active.prompts.get(role.value, spec.prompt)})
            for role, spec in roles.items()}


def with_active_priors(registry: ModelRegistry, active: ActiveConfig | None) -> ModelRegistry:
    """models.yaml's registry with the release's priors in place of its own for the same (kind, endpoint).

    A prior for an endpoint this models.yaml does not have is left out (the endpoint was removed since the loop
    learned it). A measured ``p95_latency_s`` of models.yaml (``naestro router tune``) stays: the loop learns
    win-rates, not latencies."""
    if active is None or not active.priors:
        return registry
    return with_priors(registry, active.priors)


def with_priors(registry: ModelRegistry, priors: tuple[Prior, ...]) -> ModelRegistry:
    """``with_active_priors`` for priors from any config tree (a validation's current or candidate side)."""
    names = {e.name for e in registry.endpoints}
    merged = {(p.kind, p.endpoint): p for p in registry.router.priors}
    for p in priors:
        if p.endpoint not in names:
            continue
        old = merged.get((p.kind, p.endpoint))
        keep_latency = p.p95_latency_s is None and old is not None and old.p95_latency_s is not None
        merged[(p.kind, p.endpoint)] = p.model_copy(update={"p95_latency_s": old.p95_latency_s}) \
            if keep_latency and old is not None else p
    return registry.model_copy(update={"router": registry.router.model_copy(update={"priors": tuple(merged.values())})})
