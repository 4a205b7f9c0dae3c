"""Settings, built once at the entry point and passed down; library code never reads os.environ."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAESTRO_", extra="ignore")

    home: Path = Field(default=Path(".naestro"), description="data dir: runs, checkpoints, logs, servers")
    models_dir: Path | None = Field(default=None, description="joined GGUF files; default HOME/models")
    models_file: Path | None = Field(default=None, description="models.yaml; default: the packaged one")
    max_concurrency: int = Field(default=8, ge=1, description="parallel task nodes per superstep")
    max_replans: int = Field(default=1, ge=0, description="re-plans of the unfinished part after retries fail")
    review: bool = Field(default=True, description="one Reviewer pass on a task after its role's last failed attempt")
    planner_attempts: int = Field(default=3, ge=1, description="model attempts before the template fallback")
    reference_checks: bool = Field(default=True, description="compute each data deliverable's expected content "
                                   "before any task runs (nodes/reference.py) and check the file against it")
    goal_helper: bool = Field(default=False, description="also ask the model which requirements the goal states; "
                              "kept only where the goal's words back them (nodes/goal_helper.py)")
    checkpoint_url: str | None = Field(default=None, description="postgresql://... for Postgres checkpoints")
    policy_dir: Path | None = Field(default=None, description="Rego policies + data; default: the packaged ones")
    policy_url: str | None = Field(default=None, description="an OPA server (REST) instead of embedded regorus")
    memory: bool = Field(default=False, description="memory across runs (issue 19): planner recall, episodes "
                         "written when a run ends; needs the naestro[memory] extra")
    memory_url: str | None = Field(default=None, description="redis://host:port (FalkorDB) or bolt://... (Neo4j) "
                                   "instead of the embedded FalkorDB child process")
    memory_keep_runs: int = Field(default=1000, ge=1, description="runs memory keeps (older ones are forgotten)")
    memory_max_age_days: float | None = Field(default=180.0, gt=0, description="episodes older are forgotten")

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def checkpoint_db(self) -> Path:
        return self.home / "checkpoints.sqlite"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def keys_dir(self) -> Path:
        """Signing keys: outside every run directory, so a run cannot rewrite its own audit trail."""
        return self.home / "keys"

    @property
    def control_db(self) -> Path:
        return self.home / "control.sqlite"
