"""``segattack run``: the paper's experiment on any data set and model, resumable, with its report."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ._common import (
    RESTRICT_MODES,
    add_attack_args,
    add_data_args,
    add_eps_arg,
    add_hide_arg,
    add_measure_args,
    add_model_args,
    build_config,
    build_data,
    build_model,
    build_options,
    check_class_text,
    check_model_args,
    check_out_dir,
    model_label_names,
    parse_attacks,
    parse_classes,
    parse_eps,
    run_and_report,
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help="hide a class across a data set at several budgets eps (8-bit levels); resumable; writes a report",
        description="Run the experiment of Fischer et al. (2017): for every image, target = the clean prediction with "
        "the hidden class replaced by its nearest other class; the iterative targeted attack (step 1 level) at every "
        "eps; the perturbation also restricted to the class pixels; % of class pixels fooled and of background "
        "preserved. Writes results.jsonl (one row per image x eps x mode), config.json, summary.csv, figure2.png/"
        ".svg/.pdf, figure1_<id>.png and report.html into --out. Run the same command again to resume. "
        "eps is in 8-bit levels: --eps 10 means 10/255.",
    )
    add_data_args(p)
    add_model_args(p)
    g = p.add_argument_group("attack")
    g.add_argument(
        "--goal",
        choices=("hide", "untargeted"),
        default="hide",
        help="hide: the paper's experiment, hide --hide's class (targeted; hidden and kept); untargeted: robustness "
        "under attack (pixel accuracy and mIoU against the ground truth where the data has it, else the clean "
        "prediction) (default: hide)",
    )
    add_attack_args(g)
    add_hide_arg(g)
    add_eps_arg(g)
    g.add_argument(
        "--restrict",
        choices=tuple(RESTRICT_MODES),
        default=None,
        help="besides the perturbation on the whole image: restrict it to the class pixels afterwards (posthoc, the "
        "paper's), during the optimisation (during; one more attack), both, or none (default: posthoc; the "
        "untargeted goal has only none)",
    )
    add_measure_args(p.add_argument_group("measures (hide goal)"))
    o = p.add_argument_group("run")
    o.add_argument("--out", required=True, metavar="DIR", help="output directory (resumed if it holds this run)")
    o.add_argument("--batch-size", type=int, default=4, metavar="N", help="images attacked at once (default: 4)")
    o.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (default: all)")
    o.add_argument(
        "--read-workers",
        type=int,
        default=None,
        metavar="N",
        help="processes that read and resize the next images while the model attacks (default: up to 4 on a GPU, "
        "0 on a CPU, where they would take cores from the attack)",
    )
    o.add_argument(
        "--save-images",
        action="store_true",
        help="also write every adversarial image as a lossless 8-bit PNG under DIR/images/eps<E>/<mode>/",
    )
    o.add_argument(
        "--figure1",
        type=int,
        default=3,
        metavar="N",
        help="draw the paper's Figure 1 (11 panels, eps nearest 10) for N representative images, chosen when the "
        "results are known: the median share of class pixels hidden, the hardest, then quantiles (default: 3)",
    )
    o.add_argument(
        "--figure1-ids",
        metavar="ID[,ID]",
        default=None,
        help="draw Figure 1 for these image ids instead (as in results.jsonl, e.g. val_000012)",
    )
    o.add_argument("--seed", type=int, default=0, help="seed of every random draw (the random starts of pgd, segpgd, "
                   "cospgd and apgd, EOT, the noise transform), derived per image so that an image's rows do not "
                   "depend on its batch or a resume; a resume takes the seed its rows were made with (default: 0)")
    o.add_argument("--overwrite", action="store_true", help="replace the results of a different configuration in --out")
    o.add_argument(
        "--no-memory-check",
        dest="check_memory",
        action="store_false",
        help="skip the memory estimate made before the run (it refuses runs that would not fit, with the fix)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.goal == "hide":
        check_class_text(args.hide)
    eps = parse_eps(args.eps)
    if args.goal == "untargeted" and args.restrict not in (None, "none"):
        raise UserError("--restrict needs a class to restrict to: the untargeted goal takes --restrict none only")
    restrict = args.restrict or ("posthoc" if args.goal == "hide" else "none")
    check_out_dir(args.out)
    check_model_args(args)
    data, describe = build_data(args.data, args.size, args.labels)
    model, model_describe = build_model(args)  # first: an attack registered in the model's module is then known
    describe.update(model_describe)
    names = model_label_names(model)
    config = build_config(
        eps=eps,
        goal=args.goal,
        classes=parse_classes(args.hide, names) if args.goal == "hide" else (),
        attacks=parse_attacks(args.attack, args.attack_opt),
        modes=RESTRICT_MODES[restrict],
        survive=args.survive or (),
        figure1=[s.strip() for s in args.figure1_ids.split(",") if s.strip()] if args.figure1_ids else args.figure1,
        instance_threshold=args.instance_threshold,
        limit=args.limit,
        batch_size=args.batch_size,
        save_images=args.save_images,
        label_names=names,
        seed=args.seed,
    )
    options = build_options(check_memory=args.check_memory, read_workers=args.read_workers)
    run_and_report(model, data, config, out=args.out, describe=describe, device=args.device,
                   overwrite=args.overwrite, options=options)  # fmt: skip
    return 0
