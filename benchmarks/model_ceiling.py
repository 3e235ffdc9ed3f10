"""Why a small zoo model stops where it does: fit on its own training scenes, and the output-stride ceiling.

Two measurements on the synthetic street scenes at 256x512 (Cityscapes' 19 train ids):

1. The model's clean mIoU and person IoU on the first N *training* scenes (ones it was trained on) beside the first N
   *validation* scenes. When the two agree the model under-fits: more data or regularisation cannot help, only a
   network with more capacity (or much longer training) can.
2. The ceiling of a network that predicts at output stride S: the ground truth's class shares averaged over S x S
   blocks (a perfect stride-S prediction) and upsampled bilinearly, as FCN8s (S = 8) and DeepLabv3+'s decoder (S = 4)
   upsample their logits. Its mIoU and person IoU bound what any network of that stride reaches.

Run:  python benchmarks/model_ceiling.py [--model NAME] [--images 100] [--strides 4,8,16]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import segattack as sa
from segattack.data.labels import IGNORE_INDEX
from segattack.evaluation import evaluate

PERSON = 11
NUM_CLASSES = 19


def stride_ceiling(data: sa.data.SyntheticStreets, stride: int) -> tuple[float, float]:
    """mIoU over the classes present and person IoU of the stride-``stride`` oracle on ``data``."""
    inter = torch.zeros(NUM_CLASSES, dtype=torch.float64)
    union = torch.zeros(NUM_CLASSES, dtype=torch.float64)
    for i in range(len(data)):
        _, y = data[i]
        y = y.long()
        valid = y != IGNORE_INDEX
        onehot = F.one_hot(torch.where(valid, y, 0), NUM_CLASSES).permute(2, 0, 1)[None].float()
        onehot = onehot * valid[None, None]
        shares = F.avg_pool2d(onehot, stride, ceil_mode=True)
        pred = F.interpolate(shares, size=y.shape, mode="bilinear", align_corners=False).argmax(1)[0]
        for c in range(NUM_CLASSES):
            p, t = (pred == c) & valid, y == c
            inter[c] += float((p & t).sum())
            union[c] += float((p | t).sum())
    present = union > 0
    iou = inter / union.clamp(min=1)
    return float(iou[present].mean()), float(iou[PERSON])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=sa.zoo.DEFAULT_MODEL, help="a zoo model (default: the shipped default)")
    p.add_argument("--images", type=int, default=100, help="scenes of each split (default: 100)")
    p.add_argument("--strides", type=lambda s: [int(v) for v in s.split(",")], default=[4, 8, 16])
    args = p.parse_args()

    model = sa.zoo.load(args.model)
    print(f"{args.model} on the first {args.images} scenes of each split, 256x512:")
    for split in ("train", "val"):
        data = sa.data.SyntheticStreets(split, size=(256, 512), length=args.images, seed=0)
        r = evaluate(model, data, num_classes=NUM_CLASSES, batch_size=4)
        print(f"  {split:5s} mIoU {100 * r.miou:.1f}%  person IoU {100 * float(r.iou[PERSON]):.1f}%  "
              f"pixel accuracy {100 * r.pixel_accuracy:.1f}%")  # fmt: skip
    val = sa.data.SyntheticStreets("val", size=(256, 512), length=args.images, seed=0)
    print("ceiling of a perfect prediction at output stride S, upsampled bilinearly (validation scenes):")
    for s in args.strides:
        miou, person = stride_ceiling(val, s)
        print(f"  S = {s:2d}: mIoU {100 * miou:.1f}%  person IoU {100 * person:.1f}%")


if __name__ == "__main__":
    main()
