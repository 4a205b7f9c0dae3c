"""Repairs of the Python a small model types inside JSON actions (naestro/program_repair.py): only unambiguous
slips, kept only when the result compiles, never a change to code that compiles as it is."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from naestro.program_repair import (
    NEWLINES,
    QUOTES,
    UNFOLDED,
    newlines_escaped,
    repaired_code,
    repaired_python_command,
)

# The Coder's command in the issue-22 slice (report goal, attempt 2), as the JSON action decoded it: r['amount']
# inside '...' and a line break inside an f-string. It failed with "SyntaxError: unterminated string literal".
SEEN = ("python3 -c 'import csv\n\nwith open(\"orders.csv\", \"r\") as f:\n    reader = csv.DictReader(f)\n"
        "    orders = list(reader)\n\nbig = [o for o in orders if float(o['amount']) > 100]\n\n"
        "with open(\"big_orders.csv\", \"w\", newline=\"\") as f:\n"
        "    w = csv.DictWriter(f, fieldnames=['id', 'customer', 'amount'])\n    w.writeheader()\n"
        "    w.writerows(big)\n\nwith open(\"report.md\", \"w\") as f:\n"
        "    f.write(f\"Number of big orders: {len(big)}\nTotal: {sum(float(o['amount']) for o in big)}\")'")
ORDERS = "id,customer,amount\n1,ann,50\n2,bob,150.5\n3,cy,100\n4,di,220\n5,ed,99.99\n6,fa,101\n"


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_the_command_seen_in_the_slice_runs_and_computes_what_it_meant(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(ORDERS)
    assert "SyntaxError: unterminated string literal" in _sh(SEEN, tmp_path).stderr
    repair = repaired_python_command(SEEN)
    assert repair is not None and repair.notes == (QUOTES, NEWLINES)
    done = _sh(repair.text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "big_orders.csv").read_text() == "id,customer,amount\n2,bob,150.5\n4,di,220\n6,fa,101\n"
    assert (tmp_path / "report.md").read_text() == "Number of big orders: 3\nTotal: 471.5"


def test_quotes_alone_are_repaired_even_when_the_mangled_code_compiles(tmp_path: Path) -> None:
    # The shell makes this print(d[a]): it compiles, and fails with a NameError at run time.
    command = "python3 -c 'd = {\"a\": 1}; print(d['a'])'"
    repair = repaired_python_command(command)
    assert repair is not None and repair.notes == (QUOTES,)
    assert _sh(repair.text, tmp_path).stdout == "1\n"


def test_working_and_foreign_commands_are_left_alone() -> None:
    for command in ("python3 -c 'print(1)'", "python3 -c \"print('a')\"", "python3 t.py", "cat a.csv | wc -l",
                    "python3 -c 'print(1)' && python3 -c 'print(2)'", "python3 -c 'print(1)' > out.txt",
                    "python3 -c 'print('\"'\"'hi'\"'\"')'",  # the deliberate shell escape of '
                    "python3 -c 'unbalanced", "node -c 'x['a']'"):
        assert repaired_python_command(command) is None, command


def test_a_program_that_no_repair_fixes_is_left_alone() -> None:
    assert repaired_code("print(1\n") is None
    assert repaired_python_command("python3 -c 'print(1'") is None


def test_newlines_in_comments_triple_quotes_and_continuations_are_not_touched() -> None:
    code = 'x = """a\nb"""  # it\'s fine\ny = "c\\\nd"\n'
    assert newlines_escaped(code) is None
    assert repaired_code(code) is None


def test_repairs_combine_with_unfolding() -> None:
    repair = repaired_code("import sys; for a in sys.argv: print(\"arg\n\", a)")
    assert repair is not None and repair.notes == (NEWLINES, UNFOLDED)
    compile(repair.text, "<t>", "exec")


_TEXT = st.text(alphabet=st.characters(blacklist_characters="\\\r", blacklist_categories=("Cs",)), max_size=40)


@given(_TEXT)
def test_a_string_typed_with_line_breaks_means_its_escapes(value: str) -> None:
    """Property: write a string literal as the JSON slip does (each \\n escape a real line break); the repair
    gives back a program that builds exactly that string."""
    code = f"x = {repr(value).replace(chr(92) + 'n', chr(10))}\n"
    repair = repaired_code(code)
    if "\n" not in value:
        assert repair is None
        return
    assert repair is not None and repair.notes == (NEWLINES,)
    scope: dict[str, object] = {}
    exec(compile(repair.text, "<t>", "exec"), scope)  # the property's own generated literal
    assert scope["x"] == value


@given(st.sampled_from(["print(1)", "x = 'a'\ny = \"b\"", "def f():\n    return '''q\nr'''\n", "# c'\nz = 2",
                        "s = 'a\\\nb'", "print(f\"{1}\\n{2}\")"]))
def test_code_that_compiles_is_never_changed(code: str) -> None:
    assert repaired_code(code) is None
    assert repaired_python_command(f"{sys.executable} -c {shlex.quote(code)}") is None
