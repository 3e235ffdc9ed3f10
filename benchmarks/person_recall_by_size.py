"""Where a zoo model misses persons: the share of each ground-truth person's pixels it finds, by the person's height.

On the first N synthetic validation scenes at 256x512, each ground-truth person instance (``instance_ids``, exact
under occlusion) is put in a size bin by its height in pixels (small < 32, medium 32-95, large >= 96, as
``segattack.instances``), and the pixels of each bin that the model predicts as person are counted. False person
pixels (predicted person, labelled otherwise) are reported as a share of the true person pixels. Together with the
pixel totals they give the person IoU: found / (true + false).

Run:  python benchmarks/person_recall_by_size.py [--model NAME | --model PATH/NAME.json] [--images 100]
(``--model`` is what ``segattack --model zoo:...`` takes, without ``zoo:``.)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import segattack as sa
from segattack.specs import SpecError, load_model

PERSON = 11
BINS = (("small (< 32 px)", 0, 32), ("medium (32-95 px)", 32, 96), ("large (>= 96 px)", 96, 1 << 30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=sa.zoo.DEFAULT_MODEL, help="a zoo name or an exported NAME.json")
    ap.add_argument("--images", type=int, default=100)
    args = ap.parse_args()
    try:
        model = load_model(f"zoo:{args.model}").eval()
    except SpecError as err:
        ap.error(str(err))
    data = sa.data.SyntheticStreets(split="val", length=args.images)
    true = np.zeros(len(BINS), dtype=np.int64)
    found = np.zeros(len(BINS), dtype=np.int64)
    count = np.zeros(len(BINS), dtype=np.int64)
    false_px = 0
    for i in range(len(data)):
        image, label = data[i]
        with torch.no_grad():
            pred = model(image[None].float() / 255).argmax(1)[0].numpy()
        inst = data.instance_ids(i)
        for k in np.unique(inst):
            if k < 0 or k // 1000 != PERSON:
                continue
            mask = inst == k
            rows = np.flatnonzero(mask.any(1))
            height = int(rows.max() - rows.min() + 1)
            b = next(j for j, (_, lo, hi) in enumerate(BINS) if lo <= height < hi)
            true[b] += int(mask.sum())
            found[b] += int((mask & (pred == PERSON)).sum())
            count[b] += 1
        false_px += int(((pred == PERSON) & (label.numpy() != PERSON)).sum())
    print(f"{args.model} on {len(data)} validation scenes")
    for (name, _, _), t, f, c in zip(BINS, true, found, count, strict=True):
        print(f"  {name:18s} {c:4d} persons, {t:7d} px, {100 * f / max(t, 1):5.1f}% found")
    total = int(true.sum())
    print(f"  false person pixels: {false_px} ({100 * false_px / max(total, 1):.1f}% of the {total} true ones)")
    print(f"  person IoU from these counts: {100 * found.sum() / max(total + false_px, 1):.1f}%")


if __name__ == "__main__":
    main()
