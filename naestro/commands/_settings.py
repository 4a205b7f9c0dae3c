"""``Settings`` for the commands, imported when a command runs: pydantic-settings is not needed for ``--help``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from naestro.settings import Settings

__all__ = ["load_settings"]


def load_settings() -> Settings:
    from naestro.settings import Settings

    return Settings()
