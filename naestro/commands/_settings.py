"""``Settings`` for the commands, imported when a command runs: pydantic-settings is not needed for ``--help``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from naestro.llm import EndpointProvider
    from naestro.settings import Settings

__all__ = ["load_settings", "provider"]


def load_settings() -> Settings:
    from naestro.settings import Settings

    return Settings()


def provider(settings: Settings) -> EndpointProvider:
    """The model endpoints of ``settings.models_file`` (imports the LLM client: call it inside a command)."""
    from naestro.endpoints import load_registry
    from naestro.llm import EndpointProvider

    return EndpointProvider(load_registry(settings.models_file), settings)
