"""Runs the Rego unit tests (``*_test.rego``, rules named ``test_*``) on every available engine.

A test passes when its rule evaluates to ``true``; undefined (a body that failed) or an error fails it,
as with ``opa test``. Running the same tests on regorus and the OPA Go engine doubles as a check that
the embedded engine agrees with the reference on our policies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policies.engines import PolicyBundle, PolicyEngine, available_engines

__all__ = ["RegoTestResult", "discover", "run_rego_tests"]

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.M)


@dataclass(frozen=True)
class RegoTestResult:
    engine: str
    file: str
    name: str
    passed: bool
    error: str = ""


def discover(bundle: PolicyBundle) -> list[tuple[str, str, str]]:
    """(file, package, rule) for every test rule in the bundle's test files."""
    found = []
    for file, source in bundle.tests.items():
        package = _PACKAGE.search(source)
        if package is None:
            continue
        for rule in dict.fromkeys(_TEST_RULE.findall(source)):
            found.append((file, package.group(1), rule))
    return found


def run_rego_tests(bundle: PolicyBundle, engines: list[PolicyEngine] | None = None) -> list[RegoTestResult]:
    results = []
    for engine in engines if engines is not None else available_engines(bundle, with_tests=True):
        for file, package, rule in discover(bundle):
            try:
                value = engine.evaluate(f"data.{package}.{rule}", {})
            except Exception as exc:  # noqa: BLE001 - an engine error is a failed test, reported
                results.append(RegoTestResult(engine.name, file, rule, False, str(exc).split("Stack backtrace:")[0]))
                continue
            results.append(RegoTestResult(engine.name, file, rule, value is True,
                                          "" if value is True else f"evaluated to {value!r}"))
    return results
