"""Attack speed and memory, measured as ratios in one run (the machine is shared and noisy).

Reports, on an FCN8s of realistic shape (default: width 1/8 with BatchNorm at 256x512, batch 1):

1. attack time per step / the network's own forward+backward-to-input time     (goal: <= 1.05)
2. eps sweep 1..20 levels (illm_sweep) / sum of 20 separate illm calls          (goal: <= 0.35; passes: 76 / 266)
3. peak memory: process RSS (CPU) or peak CUDA allocation, per phase

Run:  python benchmarks/bench_attack.py [--size 256x512] [--width 0.125] [--device cpu] [--quick] [--json OUT]
``--quick`` (for CI) uses 64x128 images and eps 1..6 so it ends in seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import segattack as sa
from segattack.zoo import FCN8s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256x512", help="HxW of the images (default 256x512)")
    ap.add_argument("--width", type=float, default=0.125, help="FCN8s width multiplier (default 1/8)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=13, help="attack steps timed for ratio 1 (default 13 = eps 10)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats for ratio 1 (median)")
    ap.add_argument("--max-eps", type=int, default=20, help="sweep eps = 1..N levels (default 20)")
    ap.add_argument("--quick", action="store_true", help="tiny settings for CI: 64x128, eps 1..6, 1 repeat")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    if args.quick:
        args.size, args.max_eps, args.repeats, args.steps = "64x128", 6, 1, 4
    h, w = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    torch.manual_seed(0)

    net = FCN8s(19, width=args.width, batch_norm=True).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    model = sa.PixelModel(net, mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2), num_classes=19).to(device)
    images = (torch.randint(0, 256, (args.batch, 3, h, w), device=device).float() / 255).contiguous()
    # a random network predicts near-constant maps; the timing does not depend on the target, so use a street-like
    # layout of blocks with a 'person' region hidden by the paper's target rule
    layout = torch.zeros(args.batch, h, w, dtype=torch.long, device=device)
    layout[:, : h // 3] = 10
    layout[:, h // 3 : h // 2] = 2
    layout[:, h // 2 :, w // 3 : 2 * w // 3] = 13
    layout[:, h // 3 : 3 * h // 4, w // 8 : w // 8 + max(1, w // 16)] = 11
    target = sa.hide_class_target(layout, class_id=11)
    mean, std = model.mean.to(device), model.std.to(device)

    def net_fwd_bwd() -> None:  # the network's own cost: one forward, one backward to the input
        x = ((images - mean) / std).requires_grad_(True)
        loss = F.cross_entropy(net(x), target, reduction="sum")
        torch.autograd.grad(loss, x)

    def attack() -> None:
        sa.illm(model, images, target, eps=10 / 255, steps=args.steps)

    for _ in range(2):  # warm-up
        net_fwd_bwd()
    base_t, att_t = [], []

    def net_block() -> None:  # as many passes as the attack takes, back to back, timed as one block like it
        for _ in range(args.steps):
            net_fwd_bwd()

    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        base_t.append(_time(net_block, device) / args.steps)
        att_t.append(_time(attack, device) / args.steps)
    ratio1 = statistics.median(att_t) / statistics.median(base_t)
    mem_attack = _peak_mb(device)

    eps = [e / 255 for e in range(1, args.max_eps + 1)]
    plan = sa.sweep_plan(eps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_sweep = _time(lambda: sa.illm_sweep(model, images, target, eps=eps), device)
    mem_sweep = _peak_mb(device)
    t_sep = sum(_time(lambda e=e: sa.illm(model, images, target, eps=e), device) for e in eps)

    res = {
        "device": str(device),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "size": [h, w],
        "batch": args.batch,
        "width": args.width,
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "net_fwd_bwd_ms": 1000 * statistics.median(base_t),
        "attack_step_ms": 1000 * statistics.median(att_t),
        "ratio_step_over_fwd_bwd": ratio1,
        "sweep_eps_levels": [1, args.max_eps],
        "sweep_passes": plan.passes,
        "separate_passes": plan.separate_passes,
        "sweep_s": t_sweep,
        "separate_s": t_sep,
        "ratio_sweep_over_separate": t_sweep / t_sep,
        "peak_mb_after_attack": mem_attack,
        "peak_mb_after_sweep": mem_sweep,
        "peak_mb_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
    }
    for k, v in res.items():
        print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
