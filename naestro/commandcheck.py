"""Static checks of a plan's ``command`` acceptance checks, so a check that can never pass, or that does the
work instead of verifying it, is a plan error.

Both seen on the 1.5B planner in the golden suite: ``python3 -c 'import json; with open(...) as f: ...'`` (a
SyntaxError whatever the agent does: a compound statement cannot follow ``;``), and checks that write the
result themselves (``echo '...' > hello.txt``, ``json.dump({...}, open('config.json', 'w'))``), which pass
whatever the agent did — a false success, or they overwrite the agent's correct file. Caught at validation,
the problem goes back to the planner with what is wrong.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import shlex

from naestro.program_repair import repaired_python_command

__all__ = ["command_problem", "repaired_command"]

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_WRITING_PROGRAMS = {"tee", "cp", "mv", "rm", "touch", "mkdir", "dd", "truncate", "install", "ln"}
_WRITING_METHODS = {"write", "write_text", "write_bytes", "writelines", "dump", "unlink", "rmdir", "mkdir",
                    "touch", "rename", "remove", "rmtree", "copy", "copyfile", "move", "makedirs", "savetxt",
                    "to_csv", "to_json"}
_SEPARATORS = {"|", "||", "&", "&&", ";", "(", ")"}
_READ_ONLY = "a check only verifies (a task does the work): test the file, e.g. python3 -c \"... assert ...\""


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _python_writes(code: ast.AST) -> str | None:
    """What the code writes to disk, if anything (open for writing, .write/.dump/... calls)."""
    for node in ast.walk(code):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"),
                                                                 None)
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+"):
                return f"open(..., {mode.value!r})"
        elif isinstance(func, ast.Attribute) and func.attr in _WRITING_METHODS:
            return f".{func.attr}(...)"
    return None


def _undefined_names(code: ast.AST) -> list[str]:
    """Names the code reads but never binds and that are not builtins (pyflakes' "undefined name", flat scope:
    enough for one-line checks, where such a name is a NameError whatever the workspace holds)."""
    bound = set(dir(builtins))
    for node in ast.walk(code):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.ExceptHandler) and node.name:
            bound.add(node.name)
    loaded = [n.id for n in ast.walk(code) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return sorted({n for n in loaded if n not in bound})


def _program_words(words: list[str]) -> list[tuple[int, str]]:
    """(index, word) of each word that starts a simple command (after a separator)."""
    starts, expect = [], True
    for i, w in enumerate(words):
        if w in _SEPARATORS:
            expect = True
        elif expect:
            starts.append((i, w))
            expect = False
    return starts


def command_problem(command: str) -> str | None:
    """What makes this shell command unusable as a check, or None (quotes, ``python -c`` code that fails to
    compile or writes files, redirections and programs that write; the rest is only known by running it)."""
    try:
        words = _words(command)
    except ValueError as exc:
        return f"the command does not parse as a shell command ({exc}); balance its quotes"
    for i, word in enumerate(words[:-1]):
        if word in (">", ">>", ">|", "&>") and words[i + 1] != "/dev/null":
            return f"the check writes {words[i + 1]!r} with {word}; {_READ_ONLY}"
    for i, program in _program_words(words):
        name = os.path.basename(program)
        if name in _WRITING_PROGRAMS or (name == "sed" and "-i" in words[i + 1:i + 3]):
            return f"the check changes files ({name}); {_READ_ONLY}"
        if _PYTHON.match(name) and words[i + 1:i + 2] == ["-c"] and len(words) > i + 2:
            try:
                tree = compile(words[i + 2], "<check>", "exec", flags=ast.PyCF_ONLY_AST)
            except SyntaxError as exc:
                return (f"its python -c code does not compile: {exc.msg} (line {exc.lineno}, column {exc.offset}); "
                        "statements such as with/for/if cannot follow ';' on one line: use newlines (\\n) in the "
                        "code, or check with a test file run by python3 -m pytest")
            if (writes := _python_writes(tree)) is not None:
                return f"its python -c code writes files ({writes}); {_READ_ONLY}"
            if undefined := _undefined_names(tree):
                return (f"its python -c code uses {', '.join(map(repr, undefined))} without defining or importing "
                        "it (a NameError whatever the workspace holds)")
    return None


_COMPOUND_AFTER_SEMICOLON = re.compile(r";[ \t]*(?=(?:with|for|if|while|try)\b)")


def repaired_command(command: str) -> str | None:
    """``command`` repaired so it passes ``command_problem``, or None. Two mechanical fixes: each ``; with`` /
    ``; for`` / ``; if`` ... put on a new line (the 1.5B's commonest check error, ``import csv; with open('a.csv')
    as f: ...``, which it repeats through every re-plan although told how to fix it; what follows the colon stays on
    that line, the statement's body, as Python reads it), and for a lone ``python3 -c CODE`` the agents' program
    repairs (``naestro.program_repair``: nested one-liners unfolded, JSON line breaks in string literals, ``'``
    inside a single-quoted shell word)."""
    if command_problem(command) is None:
        return None
    fixed = _COMPOUND_AFTER_SEMICOLON.sub("\n", command)
    if fixed != command and command_problem(fixed) is None:
        return fixed
    repair = repaired_python_command(command)
    return repair.text if repair is not None and command_problem(repair.text) is None else None
