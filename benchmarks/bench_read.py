"""Reading in worker processes (``run_experiment(read_workers=N)``, ``segattack run --read-workers N``): wall time of
a run whose cost is mostly reading, with 0, 1, 2, ... reading processes, measured in one run of this script.

The data are Cityscapes-sized PNGs (2048x1024 by default, synthetic street scenes upscaled) read through
``segattack.data.ImageFolder`` and resized to 1024x512, as a Cityscapes run reads them. The model stands for a
network on a GPU: each call waits ``--wait-ms`` (the CPU idle, as while a GPU computes) and then applies a 1x1
convolution. So the run shows what reading costs the attacking process and how much of it the workers take off it
(``--wait-ms 0``: a CPU-bound model, where the readers share the cores with the attack).

Run:  python benchmarks/bench_read.py [--images 24] [--source-size 1024x2048] [--size 512x1024] [--workers 0,1,2]
      [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import segattack as sa
import segattack.experiment as experiment_mod
from segattack.allocator import tune_allocator
from segattack.experiment import ExperimentConfig, RunOptions, run_experiment

PERSON = 11


def hxw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def write_pngs(root: Path, n: int, size: tuple[int, int]) -> None:
    """``n`` synthetic street scenes, upscaled bicubically to ``size`` (H, W), as PNGs (zlib level 6, as most tools
    write them)."""
    scenes = sa.data.SyntheticStreets(split="val", size=(size[0] // 2, size[1] // 2), length=n, seed=0)
    for i in range(n):
        arr = scenes[i][0].permute(1, 2, 0).numpy()
        Image.fromarray(np.ascontiguousarray(arr)).resize((size[1], size[0]), Image.Resampling.BICUBIC).save(
            root / f"scene_{i:03d}.png", compress_level=6
        )


class DeviceBound(torch.nn.Module):
    """A 1x1 convolution that first waits ``wait_s`` with the CPU idle, as a process does while its GPU computes.
    It calls reddish pixels persons and the rest road, so that every image has something to hide."""

    def __init__(self, wait_s: float) -> None:
        super().__init__()
        self.wait_s = wait_s
        self.conv = torch.nn.Conv2d(3, 19, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            bias = self.conv.bias
            assert bias is not None
            bias.fill_(-10.0)
            bias[0] = 0.0  # road
            bias[PERSON] = -0.5
            self.conv.weight[PERSON, :, 0, 0] = torch.tensor([2.0, -1.0, -1.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.wait_s)
        return self.conv(x)


class WaitOnReads:
    """Seconds the attacking process spends getting its next batch from the reads (``_Run._reads``): reading
    itself without workers, waiting for the workers' batch with them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        original = experiment_mod._Run._reads

        def timed(run: Any, todos: Any) -> Any:
            reads = original(run, todos)

            def gen() -> Any:
                try:
                    while True:
                        t = time.perf_counter()
                        try:
                            batch = next(reads)
                        except StopIteration:
                            return
                        finally:
                            self.seconds += time.perf_counter() - t
                        yield batch
                finally:
                    reads.close()

            return gen()

        experiment_mod._Run._reads = timed  # type: ignore[method-assign,assignment]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--source-size", type=hxw, default=(1024, 2048), metavar="HxW", help="PNG size (default: 1024x2048)")
    p.add_argument("--size", type=hxw, default=(512, 1024), metavar="HxW", help="size read at (default: 512x1024)")
    p.add_argument("--workers", default="0,1,2", help="reading processes to compare (default: 0,1,2)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--wait-ms", type=float, default=100.0,
                   help="idle wait per network call, a GPU's compute time (default: 100)")  # fmt: skip
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()
    tune_allocator()
    workers = [int(v) for v in args.workers.split(",")]
    torch.manual_seed(0)
    model = sa.PixelModel(DeviceBound(args.wait_ms / 1000), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    root = Path(tempfile.mkdtemp(prefix="bench_read_"))
    try:
        (root / "images").mkdir()
        write_pngs(root / "images", args.images, args.source_size)
        data = sa.data.ImageFolder(root / "images", size=args.size)
        walls: dict[str, float] = {}
        waits: dict[str, float] = {}
        wait = WaitOnReads()
        rows: dict[int, str] = {}
        for n in [workers[0], *workers]:  # the first setting twice: the first run warms the file cache
            out = root / f"run_{n}"
            shutil.rmtree(out, ignore_errors=True)
            wait.seconds = 0.0
            t = time.perf_counter()
            run_experiment(
                model,
                data,
                ExperimentConfig(classes=PERSON, eps=[1], batch_size=args.batch_size, figure1=0),
                out,
                options=RunOptions(read_workers=n, check_memory=False),
            )
            walls[str(n)] = round(time.perf_counter() - t, 3)
            waits[str(n)] = round(wait.seconds, 3)
            lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
            rows[n] = json.dumps([{k: v for k, v in r.items() if k != "time_s"} for r in lines])
        same = len(set(rows.values())) == 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = walls[str(workers[0])]
    result: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },  # fmt: skip
        "images": args.images,
        "source_size": list(args.source_size),
        "size": list(args.size),
        "batch_size": args.batch_size,
        "wait_ms": args.wait_ms,
        "wall_s": walls,
        "over_first": {k: round(v / base, 4) for k, v in walls.items()},
        "waiting_on_reads_s": waits,
        "same_rows": same,
    }
    for k, v in walls.items():
        print(
            f"read_workers={k}: {v:.2f} s ({v / base:.2f}x of read_workers={workers[0]}), of which "
            f"{waits[k]:.2f} s getting the next batch"
        )
    print(f"rows identical across settings: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
