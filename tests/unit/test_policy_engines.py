"""The same Rego, three real engines: Rego unit tests, cross-engine conformance, load errors, fail-closed."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.errors import PolicyError
from nodes.roles import load_roles
from policies.audit import AuditLog, load_signing_key
from policies.decision import ApprovedScope, RunPolicy
from policies.engines import (
    OpaGoEngine,
    OpaRestEngine,
    PolicyBundle,
    PolicyEngine,
    RegorusEngine,
    load_bundle,
)
from policies.gate import Gate
from policies.opa_server import OpaApiServer
from policies.regotest import run_rego_tests
from policies.switches import KillSwitches

ROLES = {r.value: list(s.tools) for r, s in load_roles().items()}
KNOWN = {"fs.read", "fs.write", "fs.list", "exec.run", "web.fetch", "git.commit"}


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle(roles=ROLES)


def test_rego_unit_tests_pass_on_every_engine(bundle: PolicyBundle) -> None:
    results = run_rego_tests(bundle)
    assert {r.engine for r in results} == {"regorus", "opa-go"}
    assert len(results) >= 40
    assert [f"{r.engine}:{r.name}: {r.error}" for r in results if not r.passed] == []


def test_a_wrong_expectation_fails_a_rego_test(bundle: PolicyBundle) -> None:
    changed = json.loads(json.dumps(bundle.data))
    changed["naestro"]["rate_limits"]["exec.run"]["max_calls"] = 31
    mutated = PolicyBundle(modules=bundle.modules, data=changed, tests=bundle.tests)
    failed = {(r.engine, r.name) for r in run_rego_tests(mutated) if not r.passed}
    assert failed == {("regorus", "test_rate_limit"), ("opa-go", "test_rate_limit")}


def corpus(bundle: PolicyBundle, workspace: Path, tmp: Path) -> list[dict[str, Any]]:
    """Inputs built exactly as the gate builds them, over roles x modes x actions x policies."""
    (workspace / "link").symlink_to("/etc")
    actions: list[tuple[str, dict[str, Any]]] = [
        ("fs.read", {"path": "a.txt"}), ("fs.read", {"path": "../../../../../../etc/shadow"}),
        ("fs.read", {"path": "link/hosts"}), ("fs.write", {"path": "out/x.md", "content": "hello"}),
        ("fs.write", {"path": "k.txt", "content": "token sk-abcdefghijklmnopqrstuvwxyz12"}),
        ("fs.write", {"path": "mail.txt", "content": "write to jane@example.com"}),
        ("exec.run", {"command": "pytest -q"}), ("exec.run", {"command": ["ls", "-la"], "cwd": "/"}),
        ("web.fetch", {"url": "https://docs.python.org/3/"}), ("web.fetch", {"url": "https://api.example.com/v1"}),
        ("web.fetch", {"url": "http://127.0.0.1:8080/admin"}), ("web.fetch", {"url": "http://10.0.0.5/"}),
        ("web.fetch", {"url": "http://localhost/"}), ("web.fetch", {"url": "file:///etc/passwd"}),
        ("git.commit", {"message": "m"}), ("nope.tool", {}),
    ]
    policies = [RunPolicy(), RunPolicy(allow_domains=["docs.python.org", "*.example.com"], allow_cidrs=["10.0.0.0/8"]),
                RunPolicy(approve=[ApprovedScope(tool="exec.run"), ApprovedScope(tool="web.*")],
                          allow_domains=["*.python.org"], scratch=False, scopes=["pii_external"])]
    docs = []
    key = load_signing_key(tmp / "keys")
    for policy, mode, role in itertools.product(policies, ("guide", "copilot", "auto"), ("coder", "researcher")):
        gate = Gate(RegorusEngine(bundle), run_id="c", workspace=workspace,
                    policy=policy.model_copy(update={"mode": mode}),
                    audit=AuditLog(tmp / "audit.jsonl", run_id="c", key=key, anchors=tmp / "anchors"),
                    switches=KillSwitches(tmp / "control.sqlite"), registered=lambda: KNOWN,
                    rate_limits=bundle.data["naestro"]["rate_limits"])
        for tool, args in actions:
            docs.append(gate.tool_input(task="t", role=role, tool=tool, arguments=args).document())
        docs.append(gate.model_input(task="t", role=role, endpoint="cloud-gpt", locality="cloud",
                                     estimate={"tokens": 100.0, "usd": 0.2}, text="call jane@example.com").document())
    return docs


def test_engines_agree_on_the_corpus(bundle: PolicyBundle, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    docs = corpus(bundle, ws, tmp_path)
    with OpaApiServer() as server:
        engines: list[PolicyEngine] = [RegorusEngine(bundle), OpaGoEngine(bundle), OpaRestEngine(server.url, bundle)]
        decisions = {e.name: [e.decide(d).model_dump() for d in docs] for e in engines}
    reference = decisions["opa-go"]  # the reference OPA engine is the oracle
    for name, got in decisions.items():
        diffs = [(i, docs[i]["action"], got[i], reference[i]) for i in range(len(docs)) if got[i] != reference[i]]
        assert diffs == [], f"{name} disagrees with OPA on {len(diffs)} inputs, first: {diffs[:1]}"
    verdicts = {d["allow"] * "allow" or d["ask"] * "ask" or "deny" for d in reference}
    assert verdicts == {"allow", "ask", "deny"}  # the corpus exercises every outcome
    assert not any("policy engine error" in " ".join(d["reasons"]) for d in reference)


def test_syntax_error_is_refused_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package naestro.gate\nimport rego.v1\n\nallow if {\n  input.x ==\n}\n")
    with pytest.raises(PolicyError) as info:
        load_bundle(tmp_path)
    assert info.value.file is not None and info.value.file.endswith("p.rego:6")
    assert info.value.line == 6


def test_malformed_data_is_refused_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package naestro.gate\nimport rego.v1\ndecision := {}\n")
    (tmp_path / "data.json").write_text('{"naestro": {\n  "x": [1,\n}}')
    with pytest.raises(PolicyError, match=r"data.json:3"):
        load_bundle(tmp_path)


def test_engine_errors_fail_closed(bundle: PolicyBundle) -> None:
    dead = OpaRestEngine("http://127.0.0.1:9", None, timeout_s=0.5)  # nothing listens on port 9
    decision = dead.decide({"actor": {}, "action": {}, "context": {}})
    assert decision.verdict == "deny" and "policy engine error (failing closed): opa-rest" in decision.reasons[0]
    undefined = RegorusEngine(bundle).decide({})  # an input the policy cannot decide on
    assert undefined.verdict == "deny" and "policy engine error" in undefined.reasons[0]


def test_bad_rest_url_is_a_config_error() -> None:
    with pytest.raises(PolicyError, match="NAESTRO_POLICY_URL"):
        OpaRestEngine("opa:8181")


@pytest.mark.parametrize(("tool", "args", "code", "verdict"), [
    ("fs.read", '{"path": "a.txt"}', 0, "allow"),
    ("fs.read", '{"path": "../../../../../../../../etc/passwd"}', 3, "deny"),
    ("exec.run", '{"command": "ls"}', 4, "ask"),
    ("nope.tool", "{}", 3, "deny"),
])
def test_policy_check_cli_exit_codes(tool: str, args: str, code: int, verdict: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAESTRO_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["policy", "check", "--role", "coder", "--tool", tool, "--args", args,
                                      "--workspace", str(tmp_path)])
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["verdict"] == verdict


def test_policy_explain_names_the_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAESTRO_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["policy", "explain", "--role", "runner", "--tool", "fs.write",
                                      "--args", '{"path": "/etc/x", "content": "y"}', "--workspace", str(tmp_path)])
    assert result.exit_code == 3
    fired = {f["rule"] for f in json.loads(result.stdout)["fired"]}
    assert fired == {"role_tools", "path_confinement"}
