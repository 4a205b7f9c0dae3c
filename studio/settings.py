"""Studio settings (``NAESTRO_STUDIO_*``), built once by ``naestro studio`` and passed to the app."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LOOPBACK", "StudioSettings"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class StudioSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAESTRO_STUDIO_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="bind address; anything but loopback requires the token")
    port: int = Field(default=8780, ge=0, le=65535)
    token: SecretStr | None = Field(default=None, description="required on every request when set; generated "
                                    "when the host is not loopback and none is given")
    server_url: str = Field(default="http://127.0.0.1:2024", description="the LangGraph server of served runs "
                            "(their consent is answered through its API, as `naestro approve --server`)")
