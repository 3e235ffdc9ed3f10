"""Attack step per image against batch size and memory layout, on the CPU (ratios from interleaved runs).

One forward + backward to the input (the attack's step: cross-entropy summed over pixels) of the default model at
256x512, per image, at batch sizes 1, 2, 4 and 8, in the default (NCHW) layout and channels-last, interleaved over
``--rounds`` rounds (the median of each configuration's best-of-3 per round), so that a machine that changes speed
affects every configuration alike. This is what sets the demo's ``--batch-size`` and ``--channels-last``.

Run:  python benchmarks/bench_layout.py [--model NAME] [--rounds 3] [--batches 1,2,4,8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import segattack as sa
from segattack.allocator import tune_allocator


def step(model: sa.PixelModel, x: torch.Tensor, target: torch.Tensor) -> None:
    adv = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(adv, check=False), target, reduction="sum")
    torch.autograd.grad(loss, adv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=sa.zoo.DEFAULT_MODEL)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2, 4, 8])
    args = p.parse_args()
    tune_allocator()  # as the command line does

    data = sa.data.SyntheticStreets(split="val", size=(256, 512), length=max(args.batches), seed=0)
    images = torch.stack([data[i][0] for i in range(len(data))]).float() / 255
    models = {layout: sa.zoo.load(args.model) for layout in ("nchw", "channels-last")}
    models["channels-last"].set_fast_path(channels_last=True)
    target = models["nchw"].predict(images)
    per_image: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for b in sorted(args.batches, reverse=True):
            for layout, model in models.items():
                x, t = images[:b], target[:b]
                step(model, x, t)  # warm-up at this shape
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    step(model, x, t)
                    times.append(time.perf_counter() - t0)
                per_image.setdefault((layout, b), []).append(min(times) / b)
    print(f"{args.model}, 256x512, {torch.get_num_threads()} threads: ms per image for one attack step")
    for (layout, b), values in sorted(per_image.items()):
        print(f"  {layout:13s} batch {b}: {1000 * statistics.median(values):6.1f} ms  "
              f"(rounds: {', '.join(f'{1000 * v:.0f}' for v in values)})")  # fmt: skip


if __name__ == "__main__":
    main()
