"""Hide the persons in one street scene from a segmentation network (Fischer et al. 2017).

Loads the shipped default model and one synthetic scene, builds the paper's target (every person pixel takes the
class of its nearest non-person pixel), runs the paper's attack (iterative least-likely, step 1/255) at eps 10/255
and saves the adversarial image as a PNG, which reproduces the attack bit for bit.

    python examples/attack_one_image.py --out adversarial.png
"""

import argparse

import numpy as np
import torch
from PIL import Image

import segattack as sa
from segattack.specs import size_argument

PERSON = 11  # Cityscapes train id of "person"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=0, help="which synthetic validation scene (default 0)")
    parser.add_argument("--size", type=size_argument, default=(256, 512), help="HEIGHTxWIDTH (default 256x512)")
    parser.add_argument("--eps", type=int, default=10, help="budget in 8-bit levels (default 10, i.e. 10/255)")
    parser.add_argument("--out", default="adversarial.png", help="where to save the adversarial image")
    args = parser.parse_args()
    if args.index < 0 or args.eps < 1:
        parser.error("--index must be at least 0 and --eps at least 1")

    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)  # a PixelModel: images in [0, 1] -> logits
    scenes = sa.data.SyntheticStreets(split="val", size=args.size, length=args.index + 1)
    image, _ = scenes[args.index]  # uint8 (3, H, W); the ground truth is not needed: targets come from predictions
    images = image[None].float() / 255  # a batch of one, in [0, 1]

    clean = model.predict(images)  # (1, H, W) class ids
    persons = int((clean == PERSON).sum())
    print(f"scene {scenes.image_id(args.index)} at {args.size[0]}x{args.size[1]}: {persons} person pixels")
    if persons == 0:
        raise SystemExit("the model sees no person in this scene; try another --index")

    target = sa.hide_class_target(clean, class_id=PERSON)
    adv = sa.illm(model, images, target, eps=args.eps / 255)  # paper_steps(eps) steps of 1/255
    m = sa.hiding_metrics(clean, model.predict(adv), class_id=PERSON, target=target)
    print(
        f"illm at eps {args.eps}/255, {sa.paper_steps(args.eps)} steps: "
        f"hidden {100 * m.fooled.item():.1f}% of person pixels, kept {100 * m.preserved.item():.1f}% of background"
    )
    print(
        f"perturbation: L-inf {sa.perturbation_norms(adv, images)['linf'].item():.0f} levels, "
        f"PSNR {sa.psnr(adv, images).item():.1f} dB"
    )

    # With whole-level eps and steps, adv * 255 is integral: the PNG holds the attack exactly.
    pixels = (adv[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(args.out)
    reread = torch.from_numpy(np.array(Image.open(args.out))).permute(2, 0, 1)[None].float() / 255
    again = sa.hiding_metrics(clean, model.predict(reread), class_id=PERSON, target=target)
    print(
        f"saved {args.out} ({pixels.shape[0]}x{pixels.shape[1]}); read back, it hides "
        f"{100 * again.fooled.item():.1f}% (same image: {torch.equal(reread, adv)})"
    )


if __name__ == "__main__":
    main()
