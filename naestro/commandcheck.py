"""Static checks of a plan's ``command`` acceptance checks, so a check that can never pass is a plan error.

Measured on the 1.5B planner (golden goal ``adults_csv``): it wrote checks such as
``python3 -c 'import json; with open("people.json") as f: ...'``, a SyntaxError whatever the agent does (a
compound statement cannot follow ``;``). Every attempt, the Reviewer pass and the re-plan then failed on the
check, not on the work. Caught at validation, the problem goes back to the planner with the line and column.
"""

from __future__ import annotations

import os
import re
import shlex

__all__ = ["command_problem"]

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")


def command_problem(command: str) -> str | None:
    """What makes this shell command unusable as a check, or None (quotes, and ``python -c`` code that fails to
    compile; everything else is only known by running it)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"the command does not parse as a shell command ({exc}); balance its quotes"
    for i, word in enumerate(argv[:-2]):
        if _PYTHON.match(os.path.basename(word)) and argv[i + 1] == "-c":
            try:
                compile(argv[i + 2], "<check>", "exec")
            except SyntaxError as exc:
                return (f"its python -c code does not compile: {exc.msg} (line {exc.lineno}, column {exc.offset}); "
                        "statements such as with/for/if cannot follow ';' on one line: use newlines (\\n) in the "
                        "code, or check with a test file run by python3 -m pytest")
    return None
