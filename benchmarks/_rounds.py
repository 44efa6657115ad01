"""Rounds for benchmarks that compare the same work: alternate the order, summarise the per-round ratios.

Every ``benchmarks/bench_*.py`` calls each side once, untimed (``run_rounds(..., warmup=True)``), then times
each side once per round (``--rounds``, at least 3), in the order :func:`order` gives (reversed on odd rounds,
so no side always runs first, cold or warm), pairs the sides round by round, and prints ``min/median/max`` of
the per-round ratio with :func:`report`. Its last two lines (:func:`print_ratio`) are ``ratio means: <RATIO>``,
the script's declared ``RATIO`` (peer over ours, always ending in :data:`FASTER`), and ``ratio=<median>``.
:func:`fresh_process` runs one side in its own process and returns its wall time, CPU time, peak RSS and
output, for sides that must not share a warm interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

MIN_ROUNDS = 3
FASTER = "(> 1: ours faster)"  # the one direction of every benchmark's ``ratio=``: peer cost over ours


def check_rounds(rounds: int) -> int:
    if rounds < MIN_ROUNDS:
        raise ValueError(f"rounds={rounds}: a comparison needs at least {MIN_ROUNDS} rounds")
    return rounds


def rounds_arg(value: str) -> int:
    """``argparse`` type of ``--rounds``: an int of at least 3."""
    import argparse

    try:
        return check_rounds(int(value))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def order(sides: Sequence[str], round_index: int) -> list[str]:
    """The sides in the order round ``round_index`` runs them: as given on even rounds, reversed on odd ones."""
    return list(sides) if round_index % 2 == 0 else list(reversed(sides))


@dataclass
class Rounds:
    """Per-side values of every round (index = round) and the order each round ran in."""

    values: dict[str, list[float]] = field(default_factory=dict)
    orders: list[list[str]] = field(default_factory=list)

    def ratios(self, num: str, den: str) -> list[float]:
        """``num / den`` per round (both sides' values of the same round)."""
        return [a / b for a, b in zip(self.values[num], self.values[den])]


def run_rounds(sides: Mapping[str, Callable[[], float]], rounds: int = MIN_ROUNDS, *, warmup: bool = False,
               unit: str = "", log: Callable[[str], None] | None = print) -> Rounds:
    """Call every side once per round in alternating order; each call returns the number to compare
    (seconds, tokens/s, ...). ``warmup`` calls every side once first, untimed and unrecorded."""
    check_rounds(rounds)
    if warmup:
        for fn in sides.values():
            fn()
    out = Rounds(values={name: [] for name in sides})
    for r in range(rounds):
        seq = order(list(sides), r)
        out.orders.append(seq)
        for name in seq:
            value = sides[name]()
            out.values[name].append(value)
            if log is not None:
                log(f"round {r} {name}: {value:.4g}{(' ' + unit) if unit else ''}")
    return out


@dataclass(frozen=True)
class Summary:
    n: int
    min: float
    median: float
    max: float

    def describe(self, digits: int = 3, what: str = "rounds") -> str:
        d = digits
        return f"min={self.min:.{d}f} median={self.median:.{d}f} max={self.max:.{d}f} over {self.n} {what}"

    def __str__(self) -> str:
        return self.describe()


def summarize(ratios: Sequence[float]) -> Summary:
    if not ratios:
        raise ValueError("no ratios to summarise")
    return Summary(n=len(ratios), min=min(ratios), median=statistics.median(ratios), max=max(ratios))


def report(name: str, ratios: Sequence[float], note: str = "") -> Summary:
    """Print ``<name>: min=… median=… max=… over N rounds [note]`` and return the summary."""
    s = summarize(ratios)
    print(f"{name}: {s}{(' ' + note) if note else ''}", flush=True)
    return s


def print_ratio(ratios: Sequence[float], means: str) -> float:
    """The benchmark's last two lines: ``ratio means: <means>`` and ``ratio=<median of the per-round ratios>``.
    ``means`` (the script's ``RATIO``) says what is divided by what, and must end in :data:`FASTER`."""
    if not means.endswith(FASTER):
        raise ValueError(f"ratio meaning {means!r} must be peer over ours and end in {FASTER!r}")
    med = summarize(ratios).median
    print(f"ratio means: {means}", flush=True)
    print(f"ratio={med:.3f}", flush=True)
    return med


@dataclass
class ProcessRun:
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu_s: float = float("nan")  # user + system CPU of the child and the descendants it waited for

    def last_json(self) -> dict:
        """The last stdout line that parses as a JSON object (a child's report)."""
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise ValueError(f"no JSON line in the child's output: {self.stdout[-500:]!r}")


# A small launcher spawns the command and reports its wait4 rusage: a child forked from a large process (pytest, a
# benchmark holding a model) would inherit the parent's high-water RSS across exec, so ru_maxrss could not go below it.
SPAWN = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": time.perf_counter() - t0, "maxrss_kb": ru.ru_maxrss, "code": code,
               "cpu_s": ru.ru_utime + ru.ru_stime}, f)
sys.exit(code)
"""


def fresh_process(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                  timeout_s: float | None = None) -> ProcessRun:
    """Run ``cmd`` in a new process; its wall time and peak RSS (that child alone, from ``os.wait4``)."""
    exe = shutil.which(str(cmd[0])) or str(cmd[0])
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "rusage.json"
        with open(Path(tmp) / "out", "w+") as out, open(Path(tmp) / "err", "w+") as err:
            proc = subprocess.Popen([sys.executable, "-S", "-c", SPAWN, str(res), exe, *map(str, cmd[1:])],
                                    stdout=out, stderr=err, env={**os.environ, **(env or {})}, text=True,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        usage = json.loads(res.read_text()) if res.is_file() else {"seconds": float("nan"), "maxrss_kb": 0}
    run = ProcessRun(wall_s=usage["seconds"], peak_rss_mb=usage["maxrss_kb"] / 1024, stdout=stdout, stderr=stderr,
                     cpu_s=usage.get("cpu_s", float("nan")))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:3]))} failed (exit {proc.returncode}): {run.stderr[-1500:]}")
    return run
