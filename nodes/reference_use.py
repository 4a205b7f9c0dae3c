"""Where agreed reference results are used: as a check on the task that produces the file, and as a program
offered to the agent after a failed attempt (program-aided). ``nodes.reference`` derives them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from naestro.evaluators import comparison_for
from naestro.oneliner import unfolded
from naestro.plan import AcceptanceCheck, EvaluatorCheck, Plan, Role

__all__ = ["agreed_program", "program_offer", "with_file_checks"]


def _mentions(task_text: str, file: str) -> bool:
    return re.search(r"(?<![\w./-])" + re.escape(file) + r"(?![\w/-])", task_text) is not None


def with_file_checks(plan: Plan, checks: Mapping[str, AcceptanceCheck]) -> Plan:
    """``plan`` with each check (a reference result, the content the goal spells out) on the task that produces its
    file: the last task naming it whose role produces files (not a Reviewer, Runner or Evaluator); else the last
    task naming it; else the plan's last task."""
    producers = (Role.coder, Role.dataops, Role.researcher, Role.reporter)
    accept = {t.id: list(t.accept) for t in plan.tasks}
    for file, check in checks.items():
        naming = [t for t in plan.tasks if _mentions(t.model_dump_json(), file)]
        owner = next((t for t in reversed(naming) if t.role in producers), naming[-1] if naming else plan.tasks[-1])
        accept[owner.id].append(check)
    return plan.model_copy(update={"tasks": tuple(t.model_copy(update={"accept": tuple(accept[t.id])})
                                                  for t in plan.tasks)})


def agreed_program(check: EvaluatorCheck) -> tuple[str, list[str]] | None:
    """(the file, the argv that runs its program) of an *agreed* reference check; None for any other check.

    Any ``alternatives`` key, even empty, marks a result no second program agreed with: a lone usable sample (seen
    in the slice at 6813c51) was offered as "two independent reference programs agreed"."""
    if check.evaluator != "reference" or "alternatives" in check.params:
        return None
    script, file = check.params.get("script"), check.params.get("file")
    if not isinstance(script, str) or not script.strip() or not isinstance(file, str):
        return None
    code = unfolded(script) or script
    if check.params.get("prints") is True:  # its result was what it printed: the file gets its output
        code = ("import contextlib\n"
                f"with open({file!r}, 'w') as _out, contextlib.redirect_stdout(_out):\n"
                f"    exec(compile({code!r}, '<reference>', 'exec'), {{'__name__': '__main__'}})\n")
    # As an argv list, not a shell string: shlex quoting turns each ' of the code into '"'"', and the 1.5B copying
    # the command stopped at the first one (issue-22 slice at 2e86d65: "python3 -c 'import csv ... with open('").
    return file, ["python3", "-c", code]


def program_offer(check: EvaluatorCheck) -> str | None:
    """What a failed attempt is told about an *agreed* reference: the program itself, to run (program-aided).

    Seen on the 1.5B: told three times "/east is 8.5; expected 7.0", it typed 8.5 again each time; running a
    program is what such a model does reliably. Offered only after a failure (the first attempt does the work
    itself) and only when two programs agreed (a lone candidate may be wrong). The file the program writes is still
    compared with the agreed result, so a program the agent changes proves nothing by being run."""
    program = agreed_program(check)
    if program is None:
        return None
    file, argv = program
    arguments = json.dumps({"command": argv})  # a JSON string is what the model writes anyway
    what = (f"It prints the quantities {file} must state: run it, then write them into {file}."
            if comparison_for(file) == "numbers" else f"It writes {file}: run it instead of typing the file by hand.")
    return (f"Two independent reference programs agreed on what {file} must contain. {what}\n"
            f"Run it with exec.run, arguments: {arguments}\n"
            f"{file} is still compared with the agreed result afterwards.")
