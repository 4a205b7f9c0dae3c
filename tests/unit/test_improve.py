"""The self-improvement loop's guards without runs (issue 21): the allowlist on the real Rego engines, the prompt
delta rule, the config repository's compare-and-swap, Sigstore bundles with real Ed25519 keys, learned priors
from a real SQLite bandit store, and the exported names."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import naestro.improve
from naestro.errors import ConfigError, UsageError
from naestro.improve import ConfigRepo, Proposal, check_proposal, load_active
from naestro.improve.allowlist import change_facts
from naestro.improve.learn import priors_from
from naestro.improve.proposal import changed_role_fields, prompt_delta_for
from naestro.improve.release import publish, sign, verify
from naestro.improve.repo import MAIN, seed_files
from naestro.improve.validate import static_problems
from naestro.introspect import Finding
from naestro.router.bandit import SqliteBanditStore
from policies.engines import PolicyBundle, PolicyEngine, RegorusEngine, available_engines, load_bundle
from policies.regotest import run_rego_tests

ROLES = resources.files("nodes").joinpath("roles.yaml").read_text()
BASE = seed_files()


def test_exported_names() -> None:
    assert naestro.improve.__all__ == ["ActiveConfig", "Change", "ConfigRepo", "FindingsQueue", "GitFailed",
                                       "Proposal", "ProposalKind", "QueuedFinding", "Release", "check_proposal",
                                       "load_active", "releases", "verify", "with_active_priors",
                                       "with_active_prompts"]


def prop(kind: str, changes: dict[str, str | None]) -> Proposal:
    return Proposal.model_validate({"kind": kind, "title": "t", "rationale": "r",
                                    "changes": [{"path": p, "text": t} for p, t in changes.items()]}).identified()


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    """The packaged policies reduced to the improve package: the gate's own Rego tests run elsewhere."""
    full = load_bundle()
    return PolicyBundle(modules={k: v for k, v in full.modules.items() if "improve" in k}, data=full.data,
                        tests={k: v for k, v in full.tests.items() if "improve" in k})


@pytest.fixture(scope="module")
def engines(bundle: PolicyBundle) -> list[PolicyEngine]:
    return available_engines(bundle)


def test_improve_rego_tests_pass_on_every_engine(bundle: PolicyBundle) -> None:
    results = run_rego_tests(bundle)
    assert len(results) >= 8 and all(r.passed for r in results), [r for r in results if not r.passed]


@pytest.mark.parametrize(("kind", "changes", "allowed", "reason"), [
    ("prompt_delta", {"roles.yaml": ROLES.replace("You are the Coder.", "You are the careful Coder.")}, True, ""),
    ("prompt_delta", {"roles.yaml": ROLES.replace("model: fast", "model: default", 1)}, False, "runner.model"),
    ("prompt_delta", {"policies/rego/gate.rego": "package naestro.gate"}, False, "protected"),
    ("tool_adapter", {"naestro/improve/loop.py": "x = 1"}, False, "protected"),
    ("new_test", {"keys/audit_ed25519.pem": "-----"}, False, "protected"),
    ("prompt_delta", {"VERSION": "9.9.9\n"}, False, "protected"),
    ("prompt_delta", {"roles/../policies/x.rego": "p"}, False, "protected"),
    ("prompt_delta", {"/etc/passwd": "root"}, False, "an absolute path"),
    ("prompt_delta", {"../outside.yaml": "x"}, False, "leaves the repository"),
    ("router_prior", {"router/priors.yaml": "[]\n# tuned\n"}, True, ""),
    ("router_prior", {"roles.yaml": ROLES + "\n"}, False, "outside the allowlist"),
    ("new_test", {"golden/ce_x.json": "{}"}, True, ""),
    ("new_test", {"CHANGELOG.md": None}, False, "protected"),
    ("prompt_delta", {}, False, "must change something"),
])
def test_allowlist_decides_before_anything_is_written(kind: str, changes: dict[str, str | None], allowed: bool,
                                                      reason: str, engines: list[PolicyEngine]) -> None:
    for engine in engines:
        decision = check_proposal(prop(kind, changes), BASE, engine)
        assert decision.allow is allowed, (engine.name, decision.reasons)
        assert reason in " ".join(decision.reasons), (engine.name, decision.reasons)


def test_a_test_may_be_added_never_edited_or_deleted(engines: list[PolicyEngine]) -> None:
    base = {**BASE, "golden/ce_a.json": "{}"}
    engine = engines[0]
    assert check_proposal(prop("prompt_delta", {"golden/ce_b.json": "{}"}), base, engine).allow
    for text in ("{\"changed\": 1}", None):
        d = check_proposal(prop("prompt_delta", {"golden/ce_a.json": text}), base, engine)
        assert not d.allow and "tests may only be added" in d.reasons[0]


def test_a_policy_folder_without_the_improve_rule_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "only.rego").write_text("package naestro.gate\n\nimport rego.v1\n\ndecision := {}\n")
    d = check_proposal(prop("new_test", {"golden/x.json": "{}"}), BASE, RegorusEngine(load_bundle(tmp_path)))
    assert not d.allow and "failing closed" in d.reasons[0] and "backtrace" not in d.reasons[0]


@hsettings(max_examples=60, deadline=None)
@given(st.text(alphabet="abc./\\\0-_", min_size=1, max_size=20))
def test_normalised_paths_never_escape(path: str) -> None:
    fact = change_facts(prop("new_test", {path: "x"}), BASE)[0]
    assert fact["problem"] or not (str(fact["path"]).startswith(("/", "../")) or fact["path"] in ("..", "."))


def weak(evidence: str) -> Finding:
    return Finding(kind="weak_prompt", run="r1", task="stats", evidence=evidence, proposal="...")


def test_prompt_delta_is_one_added_line_and_only_once() -> None:
    finding = weak("attempts [1, 2] failed the same way: evaluator: code failed / exited 1")
    p = prompt_delta_for(finding, role="coder", roles_yaml=ROLES)
    assert p is not None and p.kind == "prompt_delta" and p.finding == finding
    new = p.changes[0].text
    assert new is not None
    old_lines, new_lines = ROLES.splitlines(), new.splitlines()
    assert len(new_lines) == len(old_lines) + 1 and [ln for ln in new_lines if ln not in old_lines] == [
        "    When the task has tests or an acceptance command, run exactly that command with exec.run before you "
        "finish, read its whole output, and change the code until it passes: never finish on a failing run."]
    assert changed_role_fields(ROLES, new) == ["coder.prompt"]
    assert yaml.safe_load(new)["coder"]["prompt"].endswith("never finish on a failing run.")
    assert prompt_delta_for(finding, role="coder", roles_yaml=new) is None  # already there
    text = prompt_delta_for(weak("attempts [1, 2] failed the same way: regex: hello.txt"), role="reporter",
                            roles_yaml=ROLES)
    assert text is not None and "character by character" in (text.changes[0].text or "")
    assert prompt_delta_for(Finding(kind="budget", run="r", task="t", evidence="e", proposal="p"), role="coder",
                            roles_yaml=ROLES) is None


def test_static_checks_catch_what_a_policy_might_miss() -> None:
    widened = ROLES.replace("tools: [fs.read, fs.list, fs.write, exec.run]",
                            "tools: [fs.read, fs.list, fs.write, exec.run, web.fetch]", 1)
    assert "coder tools changed" in static_problems(BASE, {**BASE, "roles.yaml": widened})[0]
    assert static_problems(BASE, {**BASE, "router/priors.yaml": "- {endpoint: x, alpha: -1}\n"})
    (problem,) = static_problems(BASE, {**BASE, "golden/x.json": "{}"})
    assert problem.startswith("a golden goal does not load: golden/x.json: ('id',)"), problem  # which file, which field
    assert static_problems(BASE, BASE) == []


def test_config_repo_branches_without_checkout_and_main_moves_by_compare_and_swap(tmp_path: Path) -> None:
    repo = ConfigRepo.open(tmp_path / "config.git")
    base = repo.rev(MAIN)
    assert base is not None and repo.files(MAIN) == BASE
    one = repo.commit(base, {"router/priors.yaml": "- {endpoint: a}\n"}, "one")
    two = repo.commit(base, {"golden/x.json": "{}", "CHANGELOG.md": None}, "two")
    repo.update_ref("refs/heads/improve/one", one, None)
    assert repo.branches() == ["improve/one"] and repo.files(two).keys() == {*BASE} - {"CHANGELOG.md"} | {
        "golden/x.json"}
    repo.update_ref(MAIN, one, base)
    with pytest.raises(UsageError, match="update-ref"):
        repo.update_ref(MAIN, two, base)  # main moved: the second merge must be proposed again
    assert repo.rev(MAIN) == one and repo.log(MAIN)[0][1] == "one"


def test_releases_are_signed_verified_and_tampering_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    improve = tmp_path / "improve"
    repo = ConfigRepo.open(improve / "config.git")
    release = publish(repo, improve, key, proposal=None)
    bundle = json.loads((improve / "releases" / "0.1.0.sigstore.json").read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["messageSignature"]["messageDigest"]["algorithm"] == "SHA2_256"
    verify(release.artifact(), bundle, key.public_key(), where="x")
    with pytest.raises(ConfigError, match="another key"):
        verify(release.artifact(), bundle, Ed25519PrivateKey.generate().public_key(), where="x")
    with pytest.raises(ConfigError, match="signed digest"):
        verify(release.artifact().replace(b"0.1.0", b"0.1.9"), bundle, key.public_key(), where="x")
    forged = json.loads(json.dumps(bundle))
    forged["messageSignature"]["signature"] = sign(b"other", key)["messageSignature"]["signature"]  # type: ignore[index]
    with pytest.raises(ConfigError, match="does not verify"):
        verify(release.artifact(), forged, key.public_key(), where="x")
    active = load_active(improve, key.public_key())
    assert active is not None and active.version == "0.1.0" and active.prompts["coder"].startswith("You are the Coder")
    (improve / "active" / ".release" / "release.sigstore.json").write_text(json.dumps(forged))
    with pytest.raises(ConfigError, match="does not verify"):
        load_active(improve, key.public_key())


def test_priors_learned_from_win_rates_are_capped(tmp_path: Path) -> None:
    store = SqliteBanditStore(tmp_path / "router.sqlite")
    for i in range(40):
        store.add_outcome("coder", "big", reward=1.0, success=i % 4 != 0, cost_usd=0.0, latency_s=1.0)
    store.add_outcome("coder", "small", reward=0.0, success=False, cost_usd=0.0, latency_s=1.0)
    priors = priors_from(store.load())
    store.close()
    assert [(p.kind, p.endpoint, p.alpha, p.beta) for p in priors] == [("coder", "big", 8.5, 3.5)]


async def test_a_model_proposes_one_line_when_the_rules_are_spent() -> None:
    """Scripted model text; the rest real. The rule's sentence is in the prompt already, so the loop asks a model;
    whatever it sends becomes one line of one prompt, and a sentence the prompt has already is no proposal."""
    from langchain_core.messages import BaseMessage

    from naestro.improve.model_proposer import model_prompt_delta
    from tests.fakes import ScriptedProvider, all_text

    finding = weak("attempts [1, 2] failed the same way: evaluator: code failed / exited 1")
    spent = prompt_delta_for(finding, role="coder", roles_yaml=ROLES)
    assert spent is not None and spent.changes[0].text is not None
    roles = spent.changes[0].text
    assert prompt_delta_for(finding, role="coder", roles_yaml=roles) is None
    seen: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, str]:
        seen.append(all_text(messages))
        return {"sentence": "Import the function under test from\nthe module you wrote,   never redefine it."}

    p = await model_prompt_delta(finding, role="coder", roles_yaml=roles, provider=ScriptedProvider(script))
    assert p is not None and p.kind == "prompt_delta" and "Proposed by a model (scripted)" in p.rationale
    assert "exited 1" in seen[0] and "run exactly that command with exec.run" in seen[0]
    new = p.changes[0].text
    assert new is not None and changed_role_fields(roles, new) == ["coder.prompt"]
    assert [ln for ln in new.splitlines() if ln not in roles.splitlines()] == [
        "    Import the function under test from the module you wrote, never redefine it."]
    assert await model_prompt_delta(finding, role="coder", roles_yaml=new, provider=ScriptedProvider(script)) is None
