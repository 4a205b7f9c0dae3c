"""After a reply cut off at the token limit, the agent's next reply is sampled differently, once (the real graph,
gate, MCP tools and journal; only the model's text is scripted). Seen on the 1.5B: near-greedy decoding ran on to
the 2,048-token cap three times in a row from the same context, 5-8 minutes each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from naestro.llm import CUT_OFF
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from nodes.agent import RESAMPLE_TEMPERATURE
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text, stepped_agent

PLAN = Plan.model_validate({"goal": "write hello.txt", "tasks": [{
    "id": "hello", "role": "coder", "description": "Write hello.txt saying hi",
    "accept": [{"kind": "regex", "file": "hello.txt", "pattern": "hi"}]}]})


async def test_the_reply_after_a_cut_off_one_is_sampled_differently_once(settings: Settings) -> None:
    settings = settings.model_copy(update={"review": False})

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        if "Write 2-4 sentences" in all_text(messages):
            return {"summary": "hello.txt written"}
        n = sum(isinstance(m, AIMessage) for m in messages)
        if n == 0:  # what complete_json makes of a reply the server cut at the limit
            return {"__unparsed__": f"{CUT_OFF}; reply with a shorter action"}
        if n == 1:
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "hello.txt", "content": "hi\n"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    provider = ScriptedProvider(script)
    result = await Runner(settings, provider).start("write hello.txt", plan=PLAN)
    assert result.passed
    agent = provider.model.options[:3]  # the Coder's three calls (the Reporter's comes after)
    assert "temperature" not in agent[0] and "seed" not in agent[0]
    assert agent[1] == {"temperature": RESAMPLE_TEMPERATURE, "seed": 1}
    assert "temperature" not in agent[2] and "seed" not in agent[2]


async def test_writing_the_same_content_again_is_pointed_out(settings: Settings) -> None:
    """Seen in the issue-22 slice: write, run (fails), the very same write, run ... until the budget ran out. The
    second identical write still runs, and its result says it changes nothing."""
    settings = settings.model_copy(update={"review": False})
    seen: list[str] = []
    ho, hi = {"path": "hello.txt", "content": "ho\n"}, {"path": "hello.txt", "content": "hi\n"}
    steps = [("fs.write", ho), ("exec.run", {"command": "cat hello.txt"}), ("fs.write", ho), ("fs.write", hi)]

    result = await Runner(settings, ScriptedProvider(stepped_agent(steps, seen))).start(
        "write hello.txt", plan=PLAN, policy=RunPolicy(approve=[ApprovedScope(tool="exec.run")]))
    assert result.passed
    observations = seen[1:5]  # what the 1st..4th tool calls returned
    assert "already wrote exactly this content to hello.txt" not in observations[0]
    assert "already wrote exactly this content to hello.txt" in observations[2]
    assert "already wrote exactly this content" not in observations[3]  # new content


async def test_a_call_repeated_after_being_told_ends_the_attempt(settings: Settings) -> None:
    """Seen in the issue-22 slice: the same 480-token fs.write five times in a row (200-300 s each) until the wall
    guard. The first repeat is pointed out and the next reply sampled differently; a second repeat ends the
    attempt, and the next attempt (with the checks' feedback) gets to do it right."""
    settings = settings.model_copy(update={"review": False})
    calls: list[list[BaseMessage]] = []
    ho = {"thought": "w", "tool": "fs.write", "arguments": {"path": "hello.txt", "content": "ho\n"}}

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        if "Write 2-4 sentences" in all_text(messages):
            return {"summary": "hello.txt written"}
        calls.append(messages)
        if len(calls) <= 3:
            return ho
        if len(calls) == 4:
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "hello.txt", "content": "hi\n"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    provider = ScriptedProvider(script)
    result = await Runner(settings, provider).start("write hello.txt", plan=PLAN)
    assert result.passed and result.tasks["hello"]["attempts"] == 2
    assert sum(isinstance(m, AIMessage) for m in calls[3]) == 0  # the 4th call opened attempt 2
    assert "You just made exactly this fs.write call" in str(calls[2][-1].content)  # pointed out ...
    assert provider.model.options[2] == {"temperature": RESAMPLE_TEMPERATURE, "seed": 2}  # ... and resampled


async def test_writing_back_what_a_file_holds_is_told_and_a_repeat_ends_the_attempt(settings: Settings,
                                                                                    tmp_path: Path) -> None:
    """Issue-22 slice at fda50b7 (tests_fix_median): read stats.py, write the same buggy text back ("fixed"), list
    it, three times per attempt. The fs server says the write changed nothing (journalled, so a replay agrees);
    the agent is told, and the next repeat ends the attempt: attempt 2, with the failed check, fixes it."""
    settings = settings.model_copy(update={"review": False})
    src = tmp_path / "seed"
    src.mkdir()
    (src / "stats.py").write_text(BUGGY)
    plan = Plan.model_validate({"goal": "fix median in stats.py", "tasks": [{
        "id": "fix", "role": "coder", "description": "Fix median in stats.py",
        "accept": [{"kind": "regex", "file": "stats.py", "pattern": "% 2"}]}]})
    seen: list[str] = []
    same = {"path": "stats.py", "content": BUGGY}
    loop = stepped_agent([("fs.read", {"path": "stats.py"}), ("fs.write", same), ("fs.list", {"path": "."}),
                          ("fs.write", same), ("fs.write", {"path": "stats.py", "content": "never written"})], seen)
    fixed = stepped_agent([("fs.write", {"path": "stats.py", "content": FIXED})], seen)

    def script(messages: list[BaseMessage]) -> Any:
        return (fixed if "previous attempt FAILED" in all_text(messages) else loop)(messages)

    result = await Runner(settings, ScriptedProvider(script)).start("fix median", plan=plan, workspace=src)
    assert result.passed and result.tasks["fix"]["attempts"] == 2
    told = [o for o in seen if "already held exactly this content" in o]
    assert len(told) == 1 and told[0].startswith("[fs.write OK]") and '"unchanged": true' in told[0]
    assert (Path(result.record.workspace) / "stats.py").read_text() == FIXED
    assert not any("never written" in o for o in seen)


BUGGY = "def median(xs):\n    xs = sorted(xs)\n    return xs[len(xs) // 2 - 1]\n"
FIXED = ("def median(xs):\n    xs = sorted(xs)\n    n = len(xs)\n"
         "    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2\n")
