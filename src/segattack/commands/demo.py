"""``segattack demo``: the paper's experiment on the embedded default (synthetic streets, the shipped model)."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ._common import (
    add_eps_arg,
    add_fast_path_args,
    add_measure_args,
    build_config,
    build_data,
    build_model,
    check_out_dir,
    model_label_names,
    parse_classes,
    parse_eps,
    run_and_report,
)

#: Images the demo attacks by default (synthetic validation scenes); tuned to finish in minutes on a 2-core CPU.
DEFAULT_IMAGES = 20
#: Images attacked at once: on the 2-core CPU one attack step per image took 49 ms at batch 2 and 4, 60 ms at 1 and
#: 66 ms at 8 (channels-last, ``benchmarks/bench_layout.py``); 2 needs half the memory of 4.
DEMO_BATCH = 2
#: The class the demo hides (Cityscapes train id 11).
DEMO_CLASS = "person"
#: The demo's budgets (8-bit levels): nine points of the paper's range 1..20, dense where the curves bend. The sweep
#: shares its trajectory prefix, so they cost 41 forward+backward passes per image against 76 for all twenty (the
#: attack time is proportional; ``python benchmarks/bench_demo.py`` measures the command), which brings the demo
#: under 90 s on a 2-core CPU while Figure 2 keeps its shape; ``--eps 1,2,...,20`` gives the full range.
DEMO_EPS = "1,2,4,6,8,10,12,16,20"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the paper's experiment in minutes on the embedded default: synthetic streets, the shipped model",
        description="Hide persons in synthetic street scenes from the shipped FCN-2s at nine budgets eps from 1 to 20 "
        "8-bit levels (eps=10 means 10/255), with the perturbation on the whole image and restricted to person pixels "
        "afterwards, as Fischer et al. (2017). Writes the same files as `segattack run` (report.html, figure2.png, "
        "figure1_<id>.png for 3 images, summary.csv, results.jsonl) and prints one sentence per eps. Nothing is "
        "downloaded. Run it again to resume an interrupted demo.",
    )
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output directory (default: %(default)s)")
    p.add_argument(
        "--images",
        type=int,
        default=DEFAULT_IMAGES,
        metavar="N",
        help="synthetic images to attack (default: %(default)s)",
    )
    add_eps_arg(p, default=DEMO_EPS)
    p.add_argument(
        "--size", metavar="HxW", default=None, help="image size in pixels (default: the data set's, 256x512)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEMO_BATCH,
        metavar="N",
        help="images attacked at once (default: %(default)s; on a CPU small batches are the fastest per image, their "
        "activations staying in cache)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    add_fast_path_args(p, channels_last=True)
    p.add_argument("--overwrite", action="store_true", help="replace a different earlier demo in --out")
    add_measure_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.images < 1:
        raise UserError(f"--images must be at least 1, got {args.images}")
    eps = parse_eps(args.eps)
    check_out_dir(args.out)
    model_args = argparse.Namespace(
        model=None, weights=None, mean=None, std=None, num_classes=None, device=args.device, bgr=False,
        class_names=None, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
    )  # fmt: skip
    model, model_describe = build_model(model_args)
    names = model_label_names(model)
    config = build_config(
        eps=eps, classes=parse_classes(DEMO_CLASS, names), modes=("full", "posthoc"), survive=args.survive or (),
        figure1=3, instance_threshold=args.instance_threshold, batch_size=args.batch_size, label_names=names,
    )  # fmt: skip
    data, describe = build_data(f"synthetic:{args.images}", args.size)
    describe.update(model_describe)
    run_and_report(model, data, config, out=args.out, describe=describe, device=args.device, overwrite=args.overwrite)
    return 0
