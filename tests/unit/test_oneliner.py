"""Unfolding the 1.5B's one-line programs (compound statements after ';') into indented code."""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from naestro.commandcheck import command_problem, repaired_command
from naestro.oneliner import unfolded

NESTED = ("import json; rows = json.loads('[1, 5, 9]'); out = []; for r in rows: if r > 4: out.append(r); "
          "else: out.append(-r); print(out)")


def run(code: str) -> dict[str, object]:
    scope: dict[str, object] = {}
    exec(compile(code, "<test>", "exec"), scope)
    return scope


def test_blocks_nest_greedily_and_continuations_close_them() -> None:
    code = unfolded(NESTED)
    assert code == ("import json\nrows = json.loads('[1, 5, 9]')\nout = []\nfor r in rows:\n    if r > 4:\n"
                    "        out.append(r)\n    else:\n        out.append(-r)\n        print(out)\n")
    assert run(code)["out"] == [-1, 5, 9]
    tried = unfolded("try: import no_such_module; except ImportError: ok = 1; finally: done = 1")
    assert tried is not None and run(tried)["ok"] == 1 and run(tried)["done"] == 1


def test_strings_brackets_and_lambdas_stay_intact() -> None:
    code = unfolded("d = {'a': 1}; for k in sorted(d, key=lambda k: k): if d[k]: s = 'x; for y: z'")
    assert code is not None and run(code)["s"] == "x; for y: z"


def test_only_broken_one_liners_are_touched() -> None:
    assert unfolded("x = 1; print(x)") is None  # compiles already
    assert unfolded("for x in y:\n    if x: pass; for z in w: pass") is None  # multi-line: its own structure
    assert unfolded("if x: print(") is None  # still broken after unfolding


def test_nested_python_checks_are_repaired() -> None:
    command = ("python3 -c \"import csv; with open('a.csv') as f: rows = list(csv.DictReader(f)); "
               "for r in rows: if r['n'] == '1': assert r['v']\"")
    assert command_problem(command) is not None
    fixed = repaired_command(command)
    assert fixed is not None and command_problem(fixed) is None
    code = shlex.split(fixed)[2]
    assert "\n    rows = list(csv.DictReader(f))\n    for r in rows:\n        if r['n'] == '1':" in code


names = st.sampled_from(["a", "b", "c"])
simple = st.builds(lambda n, v: f"{n} = {v}", names, st.integers(0, 9))
header = st.builds(lambda n, v, kw: f"{kw} {n} > {v}:" if kw != "for" else f"for {n} in range({v}):",
                   names, st.integers(0, 9), st.sampled_from(["if", "while", "for"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(simple, header), min_size=1, max_size=8))
def test_whatever_is_returned_compiles(parts: list[str]) -> None:
    code = "; ".join(p if not p.endswith(":") else p + " pass" if i == len(parts) - 1 else p
                     for i, p in enumerate(parts)).replace(":;", ":")
    result = unfolded(code)
    if result is not None:
        compile(result, "<test>", "exec")
        try:
            compile(code, "<test>", "exec")
        except SyntaxError:
            pass
        else:
            raise AssertionError("a program that compiled was changed")
