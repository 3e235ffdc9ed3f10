"""``segattack universal``: fit one universal perturbation on some images, measure it on images it never saw.

Metzen, Kumar, Brox and Fischer (ICCV 2017). Writes ``universal.npz`` (the perturbation, lossless), ``universal.png``
(a picture of it), ``results.jsonl`` (per held-out image), ``summary.json`` (means, configuration, times) and
``examples.png`` (clean and perturbed images with their predictions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import SegattackError, UserError
from ..rundir import RESULTS_FILE, json_safe, record_outputs, remove_output, write_json, write_text
from ._common import (
    add_hide_arg,
    add_model_args,
    build_data,
    build_model,
    check_class_text,
    check_model_args,
    check_out_dir,
    class_text,
    format_duration,
    model_label_names,
    parse_classes,
    parse_eps,
)

DEFAULT_FIT_DATA = "synthetic-train:40"
UNIVERSAL_FILE = "universal.npz"
SUMMARY_JSON = "summary.json"
EXAMPLES_FILE = "examples.png"
DEFAULT_HELD_OUT = "synthetic:20"
DATA_FORMS = (
    "synthetic[:N] (validation split), synthetic-train[:N] (training split), cityscapes:PATH[:SPLIT], folder:PATH"
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
    p.add_argument("--eps", default="10", metavar="LEVELS", help="L-inf budget in 8-bit levels (default: 10)")
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
    p.set_defaults(func=run)


def _same_data(fit: str, held: str) -> bool:
    """Whether two data specs name the same images (synthetic splits and data sets start at index 0, so the same
    scheme, path and split always share images)."""
    from ..specs import parse_data_spec

    a, b = parse_data_spec(fit), parse_data_spec(held)

    def key(ds: Any) -> tuple[str, str | None, str]:
        return ds.scheme, str(Path(ds.path).expanduser().resolve()) if ds.path else None, ds.split

    return key(a) == key(b)


def _check_sizes(fit_data: Any, held: Any) -> None:
    """Refuse before the fit when the first images of the two data sets differ in size (each data set's own images
    are checked one by one later)."""
    from ..data.base import UnreadableImageError

    try:
        a, b = fit_data[0][0], held[0][0]
    except (UnreadableImageError, IndexError):
        return  # reported where the images are used
    if tuple(a.shape[-2:]) != tuple(b.shape[-2:]):
        raise UserError(
            f"the --fit-data images are {a.shape[-2]}x{a.shape[-1]} pixels but the --data images "
            f"{b.shape[-2]}x{b.shape[-1]}; one universal perturbation needs one size: pass --size "
            f"{a.shape[-2]}x{a.shape[-1]} to resize all images"
        )


def _names(class_ids: tuple[int, ...], names: tuple[str, ...] | None = None) -> str:
    from ..data.labels import CLASS_NAMES

    return class_text(class_ids, names if names is not None else CLASS_NAMES, "/")


def _pct(s: Any) -> str:
    return f"{100 * s.mean:.1f}% ± {100 * s.std:.1f}"


#: What Ctrl-C leaves: universal keeps no partial fit and writes its files only at the end of a run, so a rerun
#: fits the perturbation again from its first step.
INTERRUPTED = (
    "segattack universal: interrupted; the fit is not kept (universal does not resume): the same command fits the "
    "perturbation again from the start (--out's files are written only at the end of a run)"
)


def run(args: argparse.Namespace) -> int:
    from ..rundir import RunLock, check_kind

    check_out_dir(args.out)  # before the fit: a finished fit must have somewhere to go
    check_kind(args.out, "universal")  # and it must not replace a run's (or a comparison's) files
    try:
        with RunLock(args.out, "segattack universal"):
            return _run(args)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .. import __version__
    from ..attacks.universal import apply_universal, save_universal, universal
    from ..data.base import UnreadableImageError
    from ..metrics import hiding_metrics, summarize
    from ..targets import static_target

    check_class_text(args.hide)
    if args.static is not None:
        check_class_text(args.static, "--static", one=True)
    eps_list = parse_eps(args.eps)
    if len(eps_list) != 1:
        raise UserError(f"universal takes one eps, got {args.eps!r}")
    eps = eps_list[0]
    try:
        step = float(args.step_size)
    except ValueError:
        raise UserError(f"--step-size must be a positive number of 8-bit levels, got {args.step_size!r}") from None
    if not 0 < step <= 255:
        raise UserError(f"--step-size must be a positive number of 8-bit levels (e.g. 1), got {args.step_size}")
    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0 <= args.omega <= 1:
        raise UserError(f"--omega must lie in [0, 1] (the paper's 0.9999), got {args.omega}")
    if args.examples < 0:
        raise UserError(f"--examples must be 0 or more, got {args.examples}")
    if _same_data(args.fit_data, args.data):
        raise UserError(
            f"--fit-data {args.fit_data} and --data {args.data} share images; measure on images the perturbation "
            f"never saw, e.g. --fit-data {DEFAULT_FIT_DATA} --data {DEFAULT_HELD_OUT}"
        )
    check_model_args(args)
    fit_data, fit_desc = build_data(args.fit_data, args.size)
    held, held_desc = build_data(args.data, args.size)
    model, model_desc = build_model(args)
    label_names = model_label_names(model)
    hide_ids = parse_classes(args.hide, label_names)
    static_ids = parse_classes(args.static, label_names, option="--static") if args.static else None
    if static_ids is not None and len(static_ids) != 1:
        raise UserError(f"--static takes one class, got {args.static!r}")

    _check_sizes(fit_data, held)
    names = _names(hide_ids, label_names)
    n_fit = len(fit_data)
    header = (
        f"fitting a universal perturbation on {n_fit} images of {fit_desc['data']} with {model_desc['model']} on "
        f"{args.device}: eps {eps} levels, {args.steps} steps of {step:g} level(s) "
        f"({args.steps * n_fit} forward+backward passes); "
        + (f"static target {_names(static_ids, label_names)}" if static_ids else f"hiding {names}")
    )
    bar: Any = None

    def progress(done: int, steps: int, loss: float) -> None:
        nonlocal bar
        if bar is None:  # the fit has started: the data and the classes were accepted
            print(header, file=sys.stderr, flush=True)
            bar = tqdm(total=steps, desc="fitting", unit="step", disable=not sys.stderr.isatty())
            return
        bar.update(done - bar.n)
        bar.set_postfix_str(f"loss {loss:.4g}")

    t0 = time.perf_counter()
    try:
        result = universal(
            model,
            fit_data,
            eps=eps / 255,
            target="static" if static_ids else "hide",
            class_id=static_ids[0] if static_ids else hide_ids,
            steps=args.steps,
            step_size=step / 255,
            omega=args.omega,
            batch_size=args.batch_size,
            progress=progress,
        )
    except SegattackError:
        raise
    except ValueError as err:
        raise UserError(str(err)) from None
    finally:
        if bar is not None:
            bar.close()
    fit_s = time.perf_counter() - t0

    # measure on the held-out images
    t1 = time.perf_counter()
    size = result.size
    dtype = next((p.dtype for p in model.net.parameters() if p.is_floating_point()), torch.float32)
    xi = result.perturbation.to(model.device)
    rows: list[dict[str, Any]] = []
    shown: list[dict[str, Any]] = []
    spare: list[dict[str, Any]] = []
    batch: list[tuple[str, Any]] = []

    def measure(items: list[tuple[str, Any]]) -> None:
        x = torch.stack([img for _, img in items]).to(model.device, dtype) / 255
        adv = apply_universal(x, xi.to(dtype))
        clean_pred, adv_pred = model.predict(x), model.predict(adv)
        target = static_target(clean_pred, class_id=static_ids[0]) if static_ids else None
        m = hiding_metrics(clean_pred, adv_pred, class_id=hide_ids, target=target)
        for j, ((image_id, _), r) in enumerate(zip(items, m.rows(), strict=True)):
            status = "ok" if r["class_pixels"] > 0 else "absent"
            rows.append({"image_id": image_id, **{k: json_safe(v) for k, v in r.items()}, "status": status})
            pool = shown if status == "ok" else spare  # images with the class first
            if len(pool) < args.examples:
                pool.append({"image_id": image_id, "image": x[j], "adv": adv[j], "pred": clean_pred[j],
                             "pred_adv": adv_pred[j], "row": rows[-1]})  # fmt: skip

    for i in range(len(held)):
        image_id = held.image_id(i)
        try:
            img = held[i][0]
        except UnreadableImageError as err:
            print(f"warning: skipping {image_id}: {err}", file=sys.stderr)
            rows.append({"image_id": image_id, "fooled": None, "preserved": None, "target_hit": None,
                         "class_pixels": None, "status": "unreadable"})  # fmt: skip
            continue
        if tuple(img.shape[-2:]) != size:
            raise UserError(
                f"held-out image {image_id!r} is {img.shape[-2]}x{img.shape[-1]} pixels but the perturbation is "
                f"{size[0]}x{size[1]}; pass --size {size[0]}x{size[1]} to resize all images"
            )
        batch.append((image_id, img))
        if len(batch) == args.batch_size:
            measure(batch)
            batch = []
    if batch:
        measure(batch)
    eval_s = time.perf_counter() - t1

    def nan(v: Any) -> float:
        return math.nan if v is None else float(v)

    stats = {k: summarize([nan(r[k]) for r in rows if r["status"] != "unreadable"]) for k in
             ("fooled", "preserved", "target_hit")}  # fmt: skip
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "absent", "unreadable")}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = (shown + spare)[: args.examples]
    written = [UNIVERSAL_FILE, "universal.png", RESULTS_FILE, SUMMARY_JSON, *([EXAMPLES_FILE] if examples else [])]
    record_outputs(out, written, kind="universal")  # before writing: what --out holds of ours is known
    save_universal(result, out / UNIVERSAL_FILE)
    write_text(out / RESULTS_FILE, "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in rows))
    summary = {
        "method": "universal adversarial perturbation (Metzen, Kumar, Brox and Fischer, ICCV 2017)",
        "held_out": {
            k: {"mean": json_safe(s.mean), "std": json_safe(s.std), "count": s.count, "missing": s.missing}
            for k, s in stats.items()
        },
        "images": len(rows),
        **counts,
        "eps": eps,
        "units": "eps and step_size in 8-bit levels; rates as fractions in [0, 1]",
        "steps": args.steps,
        "step_size": step,
        "omega": args.omega,
        "target": result.target,
        "hide": list(hide_ids),
        "static": static_ids[0] if static_ids else None,
        "fit": {**fit_desc, "images": len(result.image_ids), "skipped": [list(s) for s in result.skipped]},
        "data": held_desc,
        "model": model_desc,
        "device": args.device,
        "batch_size": args.batch_size,
        "loss_first": result.loss[0],
        "loss_last": result.loss[-1],
        "time_s": {"fit": round(fit_s, 3), "measure": round(eval_s, 3), "total": round(fit_s + eval_s, 3)},
        "versions": {"segattack": __version__, "torch": torch.__version__},
    }
    write_json(out / SUMMARY_JSON, summary)
    if examples:
        _examples_figure(examples, result, hide_ids, out / EXAMPLES_FILE, label_names)
    else:  # an earlier run's examples are not this run's: never left to be taken for them
        remove_output(out, EXAMPLES_FILE)

    m = len(result.image_ids)
    head = f"one universal perturbation (eps={eps}, fitted on {m} other images)"
    if stats["fooled"].count:
        sentence = (
            f"{head} hides {_pct(stats['fooled'])} of {names} pixels and keeps {_pct(stats['preserved'])} of the "
            f"background on {stats['fooled'].count} held-out images with {names}"
        )
    else:
        sentence = f"{head}: none of the {len(rows)} held-out images contains {names}"
    if static_ids:
        sentence += f"; {_pct(stats['target_hit'])} of pixels show the static target {_names(static_ids, label_names)}"
    print(
        f"done in {format_duration(fit_s + eval_s)} (fit {format_duration(fit_s)}); "
        f"{counts['ok']} of {len(rows)} held-out images contain {names}"
        + (f" ({counts['unreadable']} unreadable)" if counts["unreadable"] else ""),
        file=sys.stderr,
    )
    rel = os.path.relpath(out)
    print(
        f"results: {rel if not rel.startswith('..') else out}/  " + "  ".join(written),
        file=sys.stderr,
    )
    print(sentence)
    return 0


def _examples_figure(
    shown: list[dict[str, Any]],
    result: Any,
    hide_ids: tuple[int, ...],
    path: Path,
    label_names: tuple[str, ...] | None = None,
) -> None:
    """Rows of (clean, clean + xi, prediction, prediction on clean + xi), with the perturbation on top."""
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from ..attacks.universal import perturbation_image
    from ..data.labels import colorize

    def rgb(t: Any) -> Any:
        return (t.detach().cpu().float() * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    h, w = result.size
    n = len(shown)
    fig = Figure(figsize=(4 * 3.0, (n + 1) * 3.0 * h / w + 0.8 * (n + 1)))
    axes = np.atleast_2d(fig.subplots(n + 1, 4))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    eps = result.eps * 255
    axes[0, 0].imshow(perturbation_image(result), interpolation="nearest")
    axes[0, 0].set_title(f"universal perturbation\n(-{eps:g} .. +{eps:g} levels -> black .. white)", fontsize=8)
    for ax in axes[0, 1:]:
        ax.axis("off")
    axes[0, 1].text(
        0.0,
        0.5,
        f"eps = {eps:g} levels, {result.steps} steps,\nfitted on {len(result.image_ids)} images; "
        f"target: {result.target}",
        fontsize=9,
        va="center",
        transform=axes[0, 1].transAxes,
    )
    for i, s in enumerate(shown, start=1):
        r = s["row"]
        fooled = "no class pixel" if r["fooled"] is None else f"{100 * r['fooled']:.0f}% of class pixels hidden"
        panels = [
            (f"{s['image_id']}: clean", rgb(s["image"])),
            ("clean + universal perturbation", rgb(s["adv"])),
            ("prediction (clean)", colorize(s["pred"].cpu().numpy())),
            (f"prediction (perturbed)\n{fooled}", colorize(s["pred_adv"].cpu().numpy())),
        ]
        for ax, (title, img) in zip(axes[i], panels, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=8)
    fig.suptitle(f"universal perturbation hiding {_names(hide_ids, label_names)} on held-out images", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
