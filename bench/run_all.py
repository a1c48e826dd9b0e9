"""Run every `bench/bench_*.py` in turn and summarise their goals.

    .venv/bin/python bench/run_all.py      (or `make bench`)

Each benchmark prints its own figures and `GOAL <name>: ... PASS|MISS` lines. A missed goal is
reported, not fatal: the exit status is non-zero only when a benchmark itself fails.
`bench_sync.py` (B3/B4) and `bench_webhooks.py` (B6) exit with status 1 when they miss a goal
and 2 when they break; status 1 with MISS lines counts as missed goals here, not as a failure.
`bench_sync.py` runs 100,000-lot syncs and takes several minutes; `BENCH_SYNC_ARGS="--lots
20000"` passes options to it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# Exit with status 1 on a missed goal (2 when broken).
STATUS_1_ON_MISS = {"bench_sync.py", "bench_webhooks.py"}


def main() -> int:
    goals: list[str] = []
    failed: list[str] = []
    for script in sorted(BENCH_DIR.glob("bench_*.py")):
        print(f"=== {script.name}", flush=True)
        extra = []
        if script.name == "bench_sync.py":
            extra = shlex.split(os.environ.get("BENCH_SYNC_ARGS", ""))
        process = subprocess.Popen(
            [sys.executable, str(script), *extra],
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH_DIR.parent,
        )
        assert process.stdout is not None
        missed = False
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("GOAL "):
                goals.append(f"{script.name}: {line.removeprefix('GOAL ').strip()}")
                missed = missed or line.rstrip().endswith("MISS")
        status = process.wait()
        if status != 0 and not (script.name in STATUS_1_ON_MISS and status == 1 and missed):
            failed.append(f"{script.name} exited with status {process.returncode}")
        print()
    print("=== summary")
    for line in goals:
        print(line)
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
