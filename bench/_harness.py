"""Run benchmark cases in fresh subprocesses, alternating, and collect time + peak RSS.

Each case is `python SCRIPT --case NAME [args]`, which prints one JSON line. The parent reads
the child's peak resident memory from os.wait4, so every case's memory is its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys


def run_case(script: str, case: str, *args: str) -> dict:
    p = subprocess.Popen([sys.executable, script, "--case", case, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"case {case} failed (status {status})")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb"] = usage.ru_maxrss / 1024
    return res


def alternate(script: str, cases: list[str], reps: int, *args: str) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {c: [] for c in cases}
    for r in range(reps):
        for c in (cases if r % 2 == 0 else cases[::-1]):
            results[c].append(run_case(script, c, *args))
    return results


def median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)
