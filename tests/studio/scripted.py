"""The scripted model text shared by the Studio's API and browser tests (the only fake: LLM text).

The plan: task ``greet`` (Coder) writes a.txt; task ``note`` is a direct shell command writing b.txt, which the
Copilot policy asks a human about. The goal names no files, so no reference programs or goal checks are asked
for: every model call below is one of these three.
"""

from __future__ import annotations

from typing import Any

GOAL = "Greet the team, then leave a note"

PLAN: dict[str, Any] = {"goal": GOAL, "tasks": [
    {"id": "greet", "role": "coder", "description": "write a.txt containing hello",
     "accept": [{"kind": "regex", "file": "a.txt", "pattern": "hello"}]},
    {"id": "note", "role": "runner", "description": "write b.txt with a shell command", "deps": ["greet"],
     "action": {"tool": "exec.run", "arguments": {"command": "echo B > b.txt"}},
     "accept": [{"kind": "file_exists", "path": "b.txt"}]}]}


def reply(text: str, *, answered: int) -> dict[str, Any]:
    """The reply to a prompt whose messages join to ``text``, after ``answered`` assistant turns."""
    if "You are the Planner" in text:
        return PLAN
    if "Write 2-4 sentences" in text:
        return {"summary": "a.txt and b.txt were written."}
    if answered == 0:
        return {"thought": "write it", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "hello\n"}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote a.txt", "outputs": {}}}


def http_script(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """For tests/scripted_openai.py (a Studio in its own process calls the model over HTTP)."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    return reply(text, answered=sum(m.get("role") == "assistant" for m in messages))
