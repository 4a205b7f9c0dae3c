"""Rego engines behind one seam: the same ``.rego`` files and data, three real evaluators.

- ``RegorusEngine`` (default): Microsoft's regorus in-process (``gordon-to-regorus``), ~tens of µs per
  decision, Rego v1.
- ``OpaGoEngine``: the reference OPA Go engine through ``opa-golib-python-bindings`` (the conformance
  oracle; optional, installed by scripts/setup.sh because its metadata claims Python >= 3.14).
- ``OpaRestEngine``: an OPA server over its REST API with ``opa-python-client`` (``NAESTRO_POLICY_URL``).

Loading refuses a broken policy file with ``file:line`` (``PolicyError``); an evaluation error never
allows: ``decide`` fails closed with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import regorus
from pydantic import JsonValue, ValidationError

from naestro.errors import PolicyError
from policies.decision import Decision, PolicyInput

__all__ = ["DECISION", "EXPLAIN", "OpaGoEngine", "OpaRestEngine", "PolicyBundle", "PolicyEngine", "RegorusEngine",
           "available_engines", "configured_engine", "load_bundle"]

REGO_DIR = Path(__file__).resolve().parent / "rego"
DECISION = "data.naestro.gate.decision"
EXPLAIN = "data.naestro.gate.fired"

_REGORUS_ERR = re.compile(r"--> (?P<file>[^\n]+?):(?P<line>\d+):(?P<col>\d+).*?\nerror: (?P<msg>[^\n]+)", re.S)
_OPA_ERR = re.compile(r"(?P<file>[^\s:]+\.rego):(?P<line>\d+): (?P<code>rego_\w+): (?P<msg>[^\n]+)")


@dataclass(frozen=True)
class PolicyBundle:
    """Rego modules (file name → source) and the data document, exactly what every engine loads."""

    modules: dict[str, str]
    data: dict[str, Any]
    root: Path = REGO_DIR
    tests: dict[str, str] = field(default_factory=dict)


def _policy_error(exc: Exception, files: dict[str, str]) -> PolicyError:
    text = str(exc).split("Stack backtrace:")[0].strip()
    for pattern in (_REGORUS_ERR, _OPA_ERR):
        m = pattern.search(text)
        if m:
            return PolicyError(f"{m['msg'].strip()}; fix the policy and retry", file=m["file"], line=int(m["line"]))
    return PolicyError(f"{text.splitlines()[0] if text else exc!r}; fix the policy and retry",
                       file=", ".join(files) or None)


def load_bundle(directory: Path = REGO_DIR, *, roles: dict[str, list[str]] | None = None) -> PolicyBundle:
    """Read ``*.rego`` (tests kept apart) and ``*.json`` data under ``directory``; compile-check the modules.

    ``roles`` (role → tool patterns, from nodes/roles.yaml) becomes ``data.naestro.roles`` so the tool
    allowlists have one source of truth.
    """
    if not directory.is_dir():
        raise PolicyError("policy folder does not exist; set NAESTRO_POLICY_DIR or restore policies/rego",
                          file=str(directory))
    modules: dict[str, str] = {}
    tests: dict[str, str] = {}
    for path in sorted(directory.glob("*.rego")):
        name = str(path.relative_to(directory.parent))
        (tests if path.stem.endswith("_test") else modules)[name] = _policy_text(path)
    if not modules:
        raise PolicyError("no .rego policy files found", file=str(directory))
    data: dict[str, Any] = {}
    for path in sorted(directory.glob("*.json")):
        _merge(data, _data_document(path))
    if roles is not None:
        _merge(data, {"naestro": {"roles": {r: {"tools": list(t)} for r, t in roles.items()}}})
    bundle = PolicyBundle(modules=modules, data=data, root=directory, tests=tests)
    RegorusEngine(bundle, with_tests=True)  # compile check: refuses syntax errors with file:line
    return bundle


_JSON_TYPES: dict[type, str] = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
                                type(None): "null"}


def _policy_text(path: Path) -> str:
    """One ``*.rego`` file as text, or a one-line ``PolicyError`` naming the file and line (was a traceback)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save it as UTF-8", file=str(path), line=raw[:exc.start].count(b"\n") + 1) from exc


def _data_document(path: Path) -> dict[str, Any]:
    """One ``*.json`` data file: a JSON object (merged into ``data``), or a ``PolicyError`` naming the file."""
    raw = path.read_bytes()
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy data is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save it as UTF-8", file=str(path), line=raw[:exc.start].count(b"\n") + 1) from exc
    except json.JSONDecodeError as exc:
        raise PolicyError(f"malformed JSON data: {exc.msg}; fix the JSON and retry", file=str(path),
                          line=exc.lineno) from exc
    if not isinstance(document, dict):
        raise PolicyError(f"policy data must be a JSON object (merged into `data`), found a JSON "
                          f"{_JSON_TYPES.get(type(document), type(document).__name__)}; wrap it in an object",
                          file=str(path))
    return document


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


_UNDEFINED = "<undefined>"  # what regorus's RVM returns (as a JSON string) for an undefined rule


def _decision(value: JsonValue, engine: str) -> Decision:
    if value is None or value == _UNDEFINED:
        return Decision.fail_closed(f"{engine}: {DECISION} is undefined for this input")
    try:
        return Decision.model_validate(value)
    except ValidationError as exc:
        return Decision.fail_closed(f"{engine}: decision has the wrong shape: {exc.errors()[0]['msg']}")


def _decision_json(text: str, engine: str) -> Decision:
    """``_decision`` of an engine's JSON answer, parsed and validated in one step by pydantic."""
    try:
        return Decision.model_validate_json(text)
    except ValidationError:
        return _decision(json.loads(text), engine)  # the rare bad answer: parsed again for the same message


class PolicyEngine(Protocol):
    name: str

    def evaluate(self, path: str, document: dict[str, JsonValue]) -> JsonValue:
        """The value of ``path`` (``data.pkg.rule``) for this input; None when undefined. May raise."""
        ...

    def decide(self, document: dict[str, JsonValue]) -> Decision: ...

    def decide_input(self, inp: PolicyInput) -> Decision:
        """The gate's call: ``decide(inp.document())``, or the same answer faster where the engine reads JSON."""
        ...


def _failed(engine: str, exc: Exception) -> Decision:
    return Decision.fail_closed(f"{engine}: {str(exc).split('Stack backtrace:')[0].strip()[:300]}")


class _Decides:
    name = "engine"

    def evaluate(self, path: str, document: dict[str, JsonValue]) -> JsonValue:
        raise NotImplementedError

    def decide(self, document: dict[str, JsonValue]) -> Decision:
        try:
            return _decision(self.evaluate(DECISION, document), self.name)
        except Exception as exc:  # noqa: BLE001 - fail closed on any engine failure, and say which
            return _failed(self.name, exc)

    def decide_input(self, inp: PolicyInput) -> Decision:
        return self.decide(inp.document())


class _RegorusPair:
    """One thread's regorus interpreter + compiled RVM program (regorus objects must stay on their thread)."""

    def __init__(self, bundle: PolicyBundle, with_tests: bool) -> None:
        self.engine = regorus.Engine()
        files = {**bundle.modules, **(bundle.tests if with_tests else {})}
        for name, source in files.items():
            try:
                self.engine.add_policy(name, source)
            except RuntimeError as exc:
                raise _policy_error(exc, {name: source}) from exc
        data = json.dumps(bundle.data)
        self.engine.add_data_json(data)
        self.vm: Any = None
        try:
            program = regorus.Program.compile_from_modules(data, list(bundle.modules.items()), [DECISION])
        except RuntimeError:
            return  # a construct the RVM compiler lacks: the interpreter decides (slower, same answers)
        self.vm = regorus.Rvm()
        self.vm.load_program(program)
        self.vm.set_data_json(data)


# Each thread's pairs, by engine. Module-level on purpose: an engine that held its own ``threading.local`` dropped
# every thread's pairs in whichever thread dropped the engine, and regorus aborts the drop of an object made on
# another thread ("unsendable, but is being dropped on another thread"). Here a thread's pairs die with it, in it;
# a dropped engine's pairs are removed by their own threads at their next evaluation.
_PAIRS = threading.local()
_DROPPED: set[int] = set()
_tokens = itertools.count()


class RegorusEngine(_Decides):
    """The default: regorus in-process, synchronous and fast.

    The decision runs on regorus's compiled RVM program (~3x faster than its interpreter here); other
    queries (tests, ``explain``) use the interpreter. Both load the same modules and data, and the
    conformance test holds the RVM's decisions to the OPA Go engine's. regorus objects may not cross
    threads, so each thread that evaluates gets its own pair, built on first use.
    """

    name = "regorus"

    def __init__(self, bundle: PolicyBundle, *, with_tests: bool = False) -> None:
        self._bundle, self._with_tests = bundle, with_tests
        self._token = next(_tokens)
        self._pair()  # compile check now, in the caller's thread

    def __del__(self) -> None:
        pairs: dict[int, _RegorusPair] | None = getattr(_PAIRS, "pairs", None)
        if pairs is not None:
            pairs.pop(self._token, None)  # this thread's pair can go now; other threads drop theirs later
        _DROPPED.add(self._token)

    def _pair(self) -> _RegorusPair:
        pairs: dict[int, _RegorusPair] | None = getattr(_PAIRS, "pairs", None)
        if pairs is None:
            pairs = _PAIRS.pairs = {}
        pair = pairs.get(self._token)
        if pair is None:
            for token in _DROPPED & pairs.keys():
                del pairs[token]
            pair = pairs[self._token] = _RegorusPair(self._bundle, self._with_tests)
        return pair

    def evaluate(self, path: str, document: dict[str, JsonValue]) -> JsonValue:
        pair = self._pair()
        if path == DECISION and pair.vm is not None:
            pair.vm.set_input_json(json.dumps(document))
            value: JsonValue = json.loads(pair.vm.execute_entry_point(DECISION))
            return value
        pair.engine.set_input_json(json.dumps(document))
        value = pair.engine.eval_rule(path)
        return value

    def decide_input(self, inp: PolicyInput) -> Decision:
        """The input serialised by pydantic straight to the RVM, its answer validated straight from JSON: no
        Python dicts in between (~25 µs of a ~90 µs decision, issue 16)."""
        pair = self._pair()
        if pair.vm is None:
            return self.decide(inp.document())
        try:
            pair.vm.set_input_json(inp.model_dump_json())
            return _decision_json(pair.vm.execute_entry_point(DECISION), self.name)
        except Exception as exc:  # noqa: BLE001 - fail closed on any engine failure, and say which
            return _failed(self.name, exc)


class OpaGoEngine(_Decides):
    """The reference OPA Go engine, in-process through ctypes (``opa-golib-python-bindings``)."""

    name = "opa-go"

    def __init__(self, bundle: PolicyBundle, *, with_tests: bool = False) -> None:
        from opa_bindings import OpaEngine, OpaError  # optional: see module docstring

        self._undefined: type[Exception] = OpaError
        self._engine = OpaEngine()
        files = {**bundle.modules, **(bundle.tests if with_tests else {})}
        for name, source in files.items():
            try:
                self._engine.add_policy(name, source)
            except OpaError as exc:
                raise _policy_error(exc, {name: source}) from exc
        self._engine.add_data(bundle.data)

    def evaluate(self, path: str, document: dict[str, JsonValue]) -> JsonValue:
        from opa_bindings import OpaUndefinedError

        try:
            value: JsonValue = self._engine.eval_document(path.removeprefix("data."), input=document)
        except OpaUndefinedError:
            return None
        return value


class OpaRestEngine(_Decides):
    """An OPA server over REST (``opa-python-client``): policies and data are pushed at start (``push``)."""

    name = "opa-rest"

    def __init__(self, url: str, bundle: PolicyBundle | None = None, *, timeout_s: float = 2.0) -> None:
        from opa_client import OpaClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PolicyError(f"NAESTRO_POLICY_URL={url!r} is not an http(s) URL like http://127.0.0.1:8181")
        self.url = url
        self._client = OpaClient(host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
                                 ssl=parts.scheme == "https", timeout=timeout_s, retries=0)
        if bundle is not None:
            self.push(bundle)

    def push(self, bundle: PolicyBundle) -> None:
        try:
            for name, source in bundle.modules.items():
                self._client.update_policy_from_string(source, name.replace("/", "_"))
            for key, value in bundle.data.items():
                self._client.update_or_create_data(value, key)
        except Exception as exc:
            raise PolicyError(f"could not load policies into the OPA server at {self.url}: {exc}") from exc

    def evaluate(self, path: str, document: dict[str, JsonValue]) -> JsonValue:
        package, _, rule = path.removeprefix("data.").rpartition(".")
        reply = self._client.query_rule(input_data=document, package_path=package, rule_name=rule)
        value: JsonValue = reply.get("result")
        return value


def configured_engine(bundle: PolicyBundle, policy_url: str | None) -> PolicyEngine:
    """The engine a run uses: an OPA server when ``NAESTRO_POLICY_URL`` is set, else regorus in-process."""
    return OpaRestEngine(policy_url, bundle) if policy_url else RegorusEngine(bundle)


def available_engines(bundle: PolicyBundle, *, with_tests: bool = False) -> list[PolicyEngine]:
    """Every in-process engine installed here (regorus always; OPA Go when its bindings are present)."""
    engines: list[PolicyEngine] = [RegorusEngine(bundle, with_tests=with_tests)]
    with contextlib.suppress(ImportError):
        engines.append(OpaGoEngine(bundle, with_tests=with_tests))
    return engines
