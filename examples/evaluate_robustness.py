"""Robustness of the zoo's adversarially trained model against the default one, under an untargeted attack.

Clean figures come from ``sa.evaluate``, the robust ones from ``sa.evaluate(..., attack=, eps=)``, which attacks every
batch against its ground truth and pools the confusion matrices over the data set, as ``segattack eval`` and the
robustness job do (mIoU over the classes present, pixel accuracy over all counted pixels). This is a quick look at
one attack; ``segattack robustness`` (Python: ``segattack.robustness.run_robustness``) runs a whole protocol with its
sanity checks into a directory.

    python examples/evaluate_robustness.py --images 4 --eps 4 --attack apgd --steps 20
"""

import argparse

import segattack as sa
from segattack.specs import size_argument

CLASSES = 19  # Cityscapes train ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="synthetic validation scenes (default 4)")
    parser.add_argument("--size", type=size_argument, default=(256, 512), help="HEIGHTxWIDTH (default 256x512)")
    parser.add_argument("--eps", type=int, default=4, help="budget in 8-bit levels (default 4, as in training)")
    parser.add_argument("--attack", default="apgd", help="a registered untargeted attack (default apgd)")
    parser.add_argument("--steps", type=int, default=20, help="attack steps (default 20)")
    parser.add_argument("--batch-size", type=int, default=4, help="images attacked at once (default 4)")
    args = parser.parse_args()
    if min(args.images, args.eps, args.steps, args.batch_size) < 1:
        parser.error("--images, --eps, --steps and --batch-size must be at least 1")
    try:
        info = sa.attacks.info(args.attack)  # an unknown name raises a ValueError listing the available attacks
    except ValueError as err:
        parser.error(str(err))
    if info.only == "targeted":
        parser.error(f"attack {args.attack!r} is targeted only; robustness is measured untargeted (e.g. apgd, pgd)")

    scenes = sa.data.SyntheticStreets(split="val", size=args.size, length=args.images)
    print(
        f"images: {len(scenes)} at {args.size[0]}x{args.size[1]}; {args.attack}, {args.steps} steps, eps {args.eps}/255"
    )
    print(f"{'model':<24} {'clean mIoU %':>12} {'clean acc %':>11} {'robust mIoU %':>13} {'robust acc %':>12}")
    for name in (sa.zoo.DEFAULT_MODEL, sa.zoo.ROBUST_MODEL):
        model = sa.zoo.load(name)
        clean = sa.evaluate(model, scenes, num_classes=CLASSES)  # an EvalResult: .miou, .pixel_accuracy, .iou
        robust = sa.evaluate(  # every batch attacked against its ground truth first, one seed per image
            model, scenes, num_classes=CLASSES, batch_size=args.batch_size,
            attack=args.attack, eps=args.eps / 255, attack_options={"steps": args.steps},
        )  # fmt: skip
        robust_miou, robust_acc = robust.miou, robust.pixel_accuracy
        print(
            f"{name:<24} {100 * clean.miou:>12.1f} {100 * clean.pixel_accuracy:>11.1f} "
            f"{100 * robust_miou:>13.1f} {100 * robust_acc:>12.1f}"
        )


if __name__ == "__main__":
    main()
