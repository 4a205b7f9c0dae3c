"""CPU and memory of processes and process trees, read from /proc (Linux).

The benches count work where it is done: a run's MCP servers, sandboxed commands and Postgres backends are
other processes, so ``resource.getrusage`` of the bench alone would miss most of it. One reader for all of them,
so every bench parses ``/proc/<pid>/stat`` the same way (the command name may contain spaces and parentheses:
fields are counted after the last ``)``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    ppid: int
    cpu: float  # seconds: its own, plus its reaped children's
    own_cpu: float
    rss: int  # bytes


def _stat_fields(pid: int | str) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        stat = fh.read()
    return stat[stat.rfind(b")") + 2:].split()


def _proc(fields: list[bytes]) -> Proc:
    own = (int(fields[11]) + int(fields[12])) / _TICK
    return Proc(ppid=int(fields[1]), cpu=own + (int(fields[13]) + int(fields[14])) / _TICK, own_cpu=own,
                rss=int(fields[21]) * _PAGE)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (not counting its children)."""
    return _proc(_stat_fields(pid)).own_cpu


def processes() -> dict[int, Proc]:
    """Every process's parent, CPU and RSS (processes may vanish while this reads: they are left out)."""
    out: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            out[int(entry.name)] = _proc(_stat_fields(entry.name))
        except OSError:
            continue
    return out


def tree(procs: dict[int, Proc], roots: list[int]) -> list[int]:
    """The pids of ``roots`` (those still alive) and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    found, todo = [], [r for r in roots if r in procs]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_rss(pid: int) -> tuple[int, int]:
    """(processes, resident bytes) of ``pid`` and all its descendants."""
    procs = processes()
    pids = tree(procs, [pid])
    return len(pids), sum(procs[p].rss for p in pids)


def mem_available() -> int:
    """Bytes the kernel says new work can use without swapping (MemAvailable)."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0
