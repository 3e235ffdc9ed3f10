"""Compare attacks on the paper's task (hide the persons) at the same budget and the same number of steps.

Every registered attack has one signature, ``fn(model, images, labels, *, eps, targeted, steps=None, ...)``, so the
paper's ``illm`` and the PGD family (``pgd``, ``segpgd``, ``apgd``, ...) run on the same target. ``sa.attacks.cost``
gives each call's forward and backward passes (the PGD family keeps its best iterate at one more forward pass).

    python examples/compare_attacks.py --images 2 --eps 10 --attacks illm,pgd,segpgd,apgd
"""

import argparse

import torch

import segattack as sa
from segattack.specs import size_argument

PERSON = 11  # Cityscapes train id of "person"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="synthetic validation scenes (default 2)")
    parser.add_argument("--size", type=size_argument, default=(256, 512), help="HEIGHTxWIDTH (default 256x512)")
    parser.add_argument("--eps", type=int, default=10, help="budget in 8-bit levels (default 10)")
    parser.add_argument("--steps", type=int, help="steps of every attack (default: the paper's for --eps, 13 at 10)")
    parser.add_argument("--attacks", default="illm,pgd,segpgd,apgd", help="registered names, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    args = parser.parse_args()
    if args.images < 1 or args.eps < 1:
        parser.error("--images and --eps must be at least 1")
    names = args.attacks.split(",")
    for name in names:
        try:
            only = sa.attacks.info(name).only  # an unknown name raises a ValueError listing the available attacks
        except ValueError as err:
            parser.error(str(err))
        if only == "untargeted":
            parser.error(f"attack {name!r} is untargeted only; hiding persons needs a targeted attack")
    steps = args.steps or sa.paper_steps(args.eps)

    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    scenes = sa.data.SyntheticStreets(split="val", size=args.size, length=args.images)
    images = torch.stack([scenes[i][0] for i in range(len(scenes))]).float() / 255
    clean = model.predict(images)
    target = sa.hide_class_target(clean, class_id=PERSON)

    print(f"images: {len(images)} at {args.size[0]}x{args.size[1]}, eps {args.eps}/255, {steps} steps per attack")
    print(f"{'attack':<10} {'hidden %':>9} {'kept %':>7} {'on target %':>12} {'passes (fwd/bwd)':>17}")
    for name in names:
        seeded = {"seed": args.seed} if sa.attacks.info(name).seeded else {}  # attacks with random starts
        attack = sa.attacks.get(name)
        adv = attack(model, images, target, eps=args.eps / 255, targeted=True, steps=steps, **seeded)
        m = sa.hiding_metrics(clean, model.predict(adv), class_id=PERSON, target=target)
        cost = sa.attacks.cost(name, eps=args.eps / 255, steps=steps)
        hidden, kept, hit = (100 * sa.summarize(v).mean for v in (m.fooled, m.preserved, m.target_hit))
        print(f"{name:<10} {hidden:>9.1f} {kept:>7.1f} {hit:>12.1f} {f'{cost.forward}/{cost.backward}':>17}")


if __name__ == "__main__":
    main()
