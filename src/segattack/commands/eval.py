"""``segattack eval``: clean mean IoU and per-class IoU of a model on a data set with ground truth."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import UserError
from ..rundir import check_writable_dir, write_json
from ._common import add_data_args, add_model_args, build_data, build_model, check_model_args, model_label_names


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "eval",
        help="clean mIoU and per-class IoU against ground truth (255 = ignore)",
        description="Evaluate a model on clean images: per-class IoU = TP / (TP + FP + FN) over the whole data set, "
        "mIoU over the classes present, pixel accuracy; ground-truth pixels labelled 255 are ignored (Cityscapes' "
        "pixel-level measure). Defaults: the shipped model on the synthetic validation split.",
    )
    add_model_args(p)
    add_data_args(p, default="synthetic:100")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--json", metavar="FILE", help="also write the result (IoU per class, confusion matrix) as JSON")
    p.set_defaults(func=run, interrupted=INTERRUPTED)


def _check_json_target(path_text: str) -> None:
    """``--json FILE`` must be a file that can be written: its folder is created if missing."""
    path = Path(path_text)
    if path.is_dir():
        raise UserError(f"--json {path_text} is a directory; give a file name, e.g. {path / 'eval.json'}")
    check_writable_dir(path.parent, create=False)


#: What Ctrl-C leaves: the result is written only when the evaluation finishes, and eval keeps no partial state.
INTERRUPTED = (
    "segattack eval: interrupted; the evaluation did not finish and nothing was written (eval does not resume: run "
    "the same command again to evaluate from the start)"
)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.labels import CLASS_NAMES, is_void
    from ..data.labels import label_names as default_names
    from ..evaluation import evaluate

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if args.json:
        _check_json_target(args.json)  # before evaluating: a finished evaluation must have somewhere to go
    check_model_args(args)
    model, describe = build_model(args)
    data, data_desc = build_data(args.data, args.size, args.labels)
    k = model.num_classes or len(CLASS_NAMES)
    total = len(data) if args.limit is None else min(args.limit, len(data))
    print(f"evaluating {describe['model']} on {total} images of {data_desc['data']} ({args.device})", file=sys.stderr)
    names = model_label_names(model)
    if len(names) != k:
        names = default_names(k)
    void = tuple(i for i, name in enumerate(names) if is_void(name))
    bar = tqdm(total=total, unit="img", desc="evaluating", disable=not sys.stderr.isatty())
    try:
        result = evaluate(
            model,
            data,
            num_classes=k,
            batch_size=args.batch_size,
            limit=args.limit,
            device=args.device,
            progress=lambda done, _n: bar.update(done - bar.n),
            void_classes=void,
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    finally:
        bar.close()
    for name, value in zip(names, result.iou.tolist(), strict=True):
        print(f"{name:>14s}  {'   n/a' if math.isnan(value) else f'{100 * value:6.2f}'}")
    skipped = f", {len(result.skipped)} unreadable skipped" if result.skipped else ""
    counted = sum(1 for i, v in enumerate(result.iou.tolist()) if not math.isnan(v) and i not in void)
    print(
        f"mIoU {100 * result.miou:.2f}% over {counted} classes present"
        + (f" (the void output {', '.join(names[v] for v in void)} left out)" if void else "")
        + ", pixel accuracy "
        f"{100 * result.pixel_accuracy:.2f}% ({result.images} images{skipped})"
    )
    if args.json:
        out = {**describe, **data_desc, **result.as_dict(names)}
        check_writable_dir(Path(args.json).parent)
        write_json(args.json, out)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
