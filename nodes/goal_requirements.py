"""What the goal itself asks for, read from its words, independent of the model's plan (issue 22).

A plan is written by a model and checks what the model thought of: a goal "write add in a.py, add pytest tests in
test_a.py, and make the tests pass" ran as one task whose only check imported ``add``; test_a.py was never run (it
failed with ``NameError``) and the run said PASSED. So before a run may pass, the goal's own deliverables are
checked on the final workspace (``nodes.goal_checks``). This module derives them, deterministically:

- every file the goal names that does not exist when the run starts (a deliverable): it must exist, non-empty;
  a ``.py`` file must compile and a ``.json`` file must parse;
- tests: a test file the goal names (``test_x.py`` / ``x_test.py``) or words like "make the tests pass" /
  "pytest": pytest runs on those files (on the workspace when none is named) and must pass;
- "columns X, Y" / "header X,Y" next to a CSV deliverable, "keys a, b" next to a JSON deliverable;
- a report (``.md``/``.txt``/``.html`` deliverable) that "states"/"contains" a quoted text, or a quantity
  (a total, a count ...): the text, or a number, must be in it;
- "hello.txt whose only line is exactly: Hello!" / "x.txt containing exactly 'ok'": the file's whole content (less
  surrounding whitespace) is that text (golden run at 1dce5ed, hello_file: two reference programs wrote the line
  with csv.writer, which quotes a field holding a comma, they agreed on '"Hello, Naestro!"', the Coder matched
  them and the run said PASSED twice);
- "do not change test_x.py" / "without modifying a.py" / "leave b.csv unchanged": a file the run starts with must
  end with the same content (golden run 2026-12-07, tests_fix_median: the Coder rewrote the tests it was told not to
  change until they passed, and the run said PASSED).

A requirement is only derived from words that are in the goal: a name the goal spells, columns it lists. What
needs judgement (is the summary good?) is left to the plan's evaluators. Files that exist at the start are inputs:
"sales.csv has columns region,amount" describes the data, it asks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["GoalRequirement", "derive_requirements", "described_inputs", "files_named", "is_test_file",
           "kept_unchanged", "stated_contents", "validated"]

_EXT = "py|txt|csv|tsv|json|jsonl|md|yaml|yml|toml|html|sh|sql|xml|ini|cfg|js|ts"
_FILE = re.compile(rf"(?<![\w./-])(?:\./)?((?:[\w-]+/)*[\w-]+\.(?:{_EXT}))(?![\w/-])(?!\.\w)")
_TEST_FILE = re.compile(r"(?:^|/)(?:test_[\w-]*|[\w-]+_test)\.py$")
_TESTS_PASS = re.compile(r"(?i)\b(?:tests?|test suite|pytest)\b[^.;\n]{0,40}?\bpass(?:es|ing)?\b|\bpassing tests\b"
                         r"|\bpytest\b")
_DELETED = re.compile(r"(?i)\b(?:delete|remove|rm)\s+(?:the\s+)?(?:file\s+)?$")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_COLUMNS = re.compile(r"(?i)\b(?:columns|header(?:\s+row)?|fields)\b(?:\s+(?:named|called|of))?\s*:?\s*")
_KEYS = re.compile(r"(?i)\b(?:keys|fields|key)\b(?:\s+(?:named|called))?\s*:?\s*")
_STATES = re.compile(r"(?i)\b(?:stat(?:e|es|ing)|contain(?:s|ing)?|say(?:s|ing)?|mention(?:s|ing)?|"
                     r"includ(?:e|es|ing)|giv(?:e|es|ing))\b")
_QUOTED = re.compile(r"\"([^\"\n]{1,80})\"|`([^`\n]{1,80})`|(?<!\w)'([^'\n]{1,80})'(?!\w)")
# "whose only line is exactly: X", "its content must be exactly X", "containing exactly 'X'", "with exactly the
# text X": the whole file. A first/last line "is exactly" says nothing of the rest, so it is not read.
_EXACT = re.compile(
    r"(?i)\b(?:(?:only|single|one|entire|whole)\s+line|contents?|text)\s+(?:is|are|reads|says|should\s+be|"
    r"must\s+be)\s+exactly\b\s*:?\s*"
    # "containing exactly 3 rows" counts, it does not spell the content: these words need a colon or a quote
    r"|\b(?:containing|contains|that\s+(?:says|reads|contains)|reading|saying|with)\s+exactly\b"
    r"(?:\s+(?:the\s+)?(?:text|content|line)\b\s*:?\s*|\s*:\s*|\s*(?=[\"'`\u201c]))")
_COUNT = re.compile(r"(?i)\d+\s+(?:lines?|rows?|characters?|chars|words?|bytes?|items?|entries|columns?)\b")
_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d"}
_QUANTITY = re.compile(r"(?i)\b(?:total|sum|count|number of|average|mean|median|how many|percent(?:age)?|"
                       r"maximum|minimum|max|min)\b")
_KEEP_VERB = (r"(?:change|modify|edit|touch|alter|rewrite|overwrite|update|delete|remove)")
_UNCHANGED = [
    re.compile(rf"(?i)\b(?:do\s+not|don'?t|never|must\s+not|should\s+not|without|not\s+to)\s+(?:\w+ly\s+)?"
               rf"{_KEEP_VERB}(?:s|d|ing)?\b((?:[^.;!?\n]|\.(?=\w))*)"),
    re.compile(r"(?i)\b(?:leave|keep)\b((?:[^.;!?\n]|\.(?=\w))*?)\b"
               r"(?:unchanged|untouched|unmodified|intact|as\s+it\s+is|as\s+is)\b"),
    re.compile(r"(?i)((?:[\w./-]+\.\w+[\s,]*(?:and\s+)?)+)\s*(?:must|should|has\s+to|have\s+to)\s+"
               r"(?:stay|remain|be\s+left)\s+(?:unchanged|the\s+same|untouched|as\s+it\s+is)"),
]
# "orders.csv has columns id,amount", "people.json is a list of people", "Read sales.csv (columns ...)": the goal
# describes the file as the data it works from.
_INPUT = [re.compile(r"(?i)(?<![\w./-])(?:\./)?([\w./-]+\.\w+)\s+"
                     r"(?:has|have|holds|lists|contains|is\s+a\s+(?:list|table))\b"),
          re.compile(r"(?i)\b(?:read|reads|reading|load|loads|loading|from)\s+(?:the\s+)?(?:file\s+)?"
                     r"(?:\./)?([\w./-]+\.\w+)")]
_CHANGE = re.compile(r"(?i)\b(?:fix|change|modify|edit|update|write|implement|create|refactor|rewrite|correct|"
                     r"repair|patch)(?:es|s|ed|ing)?\b((?:[^.;!?\n]|\.(?=\w))*)")
_NEGATED = re.compile(r"(?i)\b(?:not|n't|never|without)\s*$")
_NEGATION = re.compile(r"(?i)\b(?:without|but|do\s+not|does\s+not|don'?t|never|except|must\s+not)\b")
_NEXT_CLAUSE = re.compile(r"(?i)\b(?:and|then|but|so|to)\s+(?![\w./-]+\.\w)")
_ITEM = re.compile(r"\"([^\"\n]{1,40})\"|`([^`\n]{1,40})`|'([^'\n]{1,40})'|([A-Za-z_][\w-]{0,40})")
_SEP = re.compile(r"\s*(?:,\s*(?:and\s+)?|/|\s+and\s+)")
_BOUNDARY = re.compile(r"\s*(?:$|[.,;:()!?\n])")
_STOP = frozenset(("a", "an", "the", "and", "or", "of", "per", "for", "with", "that", "which", "from", "to", "in",
                   "into", "on", "each", "is", "are", "as", "by", "one", "every", "its", "their", "this", "these",
                   "those", "all", "any", "sorted", "ordered"))
REPORTS = (".md", ".txt", ".html")
_TABLES, _OBJECTS = (".csv", ".tsv"), (".json", ".jsonl")

Kind = Literal["file", "tests", "columns", "keys", "states", "unchanged", "exact"]


class GoalRequirement(BaseModel):
    """One thing the goal asks for, with the goal's own words it was read from (shown in the report)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    file: str = ""  # the deliverable; "" for tests on the whole workspace
    items: tuple[str, ...] = ()  # test files, columns, keys, the quoted texts a report must contain, (unchanged)
    # the sha256 of the file's content when the run started, or (exact) the content as the goal spells it and, for
    # an unquoted text ending in ".", the same without that period (the sentence's or the text's: either passes)
    quantity: bool = False  # ``states``: the report must state a number
    exercises: tuple[str, ...] = ()  # ``tests``: the goal's code files the tests must fail without
    words: str = ""  # the goal's words this came from

    def describe(self) -> str:
        match self.kind:
            case "file":
                return f"{self.file} exists and is not empty"
            case "tests":
                tested = f" and fails without {', '.join(self.exercises)}" if self.exercises else ""
                return f"pytest passes on {', '.join(self.items) or 'the workspace'}{tested}"
            case "columns":
                return f"{self.file} has the columns {', '.join(self.items)}"
            case "keys":
                return f"{self.file} has the keys {', '.join(self.items)}"
            case "states":
                what = [repr(i) for i in self.items] + (["a number"] if self.quantity else [])
                return f"{self.file} states {' and '.join(what)}"
            case "unchanged":
                return f"{self.file} is unchanged"
            case "exact":
                return f"{self.file} is exactly {self.items[0]!r}"


def is_test_file(name: str) -> bool:
    return _TEST_FILE.search(name) is not None


def files_named(text: str) -> list[str]:
    """The workspace-relative file names ``text`` spells, in order, once each (no absolute or parent paths)."""
    out: dict[str, None] = {}
    for m in _FILE.finditer(text):
        name = m.group(1)
        if ".." not in name.split("/") and not _DELETED.search(text[:m.start()]):
            out.setdefault(name, None)
    return list(out)


def _items(text: str) -> tuple[tuple[str, ...], bool]:
    """The list at the start of ``text`` (``region,total``, ``name, age and city``, ``"a b", "c"``), and whether
    any item was quoted. A plain word after "and" counts only when the clause ends there: "header region,total
    and one row per region" lists two columns, not three."""
    items: list[str] = []
    quoted = False
    pos, joined_by_and = 0, False
    while True:
        m = _ITEM.match(text, pos)
        if m is None:
            break
        word = next(g for g in m.groups() if g is not None)
        if m.group(4) is not None and word.lower() in _STOP:
            break
        if joined_by_and and m.group(4) is not None and not _BOUNDARY.match(text, m.end()):
            break
        quoted |= m.group(4) is None
        items.append(word.strip())
        sep = _SEP.match(text, m.end())
        if sep is None or sep.end() == m.end():
            break
        pos, joined_by_and = sep.end(), "and" in sep.group().lower()
    return tuple(items), quoted


def _nearest(sentence: str, at: int, names: list[tuple[int, str]], suffixes: tuple[str, ...]) -> str | None:
    """The deliverable with one of ``suffixes`` the phrase at ``at`` is about: the nearest before it in the
    sentence, else the first after it."""
    fitting = [(pos, n) for pos, n in names if n.endswith(suffixes)]
    before = [n for pos, n in fitting if pos < at]
    after = [n for pos, n in fitting if pos >= at]
    return before[-1] if before else (after[0] if after else None)


def _targets(goal: str) -> set[str]:
    """Files the goal asks to change ("fix a.py", "update the totals in report.md"): a "do not change the signature
    of add in a.py" elsewhere is about a part of such a file, not the whole file."""
    out: set[str] = set()
    for sentence in _SENTENCE.split(goal):
        for m in _CHANGE.finditer(sentence):
            if not _NEGATED.search(sentence[max(0, m.start() - 16):m.start()]):
                clause = _NEGATION.split(m.group(1), maxsplit=1)[0]  # "fix a.py without modifying test_a.py"
                out.update(files_named(_NEXT_CLAUSE.split(clause, maxsplit=1)[0]))
    return out


def kept_unchanged(goal: str) -> list[str]:
    """The files ``goal`` keeps as they are: those it says must not be changed ("do not change test_x.py", "leave
    a.csv untouched"), unless it also asks to change them, and its described inputs (``described_inputs``)."""
    out: dict[str, None] = {}
    targets = _targets(goal)
    for sentence in _SENTENCE.split(goal):
        for pattern in _UNCHANGED:
            for m in pattern.finditer(sentence):
                # "without modifying test_a.py and write b.py": the clause ends where another verb starts
                clause = _NEXT_CLAUSE.split(m.group(1), maxsplit=1)[0]
                for name in files_named(clause):
                    if name not in targets:
                        out.setdefault(name, None)
    for name in described_inputs(goal):
        out.setdefault(name, None)
    return list(out)


def described_inputs(goal: str) -> list[str]:
    """The data files ``goal`` describes as what it works from ("scores.csv has columns student,score", "Read
    sales.csv") and names nowhere else, so it asks nothing of them but to be read.

    Seen in the issue-22 golden slice at 6dd829b: a re-planned Coder task wrote invented rows over scores.csv (the
    goal's input) and computed its statistics from them. A file the goal mentions again ("stats.py has a bug. Fix
    stats.py") may be meant to change, so it is not counted."""
    named = [m.group(1) for m in _FILE.finditer(goal)]
    targets = _targets(goal)
    out: dict[str, None] = {}
    for pattern in _INPUT:
        for m in pattern.finditer(goal):
            name = m.group(1).removeprefix("./")
            if named.count(name) == 1 and name not in targets and not is_test_file(name):
                out.setdefault(name, None)
    return list(out)


def _literal(rest: str) -> tuple[str, ...]:
    """The text at the start of ``rest``: a quoted one as quoted; else the rest of the sentence, and without its
    final "." too (sentence punctuation or part of the text: the goal does not say)."""
    close = _QUOTES.get(rest[:1])
    if close is not None and (end := rest.find(close, 1)) > 1:
        return (rest[1:end],)
    text = rest.strip()
    if not text or _COUNT.match(text):
        return ()
    return (text, text[:-1].rstrip()) if text.endswith(".") and text[:-1].strip() else (text,)


def stated_contents(goal: str) -> dict[str, tuple[str, ...]]:
    """The files whose whole content the goal spells out ("hello.txt whose only line is exactly: Hello!"): the
    nearest file named before the words in the same sentence, unless the goal keeps it as it is."""
    kept = set(kept_unchanged(goal))
    out: dict[str, tuple[str, ...]] = {}
    for sentence in _SENTENCE.split(goal):
        for m in _EXACT.finditer(sentence):
            before = [f.group(1) for f in _FILE.finditer(sentence[:m.start()])]
            texts = _literal(sentence[m.end():])
            if before and texts and before[-1] not in kept:
                out.setdefault(before[-1], texts)
    return out


def derive_requirements(goal: str, *, exists: Callable[[str], bool],
                        digest: Callable[[str], str | None] | None = None) -> list[GoalRequirement]:
    """What ``goal`` asks for; ``exists(name)`` tells which files the run starts with (inputs, not deliverables);
    ``digest(name)``, the sha256 of such a file's content now (files the goal says not to change keep it)."""
    reqs: list[GoalRequirement] = []
    named = files_named(goal)
    if digest is not None:
        for name in kept_unchanged(goal):
            if (sha := digest(name)) is not None:
                reqs.append(GoalRequirement(kind="unchanged", file=name, items=(sha,), words=name))
    deliverables = [n for n in named if not exists(n)]
    reqs += [GoalRequirement(kind="file", file=n, words=n) for n in deliverables]
    tests = [n for n in named if is_test_file(n)]
    asked = _TESTS_PASS.search(goal) or next(
        (m for t in tests if (m := re.search(re.escape(t) + r"[^.;\n]{0,40}?\bpass(?:es|ing)?\b", goal))), None)
    if asked or any(not exists(t) for t in tests):
        code = tuple(n for n in named if n.endswith(".py") and not is_test_file(n)
                     and Path(n).name != "conftest.py")  # written or fixed: the tests must use it
        reqs.append(GoalRequirement(kind="tests", items=tuple(tests), exercises=code,
                                    words=asked.group(0) if asked else ", ".join(tests)))
    reqs += [GoalRequirement(kind="exact", file=name, items=texts, words=texts[0])
             for name, texts in stated_contents(goal).items()]
    for sentence in _SENTENCE.split(goal):
        mine = [(m.start(), m.group(1)) for m in _FILE.finditer(sentence) if m.group(1) in deliverables]
        if not mine:
            continue
        for pattern, suffixes, kind in ((_COLUMNS, _TABLES, "columns"), (_KEYS, _OBJECTS, "keys")):
            for m in pattern.finditer(sentence):
                items, quoted = _items(sentence[m.end():])
                file = _nearest(sentence, m.start(), mine, suffixes)
                if file is None or not items or (len(items) < 2 and not quoted):
                    continue
                kind_: Kind = "columns" if kind == "columns" else "keys"
                reqs.append(GoalRequirement(kind=kind_, file=file, items=items,
                                            words=sentence[m.start():m.end()] + ", ".join(items)))
        verbs = list(_STATES.finditer(sentence))
        for i, m in enumerate(verbs):
            # The verb is about the deliverable named just before it ("big.csv containing only ..., and
            # report.md stating how many"), else the first after it; it asks something only of a report.
            file = _nearest(sentence, m.start(), mine, ("",))
            if file is None or not file.endswith(REPORTS):
                continue
            end = min([pos for pos, _ in mine if pos > m.end()] + [verbs[i + 1].start() if i + 1 < len(verbs)
                                                                     else len(sentence)])
            said = sentence[m.end():end]
            texts = tuple(next(g for g in q.groups() if g is not None) for q in _QUOTED.finditer(said))
            quantity = not texts and _QUANTITY.search(said) is not None
            if texts or quantity:
                reqs.append(GoalRequirement(kind="states", file=file, items=texts, quantity=quantity,
                                            words=(m.group(0) + said).strip()[:200]))
    return _unique(reqs)


def _unique(reqs: list[GoalRequirement]) -> list[GoalRequirement]:
    return list(dict.fromkeys(reqs))


def validated(goal: str, proposed: list[GoalRequirement], *,
              exists: Callable[[str], bool]) -> tuple[list[GoalRequirement], list[str]]:
    """Requirements another source (a model) proposes, kept only where the goal's words back them: the file is
    a deliverable the goal names, every column, key, test file and text occurs in the goal. Returns what is kept
    and why the rest was refused; a helper may add what the patterns missed, never invent."""
    named = set(files_named(goal))
    lowered = goal.lower()
    kept, refused = [], []
    for req in proposed:
        if req.file and (req.file not in named or exists(req.file)) and req.kind != "tests":
            refused.append(f"{req.describe()}: {req.file} is not a file the goal asks for (not named, or an input)")
        elif req.kind == "tests" and any(t not in named for t in req.items):
            refused.append(f"{req.describe()}: a test file the goal does not name")
        elif any(i.lower() not in lowered for i in req.items):
            refused.append(f"{req.describe()}: not in the goal's words")
        elif req.kind == "tests" and not req.items and _TESTS_PASS.search(goal) is None:
            refused.append(f"{req.describe()}: the goal does not ask for passing tests")
        else:
            kept.append(req)
    return kept, refused
