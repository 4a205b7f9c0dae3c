"""Cheap runtime signals a cascade reads off the small model's answer before deciding to escalate.

* **Docstring examples**: a code task's own prompt often shows calls and their results (``>>> f(1)`` / ``2``,
  ``f(1) == 2``, ``f(1) ➞ 2``, ``f(1) => 2``). ``docstring_examples`` extracts them (only those whose call and
  expected value parse as Python expressions), ``examples_program`` turns a candidate solution and the
  examples into a program that prints one JSON line of results; the caller runs it in the sandbox.
* **Log-probabilities**: the model's own per-token log-probabilities of what it wrote (llama-server returns
  them with ``n_probs``); ``logprob_stats`` reduces them to the mean and the minimum.
* **Self-consistency vote**: extra samples at temperature > 0 agree with the greedy answer when they give the
  same outputs on the examples' inputs (behaviour, not text: two spellings of one function agree).

``Signals`` is what the replay files record per (item, model) and what ``naestro.router.cascade`` decides on.
"""

from __future__ import annotations

import ast
import doctest
import json
import math
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Example", "Signals", "docstring_examples", "examples_program", "logprob_stats", "parse_results"]


class Example(BaseModel):
    """A call shown in the prompt and the value it should produce (``expected`` is a Python expression, or the
    doctest's printed output when ``printed``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    call: str
    expected: str
    printed: bool = False


class Signals(BaseModel):
    """What a cascade can know about one answer without the hidden tests (None: not measured)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    examples_total: int = Field(default=0, ge=0, description="docstring examples found in the prompt")
    examples_passed: int = Field(default=0, ge=0, description="examples the answer reproduces")
    mean_logprob: float | None = Field(default=None, le=0, description="mean log-probability of its tokens")
    min_logprob: float | None = Field(default=None, le=0, description="lowest token log-probability")
    vote_total: int = Field(default=0, ge=0, description="extra samples drawn at temperature > 0")
    vote_agree: int = Field(default=0, ge=0, description="samples that behave like the answer on the examples")

    @property
    def examples_ok(self) -> bool | None:
        """True/False when the prompt had examples, None when it had none (the signal is silent)."""
        return None if self.examples_total == 0 else self.examples_passed == self.examples_total

    @property
    def vote_ok(self) -> bool | None:
        return None if self.vote_total == 0 else self.vote_agree == self.vote_total


def logprob_stats(logprobs: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, min) of the token log-probabilities, rounded; (None, None) for an empty answer."""
    finite = [min(0.0, lp) for lp in logprobs if math.isfinite(lp)]
    if not finite:
        return None, None
    # Each term divided first: the sum of huge log-probabilities overflows to -inf (hypothesis found
    # [-8.99e307, -8.99e307]), which is below their minimum.
    mean = math.fsum(lp / len(finite) for lp in finite)
    return round(max(mean, min(finite)), 5), round(min(finite), 5)


# `name(args) <sep> expected` on one docstring line; the separators seen in HumanEval-style prompts.
_SEPARATORS = ("==>", "==", "=>", "=", "➞", "->", "→", "should return ", "returns ", "return ")


_BULLET = re.compile(r"^(?:[*-]\s+|for\s+|>>>\s*)")
_SAID = re.compile(r"^For \w+ = (?P<arg>.+?),? the output should be (?P<out>.+?)\.?$")


def _balanced_call(line: str, name: str) -> tuple[str, str] | None:
    """The call ``name(...)`` at the start of ``line`` with balanced brackets, and the rest of the line."""
    if not line.startswith(name + "("):
        return None
    depth, quote = 0, ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote and line[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return line[: i + 1], line[i + 1:]
    return None


def _expression(text: str) -> str | None:
    """``text`` when it is one Python expression; a trailing remark (``'No' (because ...)``) is cut off."""
    text = text.strip().rstrip(".,;").strip()
    for candidate in (text, text.split(" (", 1)[0].split("  ", 1)[0].rstrip(".,;")):
        if not candidate:
            continue
        try:
            ast.parse(candidate, mode="eval")
        except SyntaxError:
            continue
        return candidate
    return None


def _inline_examples(doc: str, name: str) -> list[Example]:
    found: list[Example] = []
    lines = [raw.strip() for raw in doc.splitlines()]
    for n, raw in enumerate(lines):
        line = _BULLET.sub("", raw)
        said = _SAID.match(line)
        if said is not None:  # `For num = "AB" the output should be 1.`
            call, expected = _expression(f"{name}({said['arg']})"), _expression(said["out"])
            if call is not None and expected is not None:
                found.append(Example(call=call, expected=expected))
            continue
        if line.startswith("Input:") and n + 1 < len(lines) and lines[n + 1].startswith("Output:"):
            call = _expression(f"{name}({line.removeprefix('Input:').strip()})")
            expected = _expression(lines[n + 1].removeprefix("Output:"))
            if call is not None and expected is not None:
                found.append(Example(call=call, expected=expected))
            continue
        split = _balanced_call(line, name)
        if split is None:
            continue
        call, rest = split
        rest = rest.strip().lstrip("#").strip()
        if _expression(call) is None:
            continue
        for sep in _SEPARATORS:
            if rest.startswith(sep):
                tail = rest[len(sep):]
                # `f(x) -> 19 - 5 - 6 = 8`: the worked result after the last `=` is the value.
                expected = _expression(tail) or (_expression(tail.rsplit("=", 1)[1]) if "=" in tail else None)
                if expected is not None:
                    found.append(Example(call=call, expected=expected))
                break
    return found


def _want(text: str) -> str:
    """A doctest's expected output without the docstring's closing quotes (``0.5\\n\"\"\"`` -> ``0.5``)."""
    return "\n".join(line for line in text.strip().splitlines() if line.strip() not in ('"""', "'''")).strip()


def docstring_examples(prompt: str, entry_point: str) -> list[Example]:
    """Examples of ``entry_point`` shown in the prompt: doctest ``>>>`` lines first, else inline ``f(x) == y``.

    Only examples that call ``entry_point`` count (helpers' examples test nothing the model wrote)."""
    parser = doctest.DocTestParser()
    try:
        tests = parser.get_examples(prompt)
    except ValueError:  # inconsistent indentation in a docstring: fall back to the inline forms
        tests = []
    out = [Example(call=t.source.strip(), expected=_want(t.want), printed=True) for t in tests
           if entry_point + "(" in t.source and _want(t.want) and _expression(t.source.strip()) is not None]
    return out or _inline_examples(prompt, entry_point)


_RUNNER = '''
import json as _json, math as _math, sys as _sys

def _same(got, want):
    if isinstance(got, float) or isinstance(want, float):
        try:
            return _math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-6)
        except (TypeError, ValueError):
            return False
    return got == want

_results = []
for _call, _expected, _printed in _EXAMPLES:
    try:
        _got = eval(_call)
    except BaseException as _exc:
        _results.append({"ok": False, "out": "raised " + type(_exc).__name__})
        continue
    if _printed:
        try:
            _ok = _same(_got, eval(_expected))
        except BaseException:
            _ok = repr(_got) == _expected or str(_got) == _expected
    else:
        try:
            _ok = _same(_got, eval(_expected))
        except BaseException:
            _ok = False
    _results.append({"ok": bool(_ok), "out": repr(_got)[:200]})
print("\\n__EXAMPLES__" + _json.dumps(_results))
_sys.stdout.flush()
'''


def examples_program(code: str, examples: Sequence[Example]) -> str:
    """``code`` followed by a runner that evaluates each example and prints ``__EXAMPLES__[{ok, out}, ...]``.

    Every example is evaluated even if an earlier one raised, so the vote can compare outputs one by one."""
    table = repr([(e.call, e.expected, e.printed) for e in examples])  # a Python literal: strs and bools
    return f"{code}\n\n_EXAMPLES = {table}\n{_RUNNER}"


_MARK = re.compile(r"__EXAMPLES__(\[.*\])\s*$", re.S)


def parse_results(stdout: str, expected: int) -> list[tuple[bool, str]]:
    """The runner's results; a program that crashed or timed out before printing them fails every example."""
    match = _MARK.search(stdout)
    if match is None:
        return [(False, "no result")] * expected
    try:
        rows = json.loads(match.group(1))
    except json.JSONDecodeError:
        return [(False, "no result")] * expected
    if not isinstance(rows, list) or len(rows) != expected:
        return [(False, "no result")] * expected
    return [(bool(r.get("ok")), str(r.get("out"))) if isinstance(r, dict) else (False, "no result") for r in rows]
