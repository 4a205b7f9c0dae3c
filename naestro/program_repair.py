"""Mechanical repairs of the Python a small model writes inside a JSON action, kept only when the result compiles.

The 1.5B writes its programs as JSON strings, and two slips in them are unambiguous (issue 22 slice, report goal,
attempt 2: a correct filter program failed three times on them, and the Coder repeated it unchanged):

* ``f.write(f"count: {n}\\ntotal: {t}")`` typed in JSON: the JSON ``\\n`` is a real line break, so the Python
  string literal is cut (``SyntaxError: unterminated string literal``). A single-quoted Python string cannot hold
  a line break, so the only reading is the escape: the break is written back as ``\\n``.
* ``python3 -c 'rows = [r for r in rows if float(r['amount']) > 100]'``: the inner ``'`` ends the shell's
  single-quoted word, so Python runs ``r[amount]`` (a NameError). A ``'`` cannot occur inside ``'...'`` in the
  shell, so the code the model meant is the text between the outer quotes; it is passed quoted properly.

Plus ``naestro.oneliner``'s unfolding of compound statements after ``;``. Each repair is a candidate: it is kept
only if the code then compiles (and the original did not, or the shell would have mangled it), and the agent is
told what was changed (``Repair.notes``), so the program that ran is never a secret.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from naestro.oneliner import unfolded

__all__ = ["Repair", "newlines_escaped", "repaired_code", "repaired_python_command"]

NEWLINES = ("a line break inside a quoted string was written back as \\n (in JSON text \\n IS a line break; for "
            "\\n inside Python code in JSON write \\\\n)")
QUOTES = ("the code between the outer single quotes was run as written (a ' inside '...' ends the shell's string, "
          "so Python would have seen r[amount] for r['amount']; use \"...\" inside, or fs.write a .py file)")
UNFOLDED = "statements after ';' were put on their own indented lines (with/for/if cannot follow ';')"

_PYTHON = re.compile(r"python(3(\.\d+)?)?")
_SINGLE_QUOTED = re.compile(r"\s*(\S+)\s+-c\s+'(.*)'\s*", re.DOTALL)
_SHELL_ESCAPES = ("'\"'\"'", "'\\''")  # the deliberate ways to put ' in a single-quoted shell word


@dataclass(frozen=True)
class Repair:
    """The repaired program (or command) and what was changed, for the agent's observation."""

    text: str
    notes: tuple[str, ...]


def _compiles(code: str) -> bool:
    try:
        compile(code, "<program>", "exec")
    except (SyntaxError, ValueError):  # ValueError: NUL bytes
        return False
    return True


def newlines_escaped(code: str) -> str | None:
    """``code`` with every line break inside a single-line string literal written as ``\\n``; None if there is
    none. Comments, triple-quoted strings and backslash escapes (a ``\\`` before a line break continues the
    literal) are left alone."""
    out: list[str] = []
    quote: str | None = None
    changed, i, n = False, 0, len(code)
    while i < n:
        c = code[i]
        if quote is None:
            if c == "#":
                end = code.find("\n", i)
                end = n if end < 0 else end
                out.append(code[i:end])
                i = end
            elif c in "'\"":
                quote = c * 3 if code.startswith(c * 3, i) else c
                out.append(quote)
                i += len(quote)
            else:
                out.append(c)
                i += 1
        elif c == "\\" and i + 1 < n:
            out.append(code[i:i + 2])
            i += 2
        elif code.startswith(quote, i):
            out.append(quote)
            i += len(quote)
            quote = None
        elif c == "\n" and len(quote) == 1:
            out.append("\\n")
            changed = True
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out) if changed else None


def repaired_code(code: str) -> Repair | None:
    """A compiling version of ``code`` by the repairs above, or None (it compiles already, or they do not help)."""
    if _compiles(code):
        return None
    notes: list[str] = []
    escaped = newlines_escaped(code)
    if escaped is not None:
        code = escaped
        notes.append(NEWLINES)
        if _compiles(code):
            return Repair(code, tuple(notes))
    unfolded_code = unfolded(code)
    if unfolded_code is not None and _compiles(unfolded_code):
        return Repair(unfolded_code, (*notes, UNFOLDED))
    return None


def repaired_python_command(command: str) -> Repair | None:
    """``python3 -c CODE`` (the whole command) with CODE repaired, re-quoted for the shell; None otherwise."""
    match = _SINGLE_QUOTED.fullmatch(command)
    notes: tuple[str, ...]
    if match is not None and _PYTHON.fullmatch(os.path.basename(match[1])) and "'" in match[2] \
            and not any(e in match[2] for e in _SHELL_ESCAPES):
        program, code, notes = match[1], match[2], (QUOTES,)
    else:
        try:
            words = shlex.split(command)
        except ValueError:
            return None
        if len(words) != 3 or not _PYTHON.fullmatch(os.path.basename(words[0])) or words[1] != "-c":
            return None
        program, code, notes = words[0], words[2], ()
    fixed = repaired_code(code)
    if fixed is not None:
        code, notes = fixed.text, (*notes, *fixed.notes)
    elif not notes or not _compiles(code):
        return None
    return Repair(f"{program} -c {shlex.quote(code)}", notes)
