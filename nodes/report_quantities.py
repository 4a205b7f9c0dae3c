"""Which of a report reference's printed quantities the goal asks the report to state.

A report's reference program prints ``name: value`` lines, and the ``reference`` check then asks the report to
state every number printed. Asked for "the grand total of all sales", the 1.5B's agreeing programs also printed
the total of each region, so a report stating exactly the grand total failed its check (the issue-22 golden
slice at 6dd829b: report_region_totals ended FAILED with correct files — a false FAILED). The lines the goal
names are kept: a line whose label words all appear in the goal's phrase for what the report states ("Grand
Total" in "stating the grand total of all sales"); the others are dropped from the expected content.

Nothing is dropped when no line is named (the labels say nothing the goal's words can confirm: every printed
quantity stays required, as before) or when the phrase asks per group ("the total of each region", "per
region", "by region"): a grand total then does not stand for the rest.
"""

from __future__ import annotations

import re

__all__ = ["asked_lines"]

_VERBS = r"(?:stating|states|saying|says|giving|gives|reporting|reports|listing|lists|showing|shows|with)"
_PER_GROUP = re.compile(r"\b(?:each|every|per|by)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")
_STOP = frozenset({"the", "a", "an", "of", "all", "and", "that", "is", "in", "for", "to", "it", "its", "this", "what",
                   "which", "how", "many", "much", "as", "on", "at", "be", "there", "are"})


def _words(text: str) -> set[str]:
    """Content words, singular (``sales`` and ``sale`` are one word)."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in _WORD.findall(text.lower()) if w not in _STOP}


def _phrase(goal: str, file: str) -> str | None:
    """What the goal says the report states: the words after the verb that follows the file's name."""
    found = re.search(re.escape(file) + r"[^.;]*?\b" + _VERBS + r"\b\s+(?P<what>[^.;]+)", goal, re.IGNORECASE)
    return found.group("what") if found else None


def _label(line: str) -> str:
    """The name of a printed quantity: before the colon, else the line's words."""
    name, colon, _ = line.partition(":")
    return name if colon else re.sub(r"[-+]?\d[\d,]*(?:\.\d+)?", " ", line)


def asked_lines(goal: str, file: str, printed: str) -> str:
    """``printed`` restricted to the lines the goal names for ``file`` (see the module's docstring), or unchanged."""
    phrase = _phrase(goal, file)
    if phrase is None or _PER_GROUP.search(phrase):
        return printed
    wanted = _words(phrase)
    lines = [line for line in printed.splitlines() if line.strip()]
    named = [line for line in lines if (label := _words(_label(line))) and label <= wanted]
    if not named or len(named) == len(lines):
        return printed
    return "\n".join(named) + "\n"
