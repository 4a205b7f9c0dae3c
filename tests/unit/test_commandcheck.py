"""A command check that can never pass (broken quotes, python -c code that does not compile) is a plan error."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from naestro.commandcheck import command_problem, repaired_command
from naestro.validate import plan_problems

BROKEN = "python3 -c 'import json; with open(\"people.json\") as f: data = json.load(f)'"


def plan_with(command: str) -> dict[str, object]:
    return {"goal": "g", "tasks": [{"id": "t", "role": "coder", "description": "d",
                                    "accept": [{"kind": "command", "command": command}]}]}


def test_compound_statement_after_semicolon_is_named_with_line_and_column() -> None:
    problem = command_problem(BROKEN)
    assert problem is not None and "does not compile" in problem and "line 1, column 14" in problem
    [found] = plan_problems(plan_with(BROKEN))
    assert found.pointer == "/tasks/0/accept/0/command" and "cannot follow ';'" in found.message


def test_checks_that_write_instead_of_verifying_are_plan_errors() -> None:
    for command, what in (("echo 'Hello!' > hello.txt", "writes 'hello.txt' with >"),
                          ("python3 -c \"import json; json.dump({'a': 1}, open('c.json', 'w'))\"", ".dump(...)"),
                          ("python3 -c \"open('x.txt', mode='a').close()\"", "open(..., 'a')"),
                          ("test -f a && sed -i s/a/b/ a", "(sed)"), ("cat a | tee b", "(tee)")):
        problem = command_problem(command)
        assert problem is not None and what in problem and "a check only verifies" in problem, command


def test_a_name_never_defined_is_a_plan_error() -> None:
    command = "python3 -c \"import json; data = json.load(open('a.json')); adults.sort(); print(adults)\""
    assert "uses 'adults' without defining" in (command_problem(command) or "")


def test_unbalanced_quotes_are_a_plan_error() -> None:
    assert "balance its quotes" in (command_problem("python3 -c 'print(1)") or "")


def test_working_checks_pass_validation() -> None:
    for command in ("python3 -c 'from fib import fib; assert fib(10) == 55'",
                    "python3 -c \"import json\nwith open('a.json') as f:\n    assert json.load(f)\"",
                    "cd sub && /usr/bin/python3.11 -c 'print(1)' 2> /dev/null", "python3 -m pytest -q", "test -f a.txt",
                    "python3 -c \"import json; assert json.load(open('c.json'))['a'] == 1\"", "ls *.csv | grep a",
                    "python3 -c \"import os.path, csv\nwith open('a.csv') as f:\n"
                    "    rows = [r for r in csv.reader(f)]\n"
                    "assert os.path.exists('a.csv') and all(len(r) == 2 for r in rows)\"",
                    "python3 -c"):  # incomplete, but only running it can tell
        assert command_problem(command) is None, command
        assert plan_problems(plan_with(command)) == []


@given(st.lists(st.sampled_from(["x = 1", "import os", "assert True", "if x:\n    y = 2", "for i in []:\n    pass",
                                 "print('a;b')", 'print("quote \' inside")']), min_size=1, max_size=6))
def test_any_code_that_compiles_is_accepted_however_it_is_quoted(lines: list[str]) -> None:
    code = "x = 0\n" + "\n".join(lines)
    assert command_problem(f"python3 -c {shlex.quote(code)}") is None


@given(st.text(max_size=80))
def test_arbitrary_commands_never_crash_the_checker(command: str) -> None:
    problem = command_problem(command)
    assert problem is None or isinstance(problem, str)


def test_a_compound_statement_after_a_semicolon_is_moved_to_its_own_line() -> None:
    seen = ("python3 -c \"import csv; with open('adults.csv') as f: rows = list(csv.reader(f)); "
            "assert rows[0] == ['name', 'age']\"")
    fixed = repaired_command(seen)
    assert fixed == ("python3 -c \"import csv\nwith open('adults.csv') as f: rows = list(csv.reader(f)); "
                     "assert rows[0] == ['name', 'age']\"")
    assert command_problem(fixed) is None
    code = shlex.split(fixed)[2]
    assert code.splitlines()[1].startswith("with ")  # the body stays on the with line, as Python reads it


def test_repair_leaves_good_and_otherwise_broken_checks_alone() -> None:
    assert repaired_command("python3 -c \"import json\nassert json.load(open('c.json'))\"") is None  # compiles
    assert repaired_command("python3 -c \"x = ; with open('a') as f: pass\"") is None  # still broken
    assert repaired_command("python3 -c \"import os; with open('a', 'w') as f: f.write('x')\"") is None  # writes


@given(st.lists(st.sampled_from(["import os", "x = 1", "assert x", "with open('a') as f: y = f.read()",
                                 "for i in range(2): x = i", "if x: y = 2"]), min_size=1, max_size=5))
def test_a_repaired_check_always_compiles(statements: list[str]) -> None:
    command = "python3 -c " + shlex.quote("x = 0; " + "; ".join(statements))
    fixed = repaired_command(command)
    assert fixed is None or command_problem(fixed) is None
