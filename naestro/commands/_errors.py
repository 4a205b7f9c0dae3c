"""How a command reports a ``NaestroError``: one problem per line on stderr, then the exit code the CLI documents.

Exit 2: bad input (a ``UsageError``: invalid plan, unknown run, bad config, broken policy file); exit 3: the world
failed (endpoint down, tool transport, run paused). A plan's problems are printed one ``pointer: message`` per line,
which scripts and tests read.
"""

from __future__ import annotations

import typer
from rich.console import Console

from naestro.errors import NaestroError, PlanInvalid, UsageError

__all__ = ["err", "fail"]

# soft_wrap: one problem per line even when stderr is not a terminal (rich would wrap at 80 columns).
err = Console(stderr=True, soft_wrap=True)


def fail(exc: NaestroError) -> typer.Exit:
    """Print ``exc`` and return the ``typer.Exit`` to raise (``raise fail(exc) from exc``)."""
    if isinstance(exc, PlanInvalid):
        for p in exc.problems:
            err.print(str(p), markup=False, highlight=False)
    else:
        err.print(f"error: {exc}", markup=False, highlight=False)
    return typer.Exit(2 if isinstance(exc, UsageError) else 3)
