"""Ship a model exported by `segattack train` into the package's model zoo, with its model card.

    python scripts/ship_model.py runs/train-w8-os2-wide2/export/fcn2s-synth-w8-r32.json \
        --command "segattack train ..." [--metrics runs/train-w8-os2-wide2/metrics.jsonl]

Copies the weights and the JSON card into ``src/segattack/zoo/weights/``, evaluates the model on the synthetic
validation split (``--val-images``, default 500) and on a small slice (``--check-images``, recorded in the card as
``check`` so that the test suite can verify that the shipped weights still reach it), times one attack step
(forward + backward to the input) at the card's resolution, beside the reference FCN-8s timed in the same run
(``reference_model``), and writes the human-readable card ``<name>.md``, with the validation curve of training when
``--metrics`` is given.
The weights' SHA-256 in the JSON card is left as the export wrote it (the weights are not touched).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import segattack as sa
from segattack.data.labels import CLASS_NAMES
from segattack.errors import ModelError
from segattack.evaluation import evaluate
from segattack.zoo import WEIGHTS_DIR, ModelCard, check_model_name

#: The architecture line of the card, per ``arch`` (formatted with the card's ``arch_kwargs``).
ARCH_LINES = {
    "fcn8s": "FCN-8s (Long et al. 2015) on a VGG16 layout, width x{width}, BatchNorm",
    "deeplabv3": "DeepLabv3+-style (Chen et al. 2017, 2018): residual atrous backbone to output stride 16, ASPP "
    "(rates 3, 6, 9 + image pooling), stride-4 decoder with separable convolutions, width x{width}",
    "segformer": "SegFormer-style (Xie et al. 2021): 4-stage MiT encoder (overlapping patch embeddings, efficient "
    "self-attention with reduction 8/4/2/1, Mix-FFN), All-MLP decoder, width x{width}",
}


#: The timing reference of every card's ``attack_step_vs_fcn8s``: the network of ``fcn8s-synth-w8`` (FCN8s-VGG16 at
#: 1/8 width with BatchNorm, the zoo's first model, retired from the package on 2026-12-06; its card is
#: docs/zoo-history/fcn8s-synth-w8.md) with its normalisation, built with random weights: the time of a step does not
#: depend on the values of the weights, so the ratio keeps comparing with the network the older cards timed.
REFERENCE_ARCH_KWARGS = {"width": 0.125, "batch_norm": True, "dropout": 0.1, "fc6_kernel": 7}
REFERENCE_MEAN = (0.380702, 0.377579, 0.362743)
REFERENCE_STD = (0.191648, 0.180082, 0.189798)


def reference_model() -> sa.PixelModel:
    """The timing reference, in eval mode (19 classes, random weights)."""
    net = sa.zoo.FCN8s(19, **REFERENCE_ARCH_KWARGS)
    return sa.PixelModel(net, mean=REFERENCE_MEAN, std=REFERENCE_STD, num_classes=19).eval()


def step_ms(model: sa.PixelModel, size: tuple[int, int], repeats: int = 10) -> float:
    x = torch.rand(1, 3, *size)
    target = torch.zeros(1, *size, dtype=torch.long)
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        xx = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xx), target, reduction="sum"), xx)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("card", type=Path, help="the exported <name>.json")
    ap.add_argument("--command", required=True, help="the exact training command, recorded in the card")
    ap.add_argument("--before", action="append", default=[], metavar="COMMAND",
                    help="an earlier training stage whose export this run's --init names but which is not shipped "
                         "(repeatable, in order): recorded in the card so that the chain reproduces from a clean clone")
    ap.add_argument("--val-images", type=int, default=500)
    ap.add_argument("--check-images", type=int, default=8)
    ap.add_argument("--metrics", type=Path, default=None, help="the run's metrics.jsonl: the validation curve")
    ap.add_argument("--append", type=Path, default=None, metavar="MD",
                    help="a markdown file appended to the card (e.g. a robustness evaluation with its command)")
    args = ap.parse_args()

    if not args.card.is_file():
        ap.error(f"{args.card}: no such file; give the <name>.json that `segattack train --export-name` wrote")
    try:
        exported = ModelCard.read(args.card)  # every field checked: one line naming the card and the field
    except ModelError as err:
        ap.error(str(err))
    if exported.training is None or "image_size" not in exported.training:
        ap.error(f"{args.card} has no training record with an image_size: ship a card that `segattack train` wrote")
    if args.before and not exported.training.get("init"):
        ap.error(f"--before: {args.card} was not trained from an --init, so it has no earlier stage to record")
    try:
        name = check_model_name(exported.name, what=f"the name in {args.card}")  # a file name in the zoo's folder
    except ValueError as err:
        ap.error(str(err))
    try:  # checksum verified, weights decoded and fitted before anything is copied into the zoo
        model = sa.zoo.load_card(exported)
    except ModelError as err:
        ap.error(str(err))
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy2(exported.weights_path, WEIGHTS_DIR / exported.weights)
    card = exported.as_json()  # the fields added below are written with the card's own
    size = tuple(exported.training["image_size"])

    val = evaluate(model, sa.data.SyntheticStreets("val", size=size, length=args.val_images, seed=0),
                   num_classes=19, batch_size=8)  # fmt: skip
    check = evaluate(model, sa.data.SyntheticStreets("val", size=size, length=args.check_images, seed=0),
                     num_classes=19, batch_size=4)  # fmt: skip
    ms = step_ms(model, size)
    ref_ms = step_ms(reference_model(), size)
    ms = (ms + step_ms(model, size)) / 2  # interleaved: model, reference, model
    curve = []
    if args.metrics is not None:
        for line in args.metrics.read_text().splitlines():
            row = json.loads(line)
            if row.get("kind") == "val":
                point = {"step": row["step"], "miou": row["miou"], "person_iou": row["iou"].get("person"),
                         "elapsed_s": row["elapsed_s"]}  # fmt: skip
                if "robust_miou" in row:  # adversarial training: the robust validation (PGD-10 at the training eps)
                    point["robust_miou"] = row["robust_miou"]
                    point["robust_pixel_acc"] = row["robust_pixel_acc"]
                curve.append(point)
        card["val_curve"] = curve
    card["command"] = args.command
    if args.before:
        card["commands_before"] = args.before
    card[f"val_{args.val_images}"] = {"images": args.val_images, "miou": val.miou, "pixel_accuracy": val.pixel_accuracy,
                                      "iou": dict(zip(CLASS_NAMES, val.iou.tolist(), strict=True))}  # fmt: skip
    card["check"] = {"images": args.check_images, "size": list(size), "miou": check.miou,
                     "person_iou": float(check.iou[11])}  # fmt: skip
    card["attack_step_ms_cpu"] = round(ms, 1)
    card["attack_step_vs_fcn8s"] = round(ms / ref_ms, 3)
    (WEIGHTS_DIR / f"{name}.json").write_text(json.dumps(card, indent=2, allow_nan=False).replace("NaN", "null"))

    tr = card["training"]
    present = [(n, v) for n, v in zip(CLASS_NAMES, val.iou.tolist(), strict=True) if v == v]
    rows = "\n".join(f"| {n} | {100 * v:.1f} |" for n, v in present)
    absent = [n for n, v in zip(CLASS_NAMES, val.iou.tolist(), strict=True) if v != v]
    arch = ARCH_LINES[card["arch"]].format(**card["arch_kwargs"])
    stride = card["arch_kwargs"].get("output_stride", 8) if card["arch"] == "fcn8s" else 8
    if stride == 4:
        arch = arch.replace("FCN-8s (Long et al. 2015)", "FCN-4s (FCN-8s of Long et al. 2015 with a pool2 skip: "
                            "output stride 4)")
    if stride == 2:
        arch = arch.replace("FCN-8s (Long et al. 2015)", "FCN-2s (FCN-8s of Long et al. 2015 with pool2 and pool1 "
                            "skips: output stride 2)")
    if card["arch_kwargs"].get("refine"):
        arch += (f", and a stride-4 refinement block ({card['arch_kwargs']['refine']} channels: the scores and the "
                 "pool2 features through two 3x3 convolutions, added to the scores)")
    if card["arch_kwargs"].get("refine2"):
        arch += (f", and a stride-2 one ({card['arch_kwargs']['refine2']} channels, on the scores and the pool1 "
                 "features)")
    curve_md = ""
    if curve:
        robust = all("robust_miou" in c for c in curve)
        lines = "\n".join(f"| {c['step']} | {c['elapsed_s'] / 60:.0f} | {100 * c['miou']:.1f} | "
                          f"{100 * (c['person_iou'] or float('nan')):.1f} |"
                          + (f" {100 * c['robust_miou']:.1f} | {100 * c['robust_pixel_acc']:.1f} |" if robust else "")
                          for c in curve)  # fmt: skip
        head, rule = "| step | minutes | mIoU % | person IoU % |", "|---|---|---|---|"
        robust_md = ""
        if robust:
            rv = card.get("val", {}).get("robust", {})
            head += " robust mIoU % | robust pixel acc. % |"
            rule += "---|---|"
            what = f"{rv['attack']}-{rv['steps']} at eps {rv['eps_levels']:g}/255" if rv else "the robust validation"
            robust_md = (f"\nRobust columns: {what}, untargeted against the ground truth, on the first "
                         f"{rv.get('images', '?')} validation scenes (a cheap attack, to show the trend; the "
                         "strong evaluation is below).\n")
        curve_md = f"""
## Training curve (validation on {tr["val_images"]} scenes during training)

{head}
{rule}
{lines}
{robust_md}"""
    init_md = ""
    if tr.get("init"):
        if args.before:
            stages = "the first command below trains" if len(args.before) == 1 else \
                f"the first {len(args.before)} commands below train"
            whose = (f"that init is an earlier stage that is not shipped: {stages} it, the last one fine-tunes it into "
                     "this model.")  # fmt: skip
        else:
            whose = "the init model's card has its own."
        init_md = (
            f"\n- Initialised from `{tr['init']}` (weights SHA-256 `{tr['init_sha256'][:16]}...`, `segattack train "
            f"--init`): the steps and minutes above are those of this fine-tuning run only; {whose}"
        )
    cfg = tr.get("config", {})
    loss_md = "pixel cross-entropy"
    if cfg.get("loss") == "ce+lovasz":
        loss_md += " + Lovasz-softmax (Berman et al. 2018)"
        if cfg.get("lovasz_weights"):
            weights = ", ".join(f"{k} x{v:g}" for k, v in cfg["lovasz_weights"].items())
            loss_md += f", its terms weighted {weights} (the other classes x1)"
    before_md = "".join(f"  {c}\n" for c in args.before)
    adv_md = ""
    if tr.get("adversarial"):
        a = tr["adversarial"]
        loss = f":{a['loss']}" if a.get("loss") else ""
        adv_md = (f"\n- Adversarial training: every step on `{a['attack']}{loss}` examples, untargeted against the "
                  f"ground truth, eps {a['eps_levels']:g}/255, {a['steps']} attack steps, step size "
                  f"{a['step_size'] if a.get('step_size_levels') is None else str(a['step_size_levels']) + ' levels'}, "
                  f"share {a['share']:g} of each batch adversarial; examples made with the network in eval mode "
                  f"({a['examples_mode']}).")  # fmt: skip
    md = f"""# Model card: {name}

{card["description"]}

- Architecture: {arch},
  {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; weights `{card["weights"]}`
  ({(WEIGHTS_DIR / card["weights"]).stat().st_size / 2**20:.1f} MiB, safetensors, SHA-256 `{card["sha256"]}`).
- Input: RGB images in [0, 1]; normalisation inside (`mean={card["mean"]}`, `std={card["std"]}`); output: 19
  Cityscapes train-id logits at input size.
- Data: segattack's synthetic street scenes (`segattack.data.SyntheticStreets`), {tr["train_images"]} training
  scenes at {size[0]}x{size[1]} (height x width), random scale + crop {tr["crop"]}, flip, colour jitter.
- Training: {tr["steps"]} steps, batch {tr["batch_size"]}, loss {loss_md}, {tr["optimizer"]} lr {tr["lr"]},
  {tr["schedule"]} schedule, seed {tr["seed"]}, on {tr["device"]} (2-core CPU), {tr["elapsed_s"] / 60:.0f} min,
  torch {tr["torch"]}.\
{adv_md}{init_md}
- Command (from the repository root):

  ```
{before_md}  {args.command}
  python scripts/ship_model.py {args.card}{' --before "..."' * len(args.before)} --command "..."
  ```

## Quality on the synthetic validation split ({size[0]}x{size[1]})

mIoU **{100 * val.miou:.1f}%** over the {len(present)} classes present in {args.val_images} validation scenes
(`segattack eval --data synthetic:{args.val_images}`), pixel accuracy {100 * val.pixel_accuracy:.1f}%, person IoU
**{100 * float(val.iou[11]):.1f}%**. During training (100 scenes) the final validation mIoU was
{100 * card["val"]["miou"]:.1f}%. The test suite checks the first {args.check_images} scenes: mIoU
{100 * check.miou:.1f}%, person IoU {100 * float(check.iou[11]):.1f}%.

| class | IoU % |
|---|---|
{rows}

Absent from these scenes: {", ".join(absent) or "none"}.
{curve_md}
## Speed

One attack step (forward + backward to the input, batch 1, {size[0]}x{size[1]}) takes {ms:.0f} ms on the 2-core
CPU it was measured on, {ms / ref_ms:.2f}x the network of `fcn8s-synth-w8` (FCN8s-VGG16 at 1/8 width, the zoo's
first model) timed in the same run (`python scripts/ship_model.py`, median of 10).

## Limits

Trained on synthetic scenes only: it is a stand-in that lets the whole experiment run in minutes on a CPU, not a
model of real streets. Results on it say how the attack behaves on a small network of this architecture, not on the
paper's FCN8s-VGG16 on Cityscapes.
"""
    if args.append is not None:
        md += "\n" + args.append.read_text(encoding="utf-8")
    (WEIGHTS_DIR / f"{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
