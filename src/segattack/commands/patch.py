"""``segattack patch``: fit one adversarial patch on some images, measure it on images it never saw against a random
patch of the same size, and optionally in street scenes the generator draws with the patch in them.

Nesti, Rossolini, Nair, Biondi and Buttazzo (WACV 2022). Writes ``config.json``, ``patch_state.pt`` (the fit's
checkpoint), ``results.jsonl`` (per held-out image and evaluation), ``patch.npz`` (float values), ``patch.png``
(lossless; print size and DPI in its metadata with --print-size/--dpi), ``summary.json``, ``examples.png`` and
``report.html``. Ctrl-C keeps the checkpoint and the finished rows; the same command resumes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ._common import (
    DATA_FORMS,
    DEFAULT_FIT_DATA,
    DEFAULT_HELD_OUT,
    add_hide_arg,
    add_model_args,
    build_data,
    build_model,
    build_named,
    check_class_text,
    check_model_args,
    check_out_dir,
    class_text,
    format_duration,
    model_label_names,
    parse_classes,
)

#: Adam's default learning rate in 8-bit levels (``segattack.patches.fit.DEFAULT_LR``: Nesti et al.'s 0.5 levels
#: moved the patch too little in 200 steps on the embedded default).
DEFAULT_LR_LEVELS = 4.0

#: The command-line option of each ``PatchConfig`` field (and ``run_patch``'s ``rendered``), to name it in a refusal.
OPTIONS = {
    "goal": "--goal", "classes": "--hide", "size": "--patch-size/--patch-share", "at": "--at", "region": "--on",
    "tilt": "--tilt", "steps": "--steps", "lr": "--lr", "batch_size": "--batch-size", "tv_weight": "--tv-weight",
    "nps_weight": "--nps-weight", "colours": "--colours", "eot": "--no-eot", "transforms": "--eot-transforms",
    "seed": "--seed", "examples": "--examples", "rendered": "--rendered", "placement": "--at/--on",
}  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "patch",
        help="fit one printable adversarial patch that hides a class (or lowers the mIoU) wherever it is placed; "
        "measure it on held-out images against a random patch (resumable)",
        description="Adversarial patch of Nesti et al. (WACV 2022): one picture with values in [0, 1] (no eps), "
        "pasted into every --fit-data image under random EOT draws (position, scale, noise) and moved by Adam on "
        "the loss split into pixels not yet fooled and already fooled (the patch's own pixels never count), with "
        "optional smoothness (--tv-weight) and printability (--nps-weight) terms; then measured on --data, which "
        "it never saw, against the clean prediction, beside a random patch of the same size. --lr is in 8-bit "
        "levels like every step size on the command line. Writes config.json, patch_state.pt, results.jsonl, "
        "patch.npz, patch.png, summary.json, examples.png and report.html into --out; Ctrl-C keeps the fit's "
        "checkpoint and the finished rows, and the same command resumes.",
    )
    p.add_argument("--fit-data", metavar="SPEC", default=DEFAULT_FIT_DATA,
                   help=f"images to fit the patch on: {DATA_FORMS}; default: {DEFAULT_FIT_DATA}")  # fmt: skip
    p.add_argument("--data", metavar="SPEC", default=DEFAULT_HELD_OUT,
                   help="held-out images to measure it on (not the --fit-data images); default: "
                   f"{DEFAULT_HELD_OUT}")  # fmt: skip
    p.add_argument("--size", metavar="HxW", default=None,
                   help="resize all images to H x W pixels (default: synthetic 256x512, files as they "
                   "are)")  # fmt: skip
    add_hide_arg(p)
    p.add_argument("--goal", choices=("hide", "untargeted"), default="hide",
                   help="hide the --hide class (Fischer et al.'s dynamic target) or lower the agreement with the clean "
                   "prediction everywhere (Nesti et al.'s untargeted loss; --hide is then only measured); "
                   "default: hide")  # fmt: skip
    g = p.add_argument_group("the patch and where it goes")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--patch-size", metavar="HxW", default=None,
                      help="the patch's height x width in pixels of the (resized) images (default: 64x64)")  # fmt: skip
    size.add_argument("--patch-share", metavar="R", type=float, default=None,
                      help="the patch's area as a share of the image's, in (0, 1), square (e.g. 0.05)")  # fmt: skip
    where = g.add_mutually_exclusive_group()
    where.add_argument("--at", metavar="Y,X", default=None,
                       help="the patch's top-left corner in pixels (row, column); default: centred")  # fmt: skip
    where.add_argument("--on", metavar="CLASS[,CLASS]", default=None,
                       help="anywhere wholly on these classes of the clean prediction (e.g. building,wall), a position "
                       "drawn per image and step")  # fmt: skip
    g.add_argument("--tilt", type=float, default=0.0, metavar="T",
                   help="perspective as a billboard seen from the road: the far (right for T > 0, left for T < 0) edge "
                   "is (1 - |T|) of the near edge's height, T in (-1, 1); default: 0 (none)")  # fmt: skip
    e = p.add_argument_group("EOT and the optimisation")
    e.add_argument("--no-eot", action="store_true",
                   help="paste the patch as placed (EOT is on by default, with Nesti et al.'s ranges: shift up to half "
                   "the patch, scale 0.8-1.2, noise 0.1)")  # fmt: skip
    e.add_argument("--eot-transforms", metavar="SPEC", default="",
                   help="image-wide transforms drawn in the EOT, e.g. blur:1,jpeg:75 (default: none)")  # fmt: skip
    e.add_argument("--steps", type=int, default=None, metavar="N",
                   help="Adam steps, each one batch of fit images (default: 200, Nesti et al.'s)")  # fmt: skip
    e.add_argument("--lr", type=float, default=DEFAULT_LR_LEVELS, metavar="LEVELS",
                   help=f"Adam's learning rate in 8-bit levels (default: {DEFAULT_LR_LEVELS:g}; Nesti et al.'s 0.5 "
                   "moved the patch too little in 200 steps on the default; see the patches guide)")  # fmt: skip
    e.add_argument("--batch-size", type=int, default=10, metavar="N",
                   help="fit images per step, and images per pass when measuring (default: 10, Nesti et "
                   "al.'s)")  # fmt: skip
    e.add_argument("--tv-weight", type=float, default=0.0, metavar="W",
                   help="weight of the smoothness (total variation) gradient (default: 0)")  # fmt: skip
    e.add_argument("--nps-weight", type=float, default=0.0, metavar="W",
                   help="weight of the non-printability gradient (Sharif et al. 2016) (default: 0)")  # fmt: skip
    e.add_argument("--colours", metavar="FILE", default=None,
                   help="printable colours for --nps-weight: one RGB triple a line, 0..255 or [0, 1] (default: the "
                   "built-in set)")  # fmt: skip
    e.add_argument("--seed", type=int, default=0, help="seed of the initial patch, the random patch and every EOT "
                   "draw (default: 0)")  # fmt: skip
    o = p.add_argument_group("outputs")
    o.add_argument("--print-size", metavar="WxH{cm,in}", default=None,
                   help="the printed patch's width x height, e.g. 30x30cm or 12x12in: written into patch.png's "
                   "metadata (with --dpi the PNG is enlarged to that resolution, pixels repeated)")  # fmt: skip
    o.add_argument("--dpi", type=float, default=None, metavar="N",
                   help="the print resolution in dots per inch written into patch.png's metadata")  # fmt: skip
    o.add_argument("--rendered", type=int, default=0, metavar="N",
                   help="after the fit, draw N generated street scenes per placement (facade poster, billboard) with "
                   "the fitted patch and with the random one, and measure the fitted poster against the random "
                   "poster in the same scene (default: 0)")  # fmt: skip
    o.add_argument("--examples", type=int, default=3, metavar="N",
                   help="held-out images shown in examples.png (default: 3; 0: none)")  # fmt: skip
    o.add_argument("--out", required=True, metavar="DIR",
                   help="output directory (resumed when it holds this configuration; a directory of another command "
                   "or configuration is refused)")  # fmt: skip
    o.add_argument("--overwrite", action="store_true",
                   help="replace what earlier patch runs wrote into --out (and only that)")  # fmt: skip
    add_model_args(p)
    p.set_defaults(func=run)


def _same_data(fit: str, held: str) -> bool:
    """Whether two data specs name the same images (splits and data sets start at index 0)."""
    from ..specs import parse_data_spec

    a, b = parse_data_spec(fit), parse_data_spec(held)

    def key(ds: Any) -> tuple[str, str | None, str]:
        return ds.scheme, str(Path(ds.path).expanduser().resolve()) if ds.path else None, ds.split

    return key(a) == key(b)


def _pair(text: str, option: str, sep: str, what: str) -> tuple[int, int]:
    parts = [s.strip() for s in text.lower().split(sep)]
    try:
        a, b = (int(v) for v in parts)
    except ValueError:
        raise UserError(f"{option} takes {what}, got {text!r}") from None
    return a, b


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``PatchConfig`` fields of the options that need no model."""
    if not (args.lr > 0 and math.isfinite(args.lr)):  # said in the command line's units, levels
        raise UserError(f"--lr takes a positive learning rate in 8-bit levels (default {DEFAULT_LR_LEVELS:g}), "
                        f"got {args.lr:g}")  # fmt: skip
    fields: dict[str, Any] = {"goal": args.goal, "tilt": args.tilt, "lr": args.lr / 255, "batch_size": args.batch_size,
                              "tv_weight": args.tv_weight, "nps_weight": args.nps_weight,
                              "colours": str(Path(args.colours).expanduser().resolve()) if args.colours else None,
                              "eot": not args.no_eot, "transforms": args.eot_transforms, "seed": args.seed,
                              "examples": args.examples}  # fmt: skip
    if args.steps is not None:
        fields["steps"] = args.steps
    if args.patch_size is not None:
        fields["size"] = _pair(args.patch_size, "--patch-size", "x", "HxW in pixels, e.g. 64x64")
    elif args.patch_share is not None:
        fields["size"] = float(args.patch_share)
    if args.at is not None:
        fields["placement"], fields["at"] = "box", _pair(args.at, "--at", ",", "Y,X in pixels, e.g. 20,40")
    elif args.on is not None:
        fields["placement"], fields["region"] = "region", (0,)  # the classes come with the model's names
    return fields


def _config(args: argparse.Namespace, names: tuple[str, ...] | None = None) -> Any:
    from ..patches import PatchConfig

    fields = _fields(args)
    if names is not None:
        fields["classes"] = parse_classes(args.hide, names)
        if args.on is not None:
            fields["region"] = parse_classes(args.on, names, option="--on")
    return build_named(PatchConfig, fields, OPTIONS)


def run(args: argparse.Namespace) -> int:
    from ..errors import SegattackError
    from ..patches import PatchError, load_printable_colours
    from ..patches.export import parse_print_size
    from ..patches.run import run_patch

    check_out_dir(args.out)  # before any data or model is loaded; the library refuses a directory of another kind
    check_class_text(args.hide)
    if args.on is not None:
        check_class_text(args.on, "--on")
    _config(args)  # every numeric option checked before any data or model is loaded
    if args.rendered < 0:
        raise UserError(f"--rendered takes a number of scenes, 0 or more, got {args.rendered}")
    try:
        print_size = parse_print_size(args.print_size) if args.print_size is not None else None
    except SegattackError as err:
        raise UserError(f"--print-size: {err}") from None
    if args.dpi is not None and not 0 < args.dpi < 1e5:
        raise UserError(f"--dpi takes a positive number of dots per inch (e.g. 300), got {args.dpi:g}")
    if args.colours is not None:
        try:
            load_printable_colours(args.colours)
        except SegattackError as err:
            raise UserError(f"--colours: {err}") from None
    if _same_data(args.fit_data, args.data):
        raise UserError(
            f"--fit-data {args.fit_data} and --data {args.data} share images; measure on images the patch never "
            f"saw, e.g. --fit-data {DEFAULT_FIT_DATA} --data {DEFAULT_HELD_OUT}"
        )
    check_model_args(args)
    fit_data, fit_desc = build_data(args.fit_data, args.size)
    held, held_desc = build_data(args.data, args.size)
    model, model_desc = build_model(args)
    names = model_label_names(model)
    config = _config(args, names)
    bar = _Progress(_header(config, args, fit_desc, model_desc, names))
    try:
        done = run_patch(model, fit_data, held, config, args.out, rendered=args.rendered, print_size=print_size,
                         dpi=args.dpi, overwrite=args.overwrite, device=args.device, progress=bar,
                         describe={"fit": fit_desc, "data": held_desc, "model": model_desc})  # fmt: skip
    except PatchError as err:
        option = OPTIONS.get(err.field or "")
        if option:
            raise UserError(f"{option}: {err}") from None
        raise
    finally:
        bar.close()
    _print_done(done, names, Path(args.out))
    return 0


def _header(config: Any, args: argparse.Namespace, fit_desc: dict[str, Any], model_desc: dict[str, Any],
            names: tuple[str, ...]) -> str:  # fmt: skip
    goal = (f"hiding {class_text(config.classes, names, '/')}" if config.goal == "hide"
            else "untargeted (lowering the agreement with the clean prediction)")  # fmt: skip
    return (f"fitting a patch on {fit_desc['data']} with {model_desc['model']} on {args.device}: {goal}, "
            f"{config.steps} Adam steps of batches of {config.batch_size} (lr {args.lr:g} levels), EOT "
            f"{'on' if config.eot else 'off'}")  # fmt: skip


class _Progress:
    """One progress bar per stage (the fit's steps, the held-out rows, the rendered rows), the header first."""

    def __init__(self, header: str) -> None:
        self.header, self.bar, self.stage = header, None, ""

    def __call__(self, p: Any) -> None:
        from tqdm import tqdm

        if p.stage != self.stage:
            if not self.stage:
                print(self.header, file=sys.stderr, flush=True)
            self.close()
            self.stage = p.stage
            unit = "step" if p.stage == "fit" else "row"
            if p.done:
                print(f"{p.stage}: {p.done} of {p.total} {unit}s done before", file=sys.stderr, flush=True)
            self.bar = tqdm(total=p.total, initial=p.done, desc=p.stage, unit=unit, disable=not sys.stderr.isatty())
            return
        assert self.bar is not None
        self.bar.update(p.done - self.bar.n)
        if p.stage == "fit" and p.loss == p.loss:
            self.bar.set_postfix_str(f"loss {p.loss:.4g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _pct(s: Any) -> str:
    m, sd = s.get("mean"), s.get("std")
    return "n/a" if m is None else f"{100 * m:.1f}% ± {100 * (sd or 0):.1f}"


def _print_done(done: Any, names: tuple[str, ...], out: Path) -> None:
    """Where things are (stderr) and the one sentence of the result (stdout)."""
    s = done.summary
    f, r = s["held_out"]["fitted"], s["held_out"]["random"]
    hidden = "/".join(s["hide_names"])
    rel = os.path.relpath(out)
    print(f"done in {format_duration(done.fit_s + done.eval_s)} (fit {format_duration(done.fit_s)}); "
          f"{done.computed} rows computed, {done.resumed} found finished", file=sys.stderr)  # fmt: skip
    print(f"results: {rel if not rel.startswith('..') else out}/  " + "  ".join(done.written), file=sys.stderr)
    head = f"the patch ({s['patch']['width']}x{s['patch']['height']} px)"
    hides = f"hides {_pct(f['hidden'])} of {hidden} pixels (a random patch: {_pct(r['hidden'])})"
    agree = (f"mIoU {_pct(f['miou'])} of agreement with the clean prediction (random: "
             f"{_pct(r['miou'])})")  # fmt: skip
    sentence = (f"{head} {hides} and leaves {agree}" if s["goal"] == "hide" else f"{head} leaves {agree} and "
                f"{hides}") + f" on {f['images']} held-out images"  # fmt: skip
    if s.get("rendered"):
        rr = s["rendered"]["rendered"]["all"]
        sentence += (f"; in {s['rendered_scenes']} rendered scenes per placement, against the same scene with a "
                     f"random poster: hidden {_pct(rr['hidden'])}, mIoU {_pct(rr['miou'])}")  # fmt: skip
    print(sentence)
