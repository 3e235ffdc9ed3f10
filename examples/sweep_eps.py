"""The paper's sweep over budgets: how many person pixels the iterative least-likely attack hides at each eps.

One call of ``sa.attacks.sweep`` attacks every budget: with step 1/255 the budgets share their first steps, so the
sweep costs the passes of the largest budget plus each smaller budget's tail (``sa.attacks.plan`` says how many).
Means and standard deviations are over images (ddof=0); an image without persons is counted apart.

    python examples/sweep_eps.py --images 4 --eps 1,2,4,10
"""

import argparse

import torch

import segattack as sa
from segattack.specs import size_argument

PERSON = 11  # Cityscapes train id of "person"


def levels(text: str) -> list[int]:
    """'1,2,4,10' -> [1, 2, 4, 10]: budgets in 8-bit levels."""
    try:
        return sorted({int(e) for e in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"eps must be whole levels separated by commas, e.g. 1,2,4,10, got {text!r}"
        ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="synthetic validation scenes (default 4)")
    parser.add_argument("--size", type=size_argument, default=(256, 512), help="HEIGHTxWIDTH (default 256x512)")
    parser.add_argument("--eps", type=levels, default=[1, 2, 4, 10], help="budgets in levels (default 1,2,4,10)")
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images must be at least 1")

    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    scenes = sa.data.SyntheticStreets(split="val", size=args.size, length=args.images)
    images = torch.stack([scenes[i][0] for i in range(len(scenes))]).float() / 255  # (B, 3, H, W) in [0, 1]

    clean = model.predict(images)
    target = sa.hide_class_target(clean, class_id=PERSON)
    budgets = [e / 255 for e in args.eps]  # the Python API takes budgets in [0, 1] units
    print(sa.attacks.plan("illm", budgets).note)
    advs = sa.attacks.sweep("illm", model, images, target, eps=budgets, targeted=True)  # (K, B, 3, H, W)

    print(f"{'eps':>6}  {'hidden %':>13}  {'kept %':>13}")
    for e, adv in zip(args.eps, advs, strict=True):
        m = sa.hiding_metrics(clean, model.predict(adv), class_id=PERSON, target=target)
        hidden, kept = sa.summarize(m.fooled), sa.summarize(m.preserved)
        print(
            f"{e:>4}/255  {100 * hidden.mean:5.1f} +- {100 * hidden.std:4.1f}  {100 * kept.mean:5.1f} +- "
            f"{100 * kept.std:4.1f}"
        )
    print(f"images with persons: {hidden.count}; without (left out of hidden %): {hidden.missing}")


if __name__ == "__main__":
    main()
