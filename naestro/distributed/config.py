"""Scale-out settings (env ``NAESTRO_*``): the broker is the second URL, beside ``NAESTRO_CHECKPOINT_URL``.

Kept apart from ``naestro.settings.Settings`` because only workers, the API and ``--remote`` clients read them;
built once at the entry point like every other setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PRIORITY", "Priority", "ScaleSettings"]

Priority = Literal["interactive", "batch"]
PRIORITY: dict[Priority, int] = {"interactive": 0, "batch": 6}
"""Redis list per priority step; kombu's BRPOP lists step 0 first, so an interactive run (a person waits: a new run
from the API or CLI, an approval's continuation) is taken before any queued batch run."""


class ScaleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAESTRO_", extra="ignore")

    broker_url: str = Field(default="redis://127.0.0.1:6379/0", description="Celery broker (Redis)")
    queue: str = Field(default="naestro", description="the queue workers consume and clients publish to")
    visibility_timeout_s: int = Field(
        default=60, ge=1, description="an unacknowledged message goes back to the queue after this long: a "
        "killed worker's run resumes elsewhere after it (a run still driving past it is delivered again; "
        "the run lock keeps the second delivery waiting)")
    restore_interval_s: int = Field(default=2, ge=1, description="how often live workers look for such messages")
    lock_wait_s: float = Field(default=10.0, ge=0, description="a second delivery waits this long for the run's "
                               "lock, then hands the run back to the queue")
    tenant_limit: int = Field(default=4, ge=1, description="runs of one tenant executing at once, on all workers")
    defer_s: float = Field(default=1.0, ge=0, description="delay before a run deferred by a limit is tried again")
    busy_retry_s: float = Field(
        default=20.0, ge=0, description="delay before a delivery that found the run driven by another worker (a "
        "copy the broker restored after the visibility timeout) is tried again; capped at half the visibility "
        "timeout. Bounds how soon a killed holder's run resumes and keeps the copy from occupying a worker")
    max_queue_depth: int = Field(default=10_000, ge=1, description="submissions are refused (HTTP 503) past this")
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                        description="the tenant a client (naestro run --remote) submits for")
    priority: Priority = Field(default="interactive", description="the priority a client submits at")
    api_token: SecretStr | None = Field(default=None, description="the HTTP API's bearer token (naestro serve); "
                                        "unset: HOME/api-token, created 0600 at the first start")
