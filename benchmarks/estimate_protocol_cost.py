"""The cost of a robustness protocol on a larger setting, from the passes a run measured (issue 24).

A ``segattack robustness`` run counts, per evaluation, the forward and backward passes through the network (hooks on
the network, not a cost model) and records them in ``robustness.json`` (``cost.by_evaluation``). The number of passes
per image does not depend on the image size or the device: it is fixed by the protocol (iterations, queries,
restarts). So the cost of the same protocol on, say, 500 Cityscapes images at 1024x512 with the paper's FCN8s-VGG16 is

    images x (forward passes x F_fwd + backward passes x F_bwd) / sustained FLOP/s

with F_fwd and F_bwd the floating-point operations of one forward pass and of one backward pass to the *input* (the
attacks need no weight gradients), counted here by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no
memory, no time). The sustained throughput is an assumption, not a measurement: give it with ``--tflops`` (several
values print several rows). Passes of the transfer evaluation run on the surrogate; they are counted at the model's
cost here, an upper bound when the surrogate is smaller.

Run:  python benchmarks/estimate_protocol_cost.py docs/robustness-runs/sea-at4/robustness.json \\
          --arch fcn8s --width 1 --size 512x1024 --images 500 --tflops 50,150,400
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from segattack.zoo import ARCHITECTURES


def pass_flops(arch: str, size: tuple[int, int], **kwargs: Any) -> tuple[float, float]:
    """(forward, backward to the input) FLOPs of one image through ``ARCHITECTURES[arch](19, **kwargs)`` at ``size``
    (H, W), counted on the meta device with the parameters' gradients off, as an attack runs the network."""
    with torch.device("meta"):
        net = ARCHITECTURES[arch](19, **kwargs).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        x = torch.zeros(1, 3, *size, requires_grad=True)
    counter = FlopCounterMode(display=False)
    with counter:
        net(x)
    forward = float(counter.get_total_flops())
    counter = FlopCounterMode(display=False)
    with counter:
        net(x).sum().backward()
    return forward, float(counter.get_total_flops()) - forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summary", type=Path, help="a run's robustness.json")
    ap.add_argument("--arch", default="fcn8s", choices=sorted(ARCHITECTURES))
    ap.add_argument("--width", type=float, default=1.0, help="the architecture's width (1: VGG16's full width)")
    ap.add_argument("--size", default="512x1024", help="HxW")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--tflops", default="50,150,400", help="assumed sustained TFLOP/s, comma-separated")
    args = ap.parse_args()

    s = json.loads(args.summary.read_text())
    cost = s["cost"]
    n = int(cost["images"])
    h, w = (int(v) for v in args.size.lower().split("x"))
    f_fwd, f_bwd = pass_flops(args.arch, (h, w), width=args.width)
    fwd, bwd = cost["forward"] / n, cost["backward"] / n
    flops = args.images * (fwd * f_fwd + bwd * f_bwd)
    print(f"{args.summary}: {s['protocol']} protocol, {n} images measured: {fwd:.0f} forward and {bwd:.0f} backward "
          f"passes per image, {cost['seconds_per_image']:.1f} s per image there")  # fmt: skip
    print(f"{args.arch} width {args.width:g} at {h}x{w}: {f_fwd / 1e9:.1f} GFLOP forward, {f_bwd / 1e9:.1f} GFLOP "
          f"backward to the input")  # fmt: skip
    print(f"{args.images} images: {flops / 1e15:.1f} PFLOP")
    print("| by evaluation | forward/image | backward/image | share of the FLOPs |")
    print("|---|---|---|---|")
    for name, c in cost["by_evaluation"].items():
        part = (c["forward"] * f_fwd + c["backward"] * f_bwd) / n * args.images
        if part:
            print(f"| {name} | {c['forward'] / n:.0f} | {c['backward'] / n:.0f} | {100 * part / flops:.1f}% |")
    print("| assumed sustained TFLOP/s | hours on one GPU |")
    print("|---|---|")
    for t in (float(v) for v in args.tflops.split(",")):
        print(f"| {t:g} | {flops / (t * 1e12) / 3600:.1f} |")


if __name__ == "__main__":
    main()
