"""Pipeline efficiency of the paper's whole experiment, and the multi-process overhead, measured in one run.

Pipeline efficiency = (the model's own time for the passes ``run_experiment`` makes) / (its wall time). The passes
are counted with hooks on the network during the run (forward passes with and without gradient, images per call). The
model's own time per image for each kind of pass is measured in the same run, at the experiment's batch size: before
it, after it, and between its batches (every ``--calibrate-every`` images, from the progress callback; that time is
taken off the wall time and its passes are not counted). The median of all those timings is the model's time: on a
shared machine the speed of the same pass drifts by 30-45% over a run, and timings only before and after it gave
efficiencies of 0.86 to 1.14 for runs of the same code (kept in the output as ``before_after``). Everything else
(reading and generating images, targets, restriction, metrics, instance and SSIM measures, writing rows, Figure 1
files, the report) is the overhead.
Goal: >= 0.90 on CPU for the demo's configuration with every budget of the paper's range (20 synthetic scenes at
256x512, eps 1..20, full + posthoc, batch 2, channels-last, 3 Figure 1 images; the demo itself runs nine of those
budgets since 2026-12-06: ``--eps 1,2,4,6,8,10,12,16,20``).

The wall time is also split into the time inside ``attack_batch`` (the attack's passes and the predictions),
``measure`` (the per-image measures) and the rest, so a low efficiency says where to look. The experiment runs as
``run_experiment`` does by default on the CPU, one batch after the other; ``--pipelined`` also runs it pipelined
(``overlap=True``: the next batch read and the previous one measured on worker threads while one is attacked, the
default on a GPU), in the same process, for the ratio of wall times.

``--distributed`` also measures the multi-process overhead: the same images with 2 gloo processes of 1 thread each
(``torchrun --nproc-per-node 2 -m segattack run``) against 1 process with 2 threads (``segattack run``), as a
ratio of wall times (> 1: the two processes are slower).

Run:  python benchmarks/bench_experiment.py [--images 20] [--size 256x512] [--eps 1,...,20] [--batch-size 2]
      [--amp bf16] [--no-channels-last] [--pipelined] [--distributed] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import segattack as sa
import segattack.experiment as experiment_mod
import segattack.experiment.figure1 as experiment_figure1
import segattack.experiment.loop as experiment_loop
from segattack.allocator import tune_allocator
from segattack.commands._common import DEFAULT_EPS
from segattack.commands.demo import DEMO_BATCH
from segattack.experiment import ExperimentConfig, RunOptions

PERSON = 11


class PassCounter:
    """Forward hooks on the wrapped network: images per call, split by whether autograd records the call (an attack
    step: forward + backward) or not (a prediction: forward only); none while ``paused`` (calibration)."""

    def __init__(self, model: sa.PixelModel) -> None:
        self.grad_images = 0
        self.nograd_images = 0
        self.calls = 0
        self.paused = False
        self._handle = model.net.register_forward_pre_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if self.paused:
            return
        n = int(args[0].shape[0])
        self.calls += 1
        if torch.is_grad_enabled():
            self.grad_images += n
        else:
            self.nograd_images += n

    def remove(self) -> None:
        self._handle.remove()


def per_image_times(model: sa.PixelModel, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds per image of (forward + backward to the input, with an attack's loss) and of (forward only,
    with the argmax), at batch ``len(x)``."""
    pred = model.predict(x)
    target = sa.hide_class_target(pred, class_id=PERSON) if bool((pred == PERSON).any()) else pred

    def step() -> None:
        adv = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(adv, check=False), target, reduction="sum")
        torch.autograd.grad(loss, adv)

    def forward() -> None:
        model.predict(x)

    def median(fn: Callable[[], None]) -> float:
        fn()  # warm-up
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts) / len(x)

    return median(step), median(forward)


class Calibration:
    """The model's own times per image (forward + backward, forward), taken at several points of a run."""

    def __init__(self, model: sa.PixelModel, probe: torch.Tensor, counter: PassCounter) -> None:
        self.model, self.probe, self.counter = model, probe, counter
        self.points: list[tuple[float, float]] = []
        self.seconds_inside = 0.0  # spent calibrating between the run's batches (taken off its wall time)

    def take(self, repeats: int, *, inside: bool = False) -> None:
        self.counter.paused = True
        t = time.perf_counter()
        try:
            self.points.append(per_image_times(self.model, self.probe, repeats))
        finally:
            self.counter.paused = False
        if inside:
            self.seconds_inside += time.perf_counter() - t


class Timed:
    """Wrap a function the experiment's modules call (``segattack.experiment.loop`` and ``.figure1``, where the
    batches and the Figure 1 images go through it) and add up the seconds spent in it."""

    MODULES = (experiment_loop, experiment_figure1)

    def __init__(self, name: str) -> None:
        self.name = name
        self.seconds = 0.0
        self.original = getattr(self.MODULES[0], name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        for module in self.MODULES:
            if hasattr(module, name):
                setattr(module, name, wrapper)

    def restore(self) -> None:
        for module in self.MODULES:
            if hasattr(module, self.name):
                setattr(module, self.name, self.original)


def efficiency(args: argparse.Namespace, overlap: bool | None = None) -> dict[str, Any]:
    """One ``run_experiment`` of the configuration; ``overlap`` as there (None: its default, one batch after the
    other on the CPU)."""
    model = sa.zoo.load(args.model)
    if args.amp or args.channels_last:
        model.set_fast_path(amp=args.amp, channels_last=args.channels_last)
    data = sa.data.SyntheticStreets(split="val", size=args.size, length=args.images, seed=0)
    probe = torch.stack([data[i][0] for i in range(min(args.batch_size, len(data)))]).float() / 255
    counter = PassCounter(model)
    cal = Calibration(model, probe, counter)
    cal.take(args.repeats)  # before

    def between_batches(p: experiment_mod.Progress) -> None:
        if p.image_id is not None and args.calibrate_every and p.done % args.calibrate_every == 0 and p.done < p.total:
            cal.take(args.calibrate_repeats, inside=True)

    timers = [Timed("attack_batch"), Timed("measure")]
    out = Path(tempfile.mkdtemp(prefix="bench_experiment_"))
    try:
        t0 = time.perf_counter()
        experiment_mod.run_experiment(
            model,
            data,
            ExperimentConfig(
                classes=PERSON,
                eps=args.eps,
                modes=("full", "posthoc"),
                batch_size=args.batch_size,
                figure1=args.figure1,
            ),
            out,
            overwrite=True,
            progress=between_batches,
            options=RunOptions(overlap=overlap),
        )
        wall = time.perf_counter() - t0 - cal.seconds_inside
    finally:
        for timer in timers:
            timer.restore()
        shutil.rmtree(out, ignore_errors=True)
    cal.take(args.repeats)  # after
    counter.remove()
    t_step = statistics.median(t for t, _ in cal.points)
    t_fwd = statistics.median(f for _, f in cal.points)
    model_s = counter.grad_images * t_step + counter.nograd_images * t_fwd
    first, last = cal.points[0], cal.points[-1]  # before and after the run: the calibration used until now
    ends_s = counter.grad_images * (first[0] + last[0]) / 2 + counter.nograd_images * (first[1] + last[1]) / 2
    inside_attack = timers[0].seconds
    inside_measure = timers[1].seconds
    return {
        "images": args.images,
        "size": list(args.size),
        "eps": args.eps,
        "batch_size": args.batch_size,
        "figure1": args.figure1,
        "overlap": bool(overlap),  # the bench runs on the CPU, where the default (None) is one batch after the other
        "amp": args.amp,
        "channels_last": args.channels_last,
        "wall_s": round(wall, 2),
        "model_s": round(model_s, 2),
        "pipeline_efficiency": round(model_s / wall, 4),
        "passes": {
            "forward_backward_images": counter.grad_images,
            "forward_images": counter.nograd_images,
            "network_calls": counter.calls,
        },  # fmt: skip
        "per_image_s": {
            "forward_backward": round(t_step, 5),
            "forward": round(t_fwd, 5),
            "calibration_points": len(cal.points),
            "forward_backward_min_max": [
                round(min(t for t, _ in cal.points), 5),
                round(max(t for t, _ in cal.points), 5),
            ],
            "forward_backward_before_after": [round(first[0], 5), round(last[0], 5)],
        },  # fmt: skip
        "calibration_s_taken_off": round(cal.seconds_inside, 2),
        "before_after": {"model_s": round(ends_s, 2), "pipeline_efficiency": round(ends_s / wall, 4)},
        "split_s": {
            "attack_batch": round(inside_attack, 2),
            "measure": round(inside_measure, 2),
            "rest": round(wall - inside_attack - inside_measure, 2),
        },  # fmt: skip
    }


def distributed_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of 2 gloo processes x 1 thread over 1 process x 2 threads, the same run otherwise."""
    eps = ",".join(str(e) for e in args.eps)
    common = ["run", "--data", f"synthetic:{args.images}", "--size", f"{args.size[0]}x{args.size[1]}", "--eps", eps,
              "--batch-size", str(args.batch_size), "--figure1", "0", "--overwrite"]  # fmt: skip
    walls: dict[str, float] = {}
    root = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    try:
        for name, threads, argv in (
            ("one_process_2_threads", "2", [sys.executable, "-m", "segattack", *common]),
            ("two_processes_1_thread", "1",
             [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
              "segattack", *common]),
        ):  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            t = time.perf_counter()
            subprocess.run([*argv, "--out", str(root / name)], check=True, env=env, stdout=subprocess.DEVNULL)
            walls[name] = round(time.perf_counter() - t, 2)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {**walls, "ratio": round(walls["two_processes_1_thread"] / walls["one_process_2_threads"], 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=sa.zoo.DEFAULT_MODEL)
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(256, 512))
    p.add_argument("--eps", type=lambda s: [int(v) for v in s.split(",")], default=list(DEFAULT_EPS))
    p.add_argument("--batch-size", type=int, default=DEMO_BATCH, help="(default: the demo's, %(default)s)")
    p.add_argument("--figure1", type=int, default=3, help="Figure 1 images, as the demo (default: 3)")
    p.add_argument(
        "--repeats", type=int, default=5, help="timings of the model's own passes before and after the run (default: 5)"
    )
    p.add_argument(
        "--calibrate-every",
        type=int,
        default=None,
        metavar="N",
        help="time the model's own passes again every N images of the run (default: every batch; 0: only "
        "before and after)",
    )
    p.add_argument("--calibrate-repeats", type=int, default=3,
                   help="timings at each of those points (default: 3)")  # fmt: skip
    p.add_argument("--amp", choices=["bf16", "fp16"], default=None)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels-last tensors, as the demo (default: on)")  # fmt: skip
    p.add_argument("--distributed", action="store_true", help="also measure 2 gloo processes against 1 process")
    p.add_argument("--pipelined", action="store_true",
                   help="also run pipelined (overlap=True: the next batch read and the last one measured on worker "
                   "threads), for the ratio of wall times")  # fmt: skip
    p.add_argument("--skip-efficiency", action="store_true", help="only the --distributed measurement")
    p.add_argument("--tune-allocator", action=argparse.BooleanOptionalAction, default=True,
                   help="glibc's malloc tuned as the command line does (allocator.tune_allocator)")  # fmt: skip
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()
    if args.calibrate_every is None:
        args.calibrate_every = args.batch_size
    tuned = tune_allocator() if args.tune_allocator else False  # as the command line does

    result: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "allocator_tuned": tuned,
        },  # fmt: skip
    }
    if not args.skip_efficiency:
        result["experiment"] = efficiency(args)
    if args.pipelined and not args.skip_efficiency:
        result["pipelined"] = efficiency(args, overlap=True)
    for key in ("experiment", "pipelined"):
        if key not in result:
            continue
        e = result[key]
        print(f"{'pipelined' if e['overlap'] else 'sequential'}: pipeline efficiency {e['pipeline_efficiency']:.3f}: "
              f"model {e['model_s']:.1f} s of {e['wall_s']:.1f} s wall (attack_batch {e['split_s']['attack_batch']:.1f}"
              f" s, measure {e['split_s']['measure']:.1f} s, rest {e['split_s']['rest']:.1f} s)")  # fmt: skip
    if "pipelined" in result:
        result["pipelined_over_sequential_wall"] = round(
            result["pipelined"]["wall_s"] / result["experiment"]["wall_s"], 4
        )
        print(f"wall time pipelined / sequential: {result['pipelined_over_sequential_wall']:.3f}")
    if args.distributed:
        result["distributed"] = distributed_overhead(args)
        d = result["distributed"]
        print(f"2 gloo processes x 1 thread: {d['two_processes_1_thread']:.1f} s; 1 process x 2 threads: "
              f"{d['one_process_2_threads']:.1f} s; ratio {d['ratio']:.3f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
