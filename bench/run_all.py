"""Run every `bench/bench_*.py` in turn and summarise their goals.

    .venv/bin/python bench/run_all.py      (or `make bench`)

Each benchmark prints its own figures and `GOAL <name>: ... PASS|MISS` lines. A missed goal is
reported, not fatal: the exit status is non-zero only when a benchmark itself fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main() -> int:
    goals: list[str] = []
    failed: list[str] = []
    for script in sorted(BENCH_DIR.glob("bench_*.py")):
        print(f"=== {script.name}", flush=True)
        process = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=BENCH_DIR.parent
        )
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("GOAL "):
                goals.append(f"{script.name}: {line.removeprefix('GOAL ').strip()}")
        if process.wait() != 0:
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
