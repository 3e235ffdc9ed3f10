"""Ship a model exported by `segattack train` into the package's model zoo, with its model card.

    python scripts/ship_model.py runs/train-w8/export/fcn8s-synth-w8.json --command "segattack train ..."

Copies the weights and the JSON card into ``src/segattack/zoo/weights/``, evaluates the model on the synthetic
validation split (``--val-images``, default 500) and on a small slice (``--check-images``, recorded in the card as
``check`` so that the test suite can verify that the shipped weights still reach it), times one attack step
(forward + backward to the input) at the card's resolution, and writes the human-readable card ``<name>.md``.
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
from segattack.evaluate import evaluate
from segattack.zoo import WEIGHTS_DIR, sha256_file


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
    ap.add_argument("--val-images", type=int, default=500)
    ap.add_argument("--check-images", type=int, default=8)
    args = ap.parse_args()

    card = json.loads(args.card.read_text())
    name = card["name"]
    src_weights = args.card.parent / card["weights"]
    if sha256_file(src_weights) != card["sha256"]:
        raise SystemExit(f"{src_weights}: checksum does not match its card")
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src_weights, WEIGHTS_DIR / card["weights"])
    model = sa.zoo.load(name, weights_dir=args.card.parent)
    size = tuple(card["training"]["image_size"])

    val = evaluate(model, sa.data.SyntheticStreets("val", size=size, length=args.val_images, seed=0),
                   num_classes=19, batch_size=8)  # fmt: skip
    check = evaluate(model, sa.data.SyntheticStreets("val", size=size, length=args.check_images, seed=0),
                     num_classes=19, batch_size=4)  # fmt: skip
    ms = step_ms(model, size)
    card["command"] = args.command
    card[f"val_{args.val_images}"] = {"images": args.val_images, "miou": val.miou, "pixel_accuracy": val.pixel_accuracy,
                                      "iou": dict(zip(CLASS_NAMES, val.iou.tolist(), strict=True))}  # fmt: skip
    card["check"] = {"images": args.check_images, "size": list(size), "miou": check.miou,
                     "person_iou": float(check.iou[11])}  # fmt: skip
    card["attack_step_ms_cpu"] = round(ms, 1)
    (WEIGHTS_DIR / f"{name}.json").write_text(json.dumps(card, indent=2, allow_nan=False).replace("NaN", "null"))

    tr = card["training"]
    present = [(n, v) for n, v in zip(CLASS_NAMES, val.iou.tolist(), strict=True) if v == v]
    rows = "\n".join(f"| {n} | {100 * v:.1f} |" for n, v in present)
    absent = [n for n, v in zip(CLASS_NAMES, val.iou.tolist(), strict=True) if v != v]
    md = f"""# Model card: {name}

{card["description"]}

- Architecture: FCN-8s (Long et al. 2015) on a VGG16 layout, width x{card["arch_kwargs"].get("width")}, BatchNorm,
  {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; weights `{card["weights"]}`
  ({(WEIGHTS_DIR / card["weights"]).stat().st_size / 2**20:.1f} MiB, safetensors, SHA-256 `{card["sha256"]}`).
- Input: RGB images in [0, 1]; normalisation inside (`mean={card["mean"]}`, `std={card["std"]}`); output: 19
  Cityscapes train-id logits at input size.
- Data: segattack's synthetic street scenes (`segattack.data.SyntheticStreets`), {tr["train_images"]} training
  scenes at {size[0]}x{size[1]} (height x width), random scale + crop {tr["crop"]}, flip, colour jitter.
- Training: {tr["steps"]} steps, batch {tr["batch_size"]}, {tr["optimizer"]} lr {tr["lr"]}, {tr["schedule"]}
  schedule, seed {tr["seed"]}, on {tr["device"]} (2-core CPU), {tr["elapsed_s"] / 60:.0f} min, torch {tr["torch"]}.
- Command (from the repository root):

  ```
  {args.command}
  python scripts/ship_model.py {args.card} --command "..."
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

## Speed

One attack step (forward + backward to the input, batch 1, {size[0]}x{size[1]}) takes {ms:.0f} ms on the 2-core
CPU it was measured on (`python scripts/ship_model.py`, median of 10).

## Limits

Trained on synthetic scenes only: it is a stand-in that lets the whole experiment run in minutes on a CPU, not a
model of real streets. Results on it say how the attack behaves on a small FCN8s, not on the paper's FCN8s-VGG16 on
Cityscapes.
"""
    (WEIGHTS_DIR / f"{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
