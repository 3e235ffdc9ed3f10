"""``segattack attack``: one image in, its adversarial version (lossless 8-bit PNG) and the paper's panels out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..rundir import atomic_open, check_writable_dir
from ._common import (
    add_attack_args,
    add_eps_arg,
    add_hide_arg,
    add_model_args,
    build_model,
    check_class_text,
    check_model_args,
    class_text,
    model_label_names,
    parse_attacks,
    parse_classes,
    parse_eps,
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "attack",
        help="make one image's adversarial version that hides a class (eps in 8-bit levels); PNG + panel figure",
        description="Attack one image as Fischer et al. (2017): target = the model's prediction with the hidden class "
        "replaced by its nearest other class; iterative targeted attack with step 1 level and n = min(eps+4, "
        "1.25 eps) iterations. Writes the adversarial image as a lossless 8-bit PNG (it reloads bit for bit) and "
        "the 11 panels of the paper's Figure 1 next to it (OUT_panels.png). eps is in 8-bit levels (10 = 10/255).",
    )
    p.add_argument("image", metavar="IMAGE", help="input image (PNG or JPEG)")
    add_hide_arg(p)
    add_eps_arg(p, several=False)
    p.add_argument("--out", required=True, metavar="FILE.png", help="adversarial image to write (PNG)")
    p.add_argument(
        "--restrict",
        choices=("none", "posthoc", "during"),
        default="none",
        help="which version goes into --out: perturbation on the whole image (none), restricted to the class pixels "
        "afterwards (posthoc) or during the optimisation (during) (default: none)",
    )
    p.add_argument("--size", metavar="HxW", default=None, help="resize the image to H x W pixels first")
    add_attack_args(p, several=False)
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from ..data.folder import image_size_of, read_rgb
    from ..experiment import to_uint8
    from ..memory import check_run_memory
    from ..metrics import hiding_metrics, perturbation_norms, psnr
    from ..models import classes_of, first_pass
    from ..pipeline import HideGoal, attack_batch
    from ..report.figures import panels_figure
    from ..specs import parse_size
    from ..targets import hidden_mask

    check_class_text(args.hide)
    (spec,) = parse_attacks(args.attack, args.attack_opt, single=True)
    eps_list = parse_eps(args.eps)
    if len(eps_list) != 1:
        raise UserError(f"attack takes one eps, got {args.eps!r}; use `segattack run` for a sweep")
    eps = eps_list[0]
    if not float(eps).is_integer():
        print(
            f"warning: eps={eps} is not a whole number of levels; the PNG holds whole levels, so its perturbation is "
            f"rounded toward the original to stay within {int(eps)} levels (the printed measures are those of the "
            "unrounded attack)",
            file=sys.stderr,
        )
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file (lossless, 8-bit exact), got {args.out!r}")
    src = Path(args.image)
    if not src.is_file():
        raise UserError(f"image {args.image!r} does not exist" if not src.exists() else f"{args.image!r} is not a file")
    panels = out.with_name(out.stem + "_panels.png")
    for path, what in ((out, "--out"), (panels, f"the panel figure of --out ({panels.name})")):
        if path.exists() and path.resolve() == src.resolve():
            raise UserError(f"{what} would overwrite the input image {args.image}; choose another --out")
        if path.is_dir():
            raise UserError(f"{what} {path} is a directory; give a file name ending in .png")
    check_writable_dir(out.parent, create=False)
    size = parse_size(args.size)
    check_model_args(args)
    model, _ = build_model(args)
    class_ids = parse_classes(args.hide, model_label_names(model))
    h, w = size if size is not None else image_size_of(src)  # from the header: nothing decoded yet
    modes_kept = 2 if args.restrict == "none" else 3
    check_run_memory(model, device=args.device, height=h, width=w, batch_size=1, n_eps=1, n_modes=modes_kept,
                     what="attacking this image")  # fmt: skip
    rgb, _ = read_rgb(src)
    if size is not None and rgb.shape[:2] != size:
        rgb = np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.BILINEAR))
    x = torch.tensor(rgb).permute(2, 0, 1)[None].to(args.device, torch.float32) / 255
    logits = first_pass(model, x, on=str(src))
    if max(class_ids) >= logits.shape[1]:
        raise UserError(f"class id {max(class_ids)} to hide, but the model predicts only {logits.shape[1]} classes")
    pred = classes_of(logits)
    hidden = hidden_mask(pred, class_ids)
    names = class_text(class_ids, model_label_names(model), "/")
    if bool(hidden.all()):
        raise UserError(f"the model predicts every pixel as {names}: there is no other class to hide it behind")
    if not bool(hidden.any()):
        print(
            f"note: the model predicts no {names} pixel in {src}; the attack only keeps the prediction", file=sys.stderr
        )
    mode = {"none": "full"}.get(args.restrict, args.restrict)
    goal = HideGoal(class_ids)
    try:
        outcome = attack_batch(
            model, x, attack=spec, goal=goal, eps=[eps / 255], modes=(mode,), pred=pred, keep=("full", "posthoc")
        )
    except ValueError as err:
        raise UserError(f"--attack {spec.name}: {err}") from None
    target = outcome.labels
    adv_full, adv_r, adv = outcome.advs["full"][0], outcome.advs["posthoc"][0], outcome.advs[mode][0]
    m = hiding_metrics(pred, outcome.preds[mode][0], class_id=class_ids, target=target)

    def to8(t: torch.Tensor) -> np.ndarray:
        return to_uint8(t[0], x[0], eps)

    check_writable_dir(out.parent)
    with atomic_open(out) as fh:
        Image.fromarray(to8(adv)).save(fh, format="PNG")
    fig = panels_figure(
        {
            "image_id": src.name,
            "attack": spec.name,
            "eps": eps,
            "class_ids": np.array(class_ids),
            "image": rgb,
            "adv": to8(adv_full),
            "adv_restricted": to8(adv_r),
            "target": target[0].cpu().numpy(),
            "pred": pred[0].cpu().numpy(),
            "pred_adv": outcome.preds["full"][0, 0].cpu().numpy(),
            "pred_restricted": outcome.preds["posthoc"][0, 0].cpu().numpy(),
        }
    )
    with atomic_open(panels) as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")
    norms = perturbation_norms(adv, x)
    fooled = float(m.fooled[0])
    restricted = {"none": "", "posthoc": ", restricted to the class pixels", "during": ", restricted during the attack"}
    print(f"{out}: {spec.name}, eps={eps} levels ({spec.passes(eps / 255)} gradient passes{restricted[args.restrict]})")
    if fooled == fooled:
        print(
            f"{100 * fooled:.1f}% of {int(m.class_pixels[0])} {names} pixels hidden, "
            f"{100 * float(m.preserved[0]):.1f}% of background kept; L-inf {float(norms['linf'][0]):.0f} levels, "
            f"PSNR {float(psnr(adv, x)[0]):.1f} dB"
        )
    print(f"panels: {panels}")
    return 0
