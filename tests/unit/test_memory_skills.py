"""Skill induction, plan shapes, the extraction gate (7B+ only) and the public names of naestro.memory (issue 19)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import naestro.memory
from naestro.endpoints import Endpoint
from naestro.memory import MemoryHit, readable_slices
from naestro.memory.baseline import tokens
from naestro.memory.extraction import ExtractionQueue, extraction_endpoint, params_b
from naestro.memory.retention import Retention, runs_to_forget
from naestro.memory.skills import SkillBook, induce_skills, skill_of

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def plan(goal: str, file: str, *, role: str = "coder") -> dict[str, object]:
    return {"goal": goal, "tasks": [{"id": "write", "role": role, "description": f"Write {file} for: {goal}",
                                     "accept": [{"kind": "command", "command": f"python3 {file}"},
                                                {"kind": "file_exists", "path": file}]}]}


def run_hit(run: str, p: dict[str, object], outcome: str, *, days: int = 0) -> MemoryHit:
    return MemoryHit(key=f"{run}/run/9", run_id=run, kind="run", slice="plans", valid_at=NOW + timedelta(days=days),
                     text=f"Run {run} {outcome}", outcome=outcome, plan=json.dumps(p))  # type: ignore[arg-type]


def test_a_shape_ignores_the_goal_words() -> None:
    a, b = skill_of(plan("write fib.py", "fib.py")), skill_of(plan("write primes.py", "primes.py"))
    assert a is not None and a == b and a.name == "coder[command,file_exists](py)"
    assert skill_of(plan("write data.csv", "data.csv", role="dataops")) != a
    assert skill_of({"tasks": []}) is None


def test_frequent_successful_plans_become_skills_with_safety_metadata(tmp_path: object) -> None:
    runs = [run_hit("r1", plan("write fib.py computing fibonacci", "fib.py"), "passed", days=1),
            run_hit("r2", plan("write primes.py listing primes", "primes.py"), "passed", days=2),
            run_hit("r3", plan("write wc.py counting words", "wc.py"), "failed", days=3),
            run_hit("r4", plan("write data.csv", "data.csv", role="dataops"), "passed", days=4)]
    skills = induce_skills(runs, roles={"coder": ["fs.write", "exec.run"]}, denials={"r2": 1}, consents={"r1": 2},
                           now=NOW)
    assert [s.name for s in skills] == ["coder[command,file_exists](py)"]  # dataops passed once: not yet a skill
    skill = skills[0]
    assert (skill.support, skill.seen, skill.success_rate, skill.runs) == (2, 3, 0.667, ("r1", "r2"))
    assert skill.template["goal"] == "{goal}" and "{goal}" in json.dumps(skill.template["tasks"])
    assert skill.safety.tools == ("exec.run", "fs.write") and skill.safety.shell_checks == 1
    assert (skill.safety.denials_seen, skill.safety.consents_seen) == (1, 2)
    book = SkillBook(tmp_path / "skills.json")  # type: ignore[operator]
    book.save(skills)
    assert book.load() == skills and book.get(skill.id[:10]) == skill


def test_extraction_only_on_7b_or_hosted_endpoints() -> None:
    assert params_b("qwen2.5-coder-1.5b-instruct") == 1.5 and params_b("Qwen2.5-Coder-7B-Instruct") == 7.0
    assert params_b("gpt-4o") is None

    def ep(name: str, model: str, **kw: object) -> Endpoint:
        return Endpoint.model_validate({"name": name, "kind": "openai", "model": model, "context": 8192,
                                        "capabilities": ["json_schema"], "base_url": "http://127.0.0.1:9", **kw})
    local = [ep("small", "qwen2.5-coder-0.5b-instruct"), ep("mid", "qwen2.5-coder-1.5b-instruct")]
    assert extraction_endpoint(local) is None  # this machine's models.yaml: extraction is off
    big = ep("big", "qwen2.5-coder-7b-instruct")
    assert extraction_endpoint([*local, big]) == big
    hosted = ep("cloud", "gpt-4o", locality="cloud")
    assert extraction_endpoint([*local, hosted]) == hosted
    assert extraction_endpoint([ep("nojson", "llama-70b", capabilities=[])]) is None
    client = ExtractionQueue.client_for(big, clamp=1024)
    assert client.clamp == 1024 and client.config.temperature == 0.5
    assert client.config.base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(ValueError, match="temperature"):
        ExtractionQueue.client_for(big, temperature=0.0)


def test_retention_keeps_the_newest_runs() -> None:
    hits = [run_hit(f"r{i}", plan("g", "a.py"), "passed", days=i) for i in range(5)]
    assert runs_to_forget(hits, Retention(keep_runs=2)) == ["r2", "r1", "r0"]
    assert Retention(max_age_days=None).cutoff(NOW) is None


def test_slices_a_role_reads_come_from_policy_data() -> None:
    readable = {"planner": ["plans"], "operator": ["*"], "coder": ["coder", "reviewer"]}
    assert readable_slices(readable, "planner") == ["plans"]
    assert readable_slices(readable, "coder") == ["coder", "reviewer"]
    assert len(readable_slices(readable, "operator")) == 8 and readable_slices(readable, "nobody") == []


def test_tokens_split_file_and_task_names() -> None:
    assert tokens("write_fib failed in fib.py") == ["write_fib", "write", "fib", "failed", "in", "fib.py", "fib", "py"]


def test_public_names_are_pinned() -> None:
    assert sorted(naestro.memory.__all__) == [
        "Entity", "Episode", "Memory", "MemoryHit", "MemoryStore", "Retention", "SLICES", "Skill", "SkillBook",
        "SkillSafety", "Slice", "open_store", "readable_slices", "timeline_json"]
