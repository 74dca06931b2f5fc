"""Processes as the bench sees them in /proc: who descends from whom, CPU time, peak memory,
and which core each may run on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
# The cores this bench may use, read before it pins anything (itself included).
ALL_CPUS = frozenset(os.sched_getaffinity(0))


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: fields[0] is state (field 3 in proc(5))."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def all_pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def group_pids(pgid: int) -> list[int]:
    """Every process of a process group (a ManagedProcess and whatever it spawned)."""
    found = []
    for pid in all_pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) == pgid:  # field 5: pgrp
            found.append(pid)
    return found


def descendants(root: int) -> list[int]:
    """Every living process below `root` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        fields = _stat_fields(pid)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)  # field 4: ppid
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def tasks(pid: int) -> list[int]:
    try:
        return [int(t.name) for t in (PROC / str(pid) / "task").iterdir()]
    except OSError:
        return []


# ---- CPU time ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CpuSample:
    """CPU time of a set of processes at one instant, two ways:
    `ticks`: utime+stime of each process (exited threads included; 1/CLK_TCK s resolution);
    `task_ns`: each living thread's time on a CPU from schedstat, in nanoseconds."""

    ticks: int
    task_ns: Mapping[tuple[int, int], int]


def sample_cpu(pids: Iterable[int]) -> CpuSample:
    ticks = 0
    task_ns: dict[tuple[int, int], int] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        ticks += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
        for tid in tasks(pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                schedstat = (PROC / str(pid) / "task" / str(tid) / "schedstat").read_text()
                task_ns[(pid, tid)] = int(schedstat.split()[0])
    return CpuSample(ticks, task_ns)


def cpu_seconds_between(before: CpuSample, after: CpuSample) -> float:
    """CPU seconds spent between two samples of the same processes. Nanosecond schedstat
    figures when every thread seen before is still there (a thread started in between counts
    from zero); else the tick counts, which keep the time of threads that exited."""
    if before.task_ns.keys() <= after.task_ns.keys():
        return sum(ns - before.task_ns.get(task, 0) for task, ns in after.task_ns.items()) / 1e9
    return (after.ticks - before.ticks) / CLK_TCK


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy, and stolen by the hypervisor, since boot."""
    fields = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# ---- cores ------------------------------------------------------------------------------------
def pin(pids: Iterable[int], cpus: Iterable[int]) -> None:
    """Restrict every thread of the processes to `cpus`. Threads and processes they start later
    inherit it. (sched_setaffinity on a pid moves that one thread only, hence every task.)"""
    allowed = set(cpus)
    for pid in pids:
        for tid in tasks(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(tid, allowed)
