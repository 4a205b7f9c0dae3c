"""Unfold one-line Python programs whose compound statements follow ``;`` into indented code.

The 1.5B writes ``import csv, json; with open('a') as f, open('b', 'w') as out: rows = json.load(f); for r in
rows: if r['age'] >= 18: out.write(...)`` (a SyntaxError: a compound statement cannot follow ``;``), and asked to
fix it returns the same line (measured on reference programs at temperature 0.5: 4 of 6 samples). What it means is
unambiguous in the common case: each ``with``/``for``/``if``/``while``/``try`` header opens a block holding
everything after it, and ``else``/``elif``/``except``/``finally`` continue the innermost block's header. That reading
is applied token by token (strings, brackets and lambdas stay intact) and kept only if the result compiles; callers
treat the result as a candidate, never as a guaranteed fix (a statement meant to follow a loop lands inside it).
"""

from __future__ import annotations

import io
import tokenize

__all__ = ["unfolded"]

_OPENS = {"with", "for", "if", "while", "try", "def", "class", "async"}
_CONTINUES = {"else", "elif", "except", "finally"}


def _segments(code: str) -> list[str] | None:
    """Top-level statements and block headers (a header keeps its ':'), in order; None if it does not tokenize."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(pos: tuple[int, int]) -> int:
        return offsets[pos[0] - 1] + pos[1]

    out: list[str] = []
    start, depth, first, lambdas = 0, 0, True, 0
    header = False
    for tok in tokens:
        if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING):
            continue
        if first and tok.type == tokenize.NAME:
            header = tok.string in _OPENS | _CONTINUES
        if tok.type not in (tokenize.NEWLINE, tokenize.ENDMARKER):
            first = False
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.NAME and tok.string == "lambda" and depth == 0:
            lambdas += 1
        cut = None
        if depth == 0 and tok.type == tokenize.OP and tok.string == ";":
            cut, keep = at(tok.start), at(tok.end)
        elif depth == 0 and tok.type == tokenize.OP and tok.string == ":" and header:
            if lambdas:
                lambdas -= 1
                continue
            cut = keep = at(tok.end)
        elif tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            cut, keep = at(tok.start), at(tok.end)
        if cut is not None:
            piece = code[start:cut].strip()
            if piece:
                out.append(piece)
            start, first, header, lambdas = keep, True, False, 0
    return out


def unfolded(code: str) -> str | None:
    """``code`` re-indented as described above, if it failed to compile before and compiles after; else None."""
    try:
        compile(code, "<program>", "exec")
        return None
    except SyntaxError:
        pass
    if "\n" in code.strip():
        return None  # a multi-line program has its own structure; only one-liners are unfolded
    segments = _segments(code)
    if not segments:
        return None
    lines: list[str] = []
    headers: list[int] = []  # indentation of each open header
    level = 0
    for seg in segments:
        word = seg.split(None, 1)[0].rstrip(":")
        if word in _CONTINUES and headers:
            level = headers.pop()
        lines.append("    " * level + seg)
        if seg.endswith(":") and (word in _OPENS or word in _CONTINUES):
            headers.append(level)
            level += 1
    result = "\n".join(lines) + "\n"
    try:
        compile(result, "<program>", "exec")
    except SyntaxError:
        return None
    return result
