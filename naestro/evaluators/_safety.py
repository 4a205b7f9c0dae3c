"""The safety evaluator: secrets and PII in what a task produced, found by ``naestro.redact``'s detectors.

The same detectors the gate uses for data labels (secret patterns, env values, Luhn-checked cards,
e-mail, phone; presidio's checksummed recognizers with the ``redact`` extra). Evidence names the kind
and the place, never the value.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from naestro.evaluators._target import Params
from naestro.evaluators._verdict import EvalEnv, Evidence, Subject, Verdict
from naestro.redact import find

__all__ = ["SafetyEvaluator"]

MAX_BYTES = 1_000_000


class SafetyEvaluator(Params):
    name: ClassVar[str] = "safety"

    files: tuple[str, ...] = Field(default=("**/*",), description="workspace globs to scan")
    outputs: bool = Field(default=True, description="scan the task's outputs and summary too")
    allow: tuple[str, ...] = Field(default=(), description="finding kinds tolerated, e.g. email")
    depth: Literal["fast", "data"] = "data"

    async def evaluate(self, subject: Subject, env: EvalEnv) -> Verdict:
        root = env.workspace.resolve()
        texts: list[tuple[str, str]] = []
        seen: set[str] = set()
        for g in self.files:
            for p in sorted(root.glob(g)):
                rel = str(p.relative_to(root))
                if rel in seen or not p.is_file() or ".git" in p.parts or p.stat().st_size > MAX_BYTES:
                    continue
                seen.add(rel)
                data = p.read_bytes()
                if b"\0" in data[:4096]:
                    continue  # binary
                texts.append((rel, data.decode("utf-8", errors="replace")))
        if self.outputs:
            texts += [(f"output {k}", v if isinstance(v, str) else str(v)) for k, v in subject.outputs.items()]
            texts.append(("summary", subject.summary))
        evidence: list[Evidence] = []
        for where, text in texts:
            for f in find(text, depth=self.depth):
                if f.kind in self.allow:
                    continue
                line = text.count("\n", 0, f.start) + 1
                evidence.append(Evidence(check=f.label, ok=False, where=f"{where}:{line}",
                                         detail=f"{f.kind} ({f.end - f.start} chars) must not be in the output"))
        if not evidence:
            evidence.append(Evidence(check="scan", ok=True,
                                     detail=f"no secrets or PII in {len(texts)} text(s)"))
        return Verdict.of(self.name, evidence, score=1.0 if evidence[0].ok else 0.0)
