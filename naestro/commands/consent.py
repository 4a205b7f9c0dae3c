"""The terminal side of consent: show what a waiting run wants to do and collect approve / deny / edit.

Used by ``naestro run`` and ``naestro resume`` when a gate asks and the terminal is interactive; a
non-interactive caller gets the pending requests printed (or as JSON) and answers with ``naestro approve``.
"""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

    from naestro.runner import PendingConsent
    from policies.gate import ConsentAnswer

__all__ = ["current_user", "describe", "prompt_answers"]


def current_user() -> str:
    """Who answers consent or flips a switch, as recorded in the audit log (the OS login name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def describe(p: PendingConsent) -> str:
    r = p.request
    reasons = r.get("reasons")
    why = "; ".join(str(x) for x in reasons) if isinstance(reasons, list) else str(reasons)
    # Everything but the markup is data from the run (the agent chose the arguments): escaped, never markup.
    return (f"task {escape(str(r.get('task')))} ({escape(str(r.get('role')))}) wants "
            f"[bold]{escape(str(r.get('action')))}[/bold]  risk: {escape(str(r.get('risk')))}\n"
            f"arguments: {escape(json.dumps(r.get('arguments'))[:800])}\nwhy it asks: {escape(why)}")


def prompt_answers(pending: list[PendingConsent], console: Console) -> dict[str, ConsentAnswer]:
    """Ask about each pending request in turn; returns interrupt id → answer."""
    # The gate pulls in the runtime; `naestro --help` imports this module, so the gate loads only when asked.
    from rich.panel import Panel
    from rich.prompt import Prompt

    from policies.gate import ConsentAnswer

    answers: dict[str, ConsentAnswer] = {}
    for p in pending:
        scope = p.request.get("remember_scope") or {}
        scope_text = str(scope.get("tool", "")) if isinstance(scope, dict) else ""
        if isinstance(scope, dict) and scope.get("under"):
            scope_text += f" under {scope['under']}"
        console.print(Panel(describe(p), title="consent needed", border_style="yellow"))
        choice = Prompt.ask(escape(f"[a]pprove once, approve [A]ll ({scope_text}) for this run, [e]dit arguments, "
                                   "[d]eny"),
                            choices=["a", "A", "e", "d"], default="d", console=console)
        purpose = "" if choice == "d" else Prompt.ask("purpose (optional, recorded)", default="", console=console)
        if choice == "e":
            while True:
                raw = Prompt.ask("arguments as JSON", console=console)
                try:
                    edited = json.loads(raw)
                except json.JSONDecodeError as exc:
                    console.print(f"[red]not JSON: {exc.msg}[/red]")
                    continue
                if isinstance(edited, dict):
                    break
                console.print("[red]arguments must be a JSON object[/red]")
            answers[p.id] = ConsentAnswer(approve=True, arguments=edited, by=current_user(), purpose=purpose)
        else:
            answers[p.id] = ConsentAnswer(approve=choice in ("a", "A"), remember=choice == "A", by=current_user(),
                                          purpose=purpose)
    return answers
