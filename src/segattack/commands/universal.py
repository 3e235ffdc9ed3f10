"""``segattack universal``: fit one universal perturbation on some images, measure it on images it never saw.

Metzen, Kumar, Brox and Fischer (ICCV 2017). Writes ``universal.npz`` (the perturbation, lossless), ``universal.png``
(a picture of it), ``results.jsonl`` (per held-out image), ``summary.json`` (means, configuration, times) and
``examples.png`` (clean and perturbed images with their predictions).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ._common import (
    DATA_FORMS,
    DEFAULT_FIT_DATA,
    DEFAULT_HELD_OUT,
    add_eps_arg,
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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "universal",
        help="fit one universal perturbation that hides a class on every image (eps in 8-bit levels); measure it "
        "on held-out images",
        description="Universal adversarial perturbation of Metzen, Kumar, Brox and Fischer (ICCV 2017): one "
        "perturbation xi, |xi| <= eps, fitted on --fit-data by xi <- Clip_eps(xi - step * sign(mean gradient)) over "
        "all fit images (the hidden-class pixels weighted by omega, the rest by 1 - omega), then added to the images "
        "of --data, which it never saw, and measured there. eps and --step-size are in 8-bit levels (10 = 10/255). "
        "Writes universal.npz (lossless), universal.png, results.jsonl, summary.json and examples.png into --out.",
    )
    p.add_argument(
        "--fit-data",
        metavar="SPEC",
        default=DEFAULT_FIT_DATA,
        help=f"images to fit the perturbation on: {DATA_FORMS}; default: {DEFAULT_FIT_DATA}",
    )
    p.add_argument(
        "--data",
        metavar="SPEC",
        default=DEFAULT_HELD_OUT,
        help=f"held-out images to measure it on (not the --fit-data images); default: {DEFAULT_HELD_OUT}",
    )
    p.add_argument(
        "--size",
        metavar="HxW",
        default=None,
        help="resize all images to H x W pixels; one perturbation needs one size (default: synthetic 256x512, files "
        "as they are)",
    )
    add_hide_arg(p)
    p.add_argument(
        "--static",
        default=None,
        metavar="CLASS",
        help="instead of hiding, push every pixel towards this one class (the paper's static target); --hide then "
        "only names the class whose pixels are counted as fooled (default: off)",
    )
    add_eps_arg(p, several=False)
    p.add_argument("--steps", type=int, default=60, metavar="N", help="iterations over the fit images (default: 60)")
    p.add_argument("--step-size", default="1", metavar="LEVELS", help="step per iteration in 8-bit levels (default: 1)")
    p.add_argument(
        "--omega",
        type=float,
        default=0.9999,
        help="loss weight of the hidden-class pixels, the rest get 1 - omega (default: 0.9999, the paper's)",
    )
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="images per pass (default: 4)")
    p.add_argument(
        "--examples",
        type=int,
        default=3,
        metavar="N",
        help="held-out images shown in examples.png (default: 3; 0: no examples.png, an earlier one is removed)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory (its universal files are replaced; a directory of another command is refused)",
    )
    add_model_args(p)
    p.set_defaults(func=run, interrupted=INTERRUPTED)


def _same_data(fit: str, held: str) -> bool:
    """Whether two data specs name the same images (synthetic splits and data sets start at index 0, so the same
    scheme, path and split always share images)."""
    from ..specs import parse_data_spec

    a, b = parse_data_spec(fit), parse_data_spec(held)

    def key(ds: Any) -> tuple[str, str | None, str]:
        return ds.scheme, str(Path(ds.path).expanduser().resolve()) if ds.path else None, ds.split

    return key(a) == key(b)


#: The command-line option of each ``UniversalConfig`` field, to name it in a refusal.
OPTIONS = {
    "eps": "--eps", "classes": "--hide", "static": "--static", "steps": "--steps", "step_size": "--step-size",
    "omega": "--omega", "batch_size": "--batch-size", "examples": "--examples", "label_names": "--class-names",
}  # fmt: skip


def _names(class_ids: tuple[int, ...], names: tuple[str, ...]) -> str:
    return class_text(class_ids, names, "/")


def _pct(s: Any) -> str:
    return f"{100 * s.mean:.1f}% ± {100 * s.std:.1f}"


def _levels(text: str, option: str) -> float:
    """One number of 8-bit levels (checked by ``UniversalConfig``); UserError for anything that is not a number."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) > 1:
        raise UserError(f"universal takes one eps, got {text!r}" if option == "--eps" else
                        f"{option} takes one number of 8-bit levels, got {text!r}")  # fmt: skip
    try:
        return float(items[0] if items else text)
    except ValueError:
        raise UserError(f"{option} must be a positive number of 8-bit levels, got {text!r}") from None


#: What Ctrl-C leaves: universal keeps no partial fit and writes its files only at the end of a run, so a rerun
#: fits the perturbation again from its first step.
INTERRUPTED = (
    "segattack universal: interrupted; the fit is not kept (universal does not resume): the same command fits the "
    "perturbation again from the start (--out's files are written only at the end of a run)"
)


def run(args: argparse.Namespace) -> int:
    check_out_dir(args.out)  # before any data or model is loaded; the library refuses a directory of another kind
    return _run(args)


def _config(args: argparse.Namespace) -> Any:
    """The ``UniversalConfig`` of the numeric options, checked before any data or model is loaded (the classes come
    once the model, whose class names ``--hide`` uses, is known: ``_with_classes``)."""
    from ..universal import UniversalConfig

    return build_named(UniversalConfig, {
        "eps": _levels(args.eps, "--eps"), "steps": args.steps, "step_size": _levels(args.step_size, "--step-size"),
        "omega": args.omega, "batch_size": args.batch_size, "examples": args.examples,
    }, OPTIONS)  # fmt: skip


def _with_classes(config: Any, args: argparse.Namespace, names: tuple[str, ...]) -> Any:
    """``config`` with ``--hide``/``--static`` by the model's class ``names`` (checked as the config is made)."""
    import dataclasses
    import functools

    return build_named(functools.partial(dataclasses.replace, config), {
        "classes": parse_classes(args.hide, names),
        "static": parse_classes(args.static, names, option="--static") if args.static else None, "label_names": names,
    }, OPTIONS)  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from ..universal import run_universal

    check_class_text(args.hide)
    if args.static is not None:
        check_class_text(args.static, "--static", one=True)
    config = _config(args)
    if _same_data(args.fit_data, args.data):
        raise UserError(
            f"--fit-data {args.fit_data} and --data {args.data} share images; measure on images the perturbation "
            f"never saw, e.g. --fit-data {DEFAULT_FIT_DATA} --data {DEFAULT_HELD_OUT}"
        )
    check_model_args(args)
    fit_data, fit_desc = build_data(args.fit_data, args.size)
    held, held_desc = build_data(args.data, args.size)
    model, model_desc = build_model(args)
    names = model_label_names(model)
    config = _with_classes(config, args, names)
    progress = _Progress(_header(config, len(fit_data), fit_desc, model_desc, args.device, names))
    try:
        done = run_universal(model, fit_data, held, config, args.out, device=args.device, progress=progress,
                             describe={"fit": fit_desc, "data": held_desc, "model": model_desc})  # fmt: skip
    finally:
        progress.close()
    _print_done(done, config, names, Path(args.out))
    return 0


def _header(config: Any, n_fit: int, fit_desc: dict[str, Any], model_desc: dict[str, Any], device: str,
            names: tuple[str, ...]) -> str:  # fmt: skip
    from ..experiment.config import number

    goal = f"static target {_names((config.static,), names)}" if config.static is not None else (
        f"hiding {_names(config.classes, names)}")  # fmt: skip
    return (
        f"fitting a universal perturbation on {n_fit} images of {fit_desc['data']} with {model_desc['model']} on "
        f"{device}: eps {number(config.eps)} levels, {config.steps} steps of {config.step_size:g} level(s) "
        f"({config.steps * n_fit} forward+backward passes); {goal}"
    )


class _Progress:
    """The fit's progress bar: the header once the fit starts (the data and the classes were accepted)."""

    def __init__(self, header: str) -> None:
        self.header, self.bar = header, None

    def __call__(self, done: int, steps: int, loss: float) -> None:
        from tqdm import tqdm

        if self.bar is None:
            print(self.header, file=sys.stderr, flush=True)
            self.bar = tqdm(total=steps, desc="fitting", unit="step", disable=not sys.stderr.isatty())
            return
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix_str(f"loss {loss:.4g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_done(done: Any, config: Any, names: tuple[str, ...], out: Path) -> None:
    """Where things are (stderr) and the one sentence of the result (stdout)."""
    from ..experiment.config import number

    stats, counts, rows = done.stats, done.counts, done.rows
    hidden = _names(config.classes, names)
    head = f"one universal perturbation (eps={number(config.eps)}, fitted on {len(done.result.image_ids)} other images)"
    if stats["fooled"].count:
        sentence = (
            f"{head} hides {_pct(stats['fooled'])} of {hidden} pixels and keeps {_pct(stats['preserved'])} of the "
            f"background on {stats['fooled'].count} held-out images with {hidden}"
        )
    else:
        sentence = f"{head}: none of the {len(rows)} held-out images contains {hidden}"
    if config.static is not None:
        sentence += f"; {_pct(stats['target_hit'])} of pixels show the static target {_names((config.static,), names)}"
    total = done.fit_s + done.eval_s
    print(
        f"done in {format_duration(total)} (fit {format_duration(done.fit_s)}); "
        f"{counts['ok']} of {len(rows)} held-out images contain {hidden}"
        + (f" ({counts['unreadable']} unreadable)" if counts["unreadable"] else ""),
        file=sys.stderr,
    )
    rel = os.path.relpath(out)
    print(f"results: {rel if not rel.startswith('..') else out}/  " + "  ".join(done.written), file=sys.stderr)
    print(sentence)
