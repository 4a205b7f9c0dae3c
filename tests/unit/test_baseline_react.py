"""The ReAct baseline's parser: what a plain text agent's reply means (LangChain's ReAct format)."""

from __future__ import annotations

from naestro.baseline import _parse_react


def test_action_and_json_input_are_parsed() -> None:
    text = 'Thought: write it\nAction: fs.write\nAction Input: {"path": "a.txt", "content": "x"}\n'
    assert _parse_react(text) == ("fs.write", {"path": "a.txt", "content": "x"})
    assert _parse_react('Action: `exec.run`\nAction Input: ```json\n{"command": "ls"}\n```') == (
        "exec.run", {"command": "ls"})


def test_final_answer_finishes() -> None:
    assert _parse_react("Thought: I now know the final answer\nFinal Answer: wrote a.txt") == (
        "finish", {"summary": "wrote a.txt"})


def test_malformed_replies_become_observations() -> None:
    assert "Missing 'Action:'" in str(_parse_react("I will write the file now."))
    assert "not valid JSON" in str(_parse_react("Action: fs.read\nAction Input: {path: a.txt}"))
    assert "must be a JSON object" in str(_parse_react("Action: fs.read\nAction Input: a.txt"))
