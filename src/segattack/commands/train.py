"""``segattack train``: train FCN8s on the synthetic street scenes, resumably, and export it to the model zoo."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..data.labels import CLASS_NAMES


def _hxw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW in pixels, such as 128x256, got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"HxW must be positive, got {text!r}")
    return h, w


def _class_weight(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = float("nan")
    if not sep or not name.strip() or not weight > 0 or weight == float("inf"):
        raise argparse.ArgumentTypeError(f"expected CLASS=W with a positive weight W, such as person=2, got {text!r}")
    return name.strip(), weight


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a segmentation network (FCN8s, DeepLabv3+ or SegFormer; resumable) and export it to the zoo",
        description="Train FCN8s (Long et al. 2015), a DeepLabv3+-style network (Chen et al. 2018) or a "
        "SegFormer-style transformer (Xie et al. 2021) from scratch on synthetic street scenes. Running the same "
        "command again with the same --out resumes from the last checkpoint. The final model is written as "
        "NAME.safetensors + NAME.json (load it with segattack.zoo.load(NAME, weights_dir=DIR)).",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory: config, checkpoint, metrics, model")
    p.add_argument("--data", choices=["synthetic"], default="synthetic", help="training data (default: synthetic)")
    p.add_argument(
        "--arch",
        choices=["fcn8s", "deeplabv3", "segformer"],
        default=None,
        help="architecture: fcn8s (VGG16 backbone, the paper's), deeplabv3 (residual atrous backbone, ASPP, stride-4 "
        "decoder) or segformer (hierarchical transformer, All-MLP decoder); the model card names it (default: "
        "--init's, else fcn8s)",
    )
    p.add_argument(
        "--width",
        type=float,
        default=None,
        help="channel multiplier; for fcn8s 1.0 is the paper's 134 M-parameter network (default: --init's, else 0.125 "
        "for fcn8s, 1.0 for the others)",
    )
    p.add_argument(
        "--no-batch-norm",
        dest="batch_norm",
        action="store_false",
        default=None,
        help="leave out BatchNorm (as the paper's network; slower to train from scratch; default: --init's, else with "
        "BatchNorm)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="dropout: after fc6 and fc7 for fcn8s (default: --init's, else 0.5), before the classifier for the "
        "others (default: --init's, else 0.1)",
    )
    p.add_argument(
        "--output-stride",
        type=int,
        choices=[8, 4, 2],
        default=None,
        help="fcn8s only: 8 (FCN-8s, the paper's), 4 (FCN-4s: adds a pool2 skip) or 2 (FCN-2s: and a pool1 skip); "
        "an --init of the stage before starts it with its new stage passing the scores through (default: --init's, "
        "else 8)",
    )
    p.add_argument(
        "--refine",
        type=int,
        default=None,
        metavar="C",
        help="fcn8s at --output-stride 4 or 2: add a stride-4 refinement block with C channels (scores + pool2 "
        "features, two 3x3 convolutions; starts as the identity, so an FCN-4s --init grows into it, and an --init "
        "with a narrower block is widened to C) (default: --init's, else 0, none)",
    )
    p.add_argument(
        "--refine2",
        type=int,
        default=None,
        metavar="C",
        help="fcn8s at --output-stride 2 only: add a stride-2 refinement block with C channels (scores + pool1 "
        "features, the same two convolutions; starts as the identity) (default: --init's, else 0, none)",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="zoo:NAME",
        help="start from this model's weights (fine-tuning): zoo:NAME (shipped) or zoo:PATH/NAME.json (exported); "
        "the network options not given take its card's values (a larger FCN stage may be given explicitly); its "
        "normalisation is kept; --steps counts the new steps (default: random initialisation)",
    )
    p.add_argument(
        "--loss",
        choices=["ce", "ce+lovasz"],
        default="ce",
        help="training loss: pixel cross-entropy, or cross-entropy plus the Lovasz-softmax surrogate of 1 - IoU "
        "(Berman et al. 2018), per image and class present (default: ce)",
    )
    p.add_argument(
        "--lovasz-weight",
        action="append",
        default=[],
        type=_class_weight,
        metavar="CLASS=W",
        help="with --loss ce+lovasz: weigh CLASS's Lovasz terms W times (the others 1), e.g. person=2, to spend more "
        "of a small network on the class to attack; repeatable (default: all 1)",
    )
    p.add_argument("--steps", type=int, default=4000, help="optimiser steps in total (default: 4000)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (default: 8)")
    p.add_argument(
        "--crop",
        type=_hxw,
        default=(128, 256),
        metavar="HxW",
        help="training crop in pixels, after random rescaling (default: 128x256)",
    )
    p.add_argument(
        "--size",
        type=_hxw,
        default=(256, 512),
        metavar="HxW",
        help="size of the synthetic images in pixels; validation runs at this size (default: 256x512)",
    )
    p.add_argument(
        "--scale",
        type=float,
        nargs=2,
        default=(0.75, 1.5),
        metavar=("LOW", "HIGH"),
        help="random rescaling factor range for augmentation (default: 0.75 1.5)",
    )
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default: 0.01 for sgd, 0.001 for adamw)")
    p.add_argument(
        "--optimizer", choices=["sgd", "adamw"], default="sgd", help="sgd (momentum 0.9) or adamw (default: sgd)"
    )
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd only)")
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="weight decay, not applied to biases and BatchNorm (default: 5e-4 sgd, 1e-2 adamw)",
    )
    p.add_argument(
        "--schedule",
        choices=["poly", "cosine"],
        default="poly",
        help="learning-rate decay to 0 at --steps: poly (power 0.9) or cosine (default: poly)",
    )
    p.add_argument("--warmup", type=int, default=0, metavar="STEPS", help="linear warmup steps (default: 0)")
    p.add_argument(
        "--val-every",
        type=int,
        default=500,
        metavar="M",
        help="validate every M steps; 0 = only at the end (default: 500)",
    )
    p.add_argument("--val-images", type=int, default=100, metavar="N", help="validation images (default: 100)")
    p.add_argument(
        "--train-images",
        type=int,
        default=2000,
        metavar="N",
        help="training images, generated once and held in memory (default: 2000)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=200, metavar="N", help="write a checkpoint every N steps (default: 200)"
    )
    p.add_argument(
        "--log-every",
        type=int,
        default=20,
        metavar="K",
        help="log loss and learning rate to metrics.jsonl every K steps (default: 20)",
    )
    p.add_argument(
        "--stop-at",
        type=int,
        default=None,
        metavar="STEP",
        help="stop after this step, keeping the checkpoint; run again without it to continue",
    )
    g = p.add_argument_group(
        "adversarial training",
        "train on adversarial images made at every step by a registered attack, untargeted against the ground truth, "
        "on the network being trained in eval mode (BatchNorm's running statistics, no dropout); validation also "
        "reports the mIoU under PGD-10 at --adv-eps",
    )
    g.add_argument(
        "--adversarial",
        default=None,
        metavar="ATTACK[:LOSS]",
        help="the attack and optionally its loss: pgd (PGD-AT, Madry et al. 2018), segpgd (SegPGD-AT, Gu et al. "
        "2022), pgd:js, apgd:masked-ce, ...; untargeted attacks only (default: clean training)",
    )
    g.add_argument(
        "--adv-eps", type=float, default=None, metavar="LEVELS",
        help="the attack's L-inf budget in 8-bit levels (4 means 4/255); required with --adversarial",
    )  # fmt: skip
    g.add_argument(
        "--adv-steps", type=int, default=10, metavar="K",
        help="attack iterations per training step; a step costs about K + 1 clean ones (default: 10)",
    )  # fmt: skip
    g.add_argument(
        "--adv-step-size", type=float, default=None, metavar="LEVELS",
        help="attack step size in 8-bit levels (default: the attack's own rule; pgd and segpgd: 2.5 eps / K)",
    )  # fmt: skip
    g.add_argument(
        "--adv-share", type=float, default=1.0, metavar="R",
        help="share of every batch made adversarial, in (0, 1]: 1.0 adversarial images only (PIR-AT), 0.5 half "
        "clean and half adversarial (SegPGD-AT, DDC-AT); the first round(R x batch) images (default: 1.0)",
    )  # fmt: skip
    g.add_argument(
        "--adv-val-images", type=int, default=16, metavar="N",
        help="validation images of the robust mIoU (PGD-10 at --adv-eps; the first N) (default: 16)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation, batches and augmentation (default: 0)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data set (default: 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto = cuda if available (default: auto)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (ignored on CPU)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (often faster on GPU)")
    p.add_argument(
        "--export-name",
        default="model",
        metavar="NAME",
        help="name of the exported model files NAME.safetensors and NAME.json in --export-dir: a plain file name "
        "(letters, digits, '_', '-', '.'; no folder) (default: model)",
    )
    p.add_argument("--export-dir", default=None, metavar="DIR", help="where to export the model (default: --out)")
    p.add_argument(
        "--overwrite", action="store_true", help="discard a run with a different configuration in --out and start over"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


#: The command-line option of each ``TrainConfig`` field a refusal may name (``ConfigError.field``).
OPTIONS = {
    "adversarial": "--adversarial", "adv_eps": "--adv-eps", "adv_steps": "--adv-steps",
    "adv_step_size": "--adv-step-size", "adv_share": "--adv-share", "adv_val_images": "--adv-val-images",
}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, check_start, train
    from ._common import build_named

    net = network_options(args)
    config = build_named(TrainConfig, dict(
        out_dir=args.out, data=args.data, **net, init=args.init,
        size=tuple(args.size), train_images=args.train_images, val_images=args.val_images,
        data_seed=args.data_seed, steps=args.steps, batch_size=args.batch_size, crop=tuple(args.crop),
        loss=args.loss, lovasz_weights=dict(args.lovasz_weight), optimizer=args.optimizer, lr=args.lr,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup,
        scale_range=tuple(args.scale), seed=args.seed,
        device=args.device, amp=args.amp, channels_last=args.channels_last, log_every=args.log_every,
        val_every=args.val_every, checkpoint_every=args.checkpoint_every, stop_at=args.stop_at,
        export_name=args.export_name, export_dir=args.export_dir, adversarial=args.adversarial,
        adv_eps=args.adv_eps, adv_steps=args.adv_steps, adv_step_size=args.adv_step_size, adv_share=args.adv_share,
        adv_val_images=args.adv_val_images,
    ), OPTIONS)  # fmt: skip
    start = check_start(config, overwrite=args.overwrite)  # every check before any work
    if start.discarded:
        print(f"discarding the run in {args.out} (--overwrite) and starting over", file=sys.stderr)
    elif start.resume_step is not None:
        print(f"resuming from step {start.resume_step} in {args.out}", file=sys.stderr)
    result = train(config, overwrite=args.overwrite, progress=None if args.progress else False)

    if not result.finished:
        print(f"stopped at step {result.step} of {config.steps}; run the same command without --stop-at to continue")
        return 0
    minutes = result.elapsed_s / 60
    print(f"trained {result.step} steps in {minutes:.1f} min; final training loss {result.train_loss:.4f}")
    if result.val is not None:
        adv = config.adversarial_training()
        robust = ""
        if result.val_robust is not None and adv is not None:
            robust = (f"; robust mIoU {result.val_robust.miou:.1%}, pixel accuracy "
                      f"{result.val_robust.pixel_accuracy:.1%} (PGD-10 at eps {adv.eps_levels:g}/255 on the first "
                      f"{result.val_robust.images} images)")  # fmt: skip
        print(f"validation: mIoU {result.val.miou:.1%}, pixel accuracy {result.val.pixel_accuracy:.1%}{robust}")
        ious = result.val.iou.tolist()
        names = CLASS_NAMES if len(ious) == len(CLASS_NAMES) else tuple(map(str, range(len(ious))))
        per_class = ", ".join(f"{n} {v:.1%}" for n, v in zip(names, ious, strict=True) if v == v)
        print(f"per-class IoU: {per_class}")
    print(f"model: {result.export_path}")
    return 0


#: The network options of ``segattack train`` and their values without ``--init`` (None: the architecture's own).
NETWORK_DEFAULTS: dict[str, Any] = {"arch": "fcn8s", "width": None, "batch_norm": True, "dropout": None,
                                    "output_stride": 8, "refine": 0, "refine2": 0}  # fmt: skip


def network_options(args: argparse.Namespace) -> dict[str, Any]:
    """The network options of the run: those given on the command line; with ``--init``, the others from its card
    (so that ``--init zoo:NAME`` alone fine-tunes that network, and a larger FCN stage is asked for explicitly);
    else the defaults. A card that cannot be read is left to the init's own check, which names the problem."""
    given = {key: getattr(args, key) for key in NETWORK_DEFAULTS}
    card_values: dict[str, Any] = {}
    if args.init is not None and args.init.startswith("zoo:"):
        from ..errors import SegattackError
        from ..zoo import find_card

        try:
            card = find_card(args.init[4:].strip())
        except SegattackError:
            card = None
        if card is not None:
            kwargs = dict(card.arch_kwargs)
            card_values = {"arch": card.arch, **{k: kwargs[k] for k in NETWORK_DEFAULTS if k in kwargs}}
            if card.arch == "fcn8s":  # FCN-8s cards leave out the stages they do not have
                card_values = {"output_stride": 8, "refine": 0, "refine2": 0, **card_values}
    return {key: value if value is not None else card_values.get(key, NETWORK_DEFAULTS[key])
            for key, value in given.items()}  # fmt: skip

