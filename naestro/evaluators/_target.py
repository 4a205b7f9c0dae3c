"""Where an evaluator finds the text it judges: a task output or a workspace file (never outside it)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from naestro.evaluators._verdict import EvalEnv, Subject

__all__ = ["Params", "Target", "inside"]


class Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def inside(workspace: Path, rel: str) -> Path | None:
    root = workspace.resolve()
    p = (root / rel).resolve()
    return p if p == root or root in p.parents else None


class Target(Params):
    """Exactly one of ``file`` (relative to the workspace) or ``output`` (a task output name)."""

    file: str | None = None
    output: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Target:
        if (self.file is None) == (self.output is None):
            raise ValueError("give exactly one of file or output")
        return self

    @property
    def what(self) -> str:
        return f"file {self.file!r}" if self.file is not None else f"output {self.output!r}"

    def read(self, subject: Subject, env: EvalEnv) -> str | None:
        if self.output is not None:
            if self.output not in subject.outputs:
                return None
            value = subject.outputs[self.output]
            return value if isinstance(value, str) else json.dumps(value)
        assert self.file is not None
        path = inside(env.workspace, self.file)
        if path is None or not path.is_file():
            return None
        return path.read_text(errors="replace")
