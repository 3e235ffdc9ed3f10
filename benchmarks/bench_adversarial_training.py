"""The cost of adversarial training, measured as ratios in one run (the machine is shared and noisy).

Trains the same network (same seed: same initial weights, same batches and augmentation) for a few steps clean and
adversarially (PGD with K = 10 and K = 3 steps, share 1.0 and 0.5), through ``segattack.train.train`` itself, and
reads the seconds per step from its own metrics (the second logging window of each run, so that the first step's
warm-up and the set-up are left out). The settings are run in interleaved rounds and the median of each is reported,
with its ratio to the clean step. Expected: about K + 1 for share 1.0 (K forward+backward passes to the input and
the best iterate's forward, then the training step); less with share 0.5, where the attack sees half the batch.

Run:  python benchmarks/bench_adversarial_training.py [--width 0.125] [--crop 64x128] [--batch 4] [--steps 6]
      [--rounds 3] [--device cpu] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from segattack.train import METRICS, TrainConfig, train

#: (name, adversarial settings): clean, then PGD with K = 10 and K = 3 at share 1.0 and 0.5.
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("clean", {}),
    ("pgd K=10 share 1.0", {"adv_steps": 10, "adv_share": 1.0}),
    ("pgd K=10 share 0.5", {"adv_steps": 10, "adv_share": 0.5}),
    ("pgd K=3 share 1.0", {"adv_steps": 3, "adv_share": 1.0}),
    ("pgd K=3 share 0.5", {"adv_steps": 3, "adv_share": 0.5}),
)


def _hxw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def seconds_per_step(out: Path, args: argparse.Namespace, adversarial: dict[str, Any]) -> float:
    """Seconds per training step of one short run, from the second logging window of its metrics."""
    half = args.steps // 2
    extra = {"adversarial": "pgd", "adv_eps": 4, "adv_val_images": 1, **adversarial} if adversarial else {}
    config = TrainConfig(
        out_dir=str(out), width=args.width, size=args.size, crop=args.crop, batch_size=args.batch, steps=args.steps,
        train_images=2 * args.batch, val_images=1, log_every=half, val_every=0, checkpoint_every=args.steps,
        device=args.device, seed=0, dropout=0.0, **extra,
    )  # fmt: skip
    train(config, overwrite=True)
    rows = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]
    windows = [r for r in rows if r["kind"] == "train"]
    return 1 / float(windows[1]["steps_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=float, default=0.125, help="FCN8s width multiplier (default 1/8)")
    ap.add_argument("--size", type=_hxw, default=(64, 128), help="synthetic image size HxW (default 64x128)")
    ap.add_argument("--crop", type=_hxw, default=(64, 128), help="training crop HxW (default 64x128)")
    ap.add_argument("--batch", type=int, default=4, help="images per step (default 4)")
    ap.add_argument("--steps", type=int, default=6, help="steps per run; the second half is timed (default 6)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (default 3)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()

    times: dict[str, list[float]] = {name: [] for name, _ in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for i, (name, adversarial) in enumerate(SETTINGS):
                times[name].append(seconds_per_step(Path(tmp) / str(i), args, adversarial))
    clean = statistics.median(times["clean"])
    print(f"adversarial training cost, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, device {args.device}")  # fmt: skip
    print(f"FCN8s width {args.width:g} + BatchNorm, crop {args.crop[0]}x{args.crop[1]}, batch {args.batch}, "
          f"eps 4 levels, {args.rounds} rounds x {args.steps - args.steps // 2} timed steps (median)")  # fmt: skip
    results = {}
    for name, _ in SETTINGS:
        t = statistics.median(times[name])
        results[name] = {"s_per_step": t, "ratio": t / clean}
        print(f"  {name:20s} {t * 1000:8.1f} ms/step   ratio {t / clean:5.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                               "results": results}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
