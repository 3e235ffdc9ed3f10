"""The README's first command, `segattack demo`, timed end to end as a user runs it (a benchmark, not a test).

Runs ``segattack demo --out DIR`` in a fresh temporary directory ``--runs`` times as a separate process (Python's
start-up, the imports, the model's load, the attack and the report all counted), and the same with ``--eps`` set to
every level 1..20 (the demo's budgets before 2026-12-06) where ``--full`` is given, interleaved so that a machine that
changes speed affects both alike. Prints the wall time of each run, the median of each and their ratio, with the
attack's forward+backward passes per image for both budget lists (``segattack.sweep_plan``: the exact count).

Run:  python benchmarks/bench_demo.py [--runs 2] [--full] [--images 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import segattack as sa
from segattack.commands.demo import DEFAULT_IMAGES, DEMO_EPS

FULL_EPS = ",".join(str(e) for e in range(1, 21))


def passes(eps: str) -> int:
    return sa.sweep_plan([int(e) / 255 for e in eps.split(",")]).passes


def run_demo(eps: str, images: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["segattack", "demo", "--out", str(Path(tmp) / "demo"), "--eps", eps, "--images", str(images)]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES)
    p.add_argument("--full", action="store_true", help="also time the demo at every level 1..20, interleaved")
    args = p.parse_args()
    lists = {"demo": DEMO_EPS, **({"full 1..20": FULL_EPS} if args.full else {})}
    times: dict[str, list[float]] = {name: [] for name in lists}
    for r in range(args.runs):
        for name, eps in lists.items():
            times[name].append(run_demo(eps, args.images))
            print(f"run {r + 1} {name}: {times[name][-1]:.1f} s", file=sys.stderr)
    for name, eps in lists.items():
        print(f"{name:11s} eps {eps}: {passes(eps)} passes per image, median {statistics.median(times[name]):.1f} s "
              f"over {args.runs} runs ({', '.join(f'{t:.1f}' for t in times[name])})")  # fmt: skip
    if args.full:
        ratio = statistics.median(times["demo"]) / statistics.median(times["full 1..20"])
        print(f"demo / full: {ratio:.2f} in time, {passes(DEMO_EPS) / passes(FULL_EPS):.2f} in passes")


if __name__ == "__main__":
    main()
