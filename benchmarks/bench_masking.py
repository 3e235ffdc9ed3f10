"""Checks against gradient masking (Carlini et al. 2019) on one model, with ``segattack.robustness.masking_checks``.

On ``--images`` synthetic validation scenes, untargeted against the ground truth: pixel accuracy (pooled) clean, under
``--attack`` (default pgd, best iterate, one fixed step eps / 4) at each of ``--steps`` on the same seeds (more
steps must never raise it), at ``--large-eps`` (must be near 0), crafted on ``--source`` and evaluated on the model
(a transfer attack, must be weaker than the white-box one) and under uniform noise of eps (must barely matter).
Prints the four checks with their numbers and which fail, and writes a JSON (``--json``).

Run:  python benchmarks/bench_masking.py --model zoo:fcn2s-synth-w8-r32-at4 --source zoo:fcn2s-synth-w8-r32 \\
          --eps 4 --images 8 --size 256x512 --json runs/masking-at4.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

import segattack as sa
from segattack.robustness import masking_checks
from segattack.specs import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="zoo:NAME or zoo:PATH/NAME.json")
    ap.add_argument("--source", default=None, help="the model the transfer examples are crafted on")
    ap.add_argument("--eps", type=float, default=4.0, help="budget in 8-bit levels")
    ap.add_argument("--large-eps", type=float, default=32.0, help="the large budget in 8-bit levels")
    ap.add_argument("--steps", default="5,20,50,100", help="increasing iteration counts")
    ap.add_argument("--attack", default="pgd")
    ap.add_argument("--images", type=int, default=8, help="synthetic validation scenes (seed 0)")
    ap.add_argument("--size", default="256x512", help="HxW of the scenes")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    model = load_model(args.model)
    source = load_model(args.source) if args.source else None
    data = sa.data.SyntheticStreets(split="val", size=(h, w), length=args.images, seed=0)
    images = torch.stack([data[i][0] for i in range(len(data))]).float() / 255
    truth = torch.stack([torch.as_tensor(data[i][1]) for i in range(len(data))]).long()
    t0 = time.perf_counter()
    checks = masking_checks(
        model, images, truth, eps=args.eps / 255, large_eps=args.large_eps / 255,
        steps=tuple(int(s) for s in args.steps.split(",")), source=source, attack=args.attack, batch_size=args.batch,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    failures = checks.failures()
    print(f"{args.model} on {args.images} scenes at {h}x{w}, eps {args.eps:g}/255, {args.attack}, {seconds:.0f} s")
    print(f"clean accuracy {checks.clean:.4f}; uniform noise of eps {checks.noise:.4f}")
    for n, a in zip(checks.steps, checks.by_steps, strict=True):
        print(f"{args.attack} {n:4d} steps: accuracy {a:.4f}")
    print(f"at {args.large_eps:g}/255: accuracy {checks.large:.4f}")
    if checks.transfer is not None:
        print(f"crafted on {args.source}: accuracy {checks.transfer:.4f}")
    print("checks: all pass" if not failures else "FAILED: " + "; ".join(failures))
    if args.json:
        report: dict[str, Any] = {
            "model": args.model, "source": args.source, "images": args.images, "size": [h, w],
            "attack": args.attack, "checks": dataclasses.asdict(checks), "failures": failures,
            "seconds": round(seconds, 1), "date": datetime.date.today().isoformat(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": platform.machine(),
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
