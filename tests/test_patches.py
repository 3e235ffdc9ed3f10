"""segattack.patches: placement and pasting (pixel checks), the homography, EOT draws, printability, the patch fit
(range, determinism, resume, the patch's own pixels never counting, hiding better than a random patch) and the
held-out evaluation, and the configuration's refusals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import segattack as sa
import segattack.patches as sp
from segattack.errors import DataError, InputError
from segattack.patches.eot import transform_quad
from segattack.patches.placement import region_positions

from .conftest import ColourNet, colour_scene, count_passes, random_images

pytestmark = pytest.mark.usefixtures("one_thread")


class WideColourNet(ColourNet):
    """ColourNet with a 7x7 box blur: a pixel's class depends on its neighbours up to 3 pixels away, so a patch
    beside the 'person' blob can change the class of the blob's edge (ColourNet's 3x3 blur reaches 1 pixel)."""

    def __init__(self, k: int = 7) -> None:
        super().__init__()
        self.blur = nn.Conv2d(3, 3, k, padding=k // 2, groups=3, bias=False)
        with torch.no_grad():
            self.blur.weight.fill_(1 / k**2)


def wide_model() -> sa.PixelModel:
    return sa.PixelModel(WideColourNet(), num_classes=3)


def pointwise_model(dtype: torch.dtype = torch.float64) -> sa.PixelModel:
    """A 1x1 convolution: each pixel's logits depend on that pixel alone, so a patch can only change the prediction
    of the pixels it covers."""
    torch.manual_seed(3)
    return sa.PixelModel(nn.Conv2d(3, 3, kernel_size=1).to(dtype))


# ---------------------------------------------------------------------------------------------------------- pasting


@pytest.mark.parametrize(
    "quad",
    [
        sp.quad_of((3, 5, 6, 8)),  # an exact box: copied
        sp.quad_of((3, 5, 8, 10)),  # a box of another size: resampled
        sp.quad_of((2, 4, 10, 12), 0.4),  # perspective
        transform_quad(sp.quad_of((4, 6, 8, 8)), sp.Draw(angle=30.0, scale=1.1, dx=0.2)),  # rotated, off-grid
    ],
    ids=["exact", "scaled", "tilted", "rotated"],
)
def test_paste_changes_only_the_covered_pixels(quad: Tensor) -> None:
    images = random_images(2, 16, 24, seed=1)
    before = images.clone()
    patch = torch.rand(3, 6, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out, mask = sp.paste(images, patch, torch.stack([quad, quad]))
    assert torch.equal(images, before)
    assert mask.shape == (2, 1, 16, 24) and set(mask.unique().tolist()) <= {0.0, 1.0}
    outside = (mask == 0).expand_as(images)
    assert torch.equal(out[outside], images[outside])  # bit for bit
    assert int(mask.sum()) > 0 and bool((out[~outside] != images[~outside]).any())
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_an_exact_box_holds_the_patch_values_exactly() -> None:
    images = torch.zeros(1, 3, 10, 12)
    patch = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(1))
    out, mask = sp.paste(images, patch, [sp.quad_of((2, 3, 4, 5))])
    assert torch.equal(out[0, :, 2:6, 3:8], patch)
    assert int(mask.sum()) == 20 and bool(mask[0, 0, 2:6, 3:8].all())


def test_paste_is_differentiable_in_the_patch_and_only_through_covered_pixels() -> None:
    images = random_images(1, 12, 12, seed=2)
    patch = torch.full((3, 4, 4), 0.5, dtype=torch.float64, requires_grad=True)
    out, mask = sp.paste(images, patch, [sp.quad_of((2, 2, 6, 6), 0.3)])
    weights = torch.rand(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((out * weights).sum(), patch, retain_graph=True)
    assert float(grad.abs().sum()) > 0
    # a loss on the uncovered pixels alone has no gradient in the patch
    (grad_out,) = torch.autograd.grad((out * weights * (1 - mask)).sum(), patch)
    assert float(grad_out.abs().sum()) == 0


def test_homography_maps_the_unit_square_onto_a_known_quad() -> None:
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    quad = torch.tensor([[4.0, 2.0], [20.0, 6.0], [20.0, 14.0], [4.0, 18.0]])
    h = sp.homography(square, quad)
    pts = torch.cat([square, torch.ones(4, 1)], 1).to(torch.float64) @ h.T
    assert torch.allclose(pts[:, :2] / pts[:, 2:], quad.to(torch.float64), atol=1e-9)
    # the centre of the square goes to where the quad's diagonals cross (a projective map keeps lines): at a third
    # of the diagonal from (20, 6) to (4, 18), (44/3, 10), not at the quad's mean corner (12, 10)
    c = torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64) @ h.T
    assert torch.allclose(c[:2] / c[2], torch.tensor([44 / 3, 10.0], dtype=torch.float64), atol=1e-9)
    with pytest.raises(InputError, match="degenerate"):
        sp.homography(square, torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, 5.0]]))


def test_the_warped_patch_lands_on_the_quad() -> None:
    """A patch of four coloured quadrants warped onto a trapezoid (a billboard whose right end is farther): the mask
    covers the pixels whose centres lie inside it, and each quadrant's colour lands at its corner."""
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])  # TL, TR, BR, BL
    patch = torch.empty(3, 8, 8)
    patch[:, :4, :4] = colours[0].view(3, 1, 1)
    patch[:, :4, 4:] = colours[1].view(3, 1, 1)
    patch[:, 4:, 4:] = colours[2].view(3, 1, 1)
    patch[:, 4:, :4] = colours[3].view(3, 1, 1)
    quad = torch.tensor([[4.0, 2.0], [20.0, 6.0], [20.0, 14.0], [4.0, 18.0]])
    out, mask = sp.paste(torch.zeros(1, 3, 20, 24), patch, [quad])
    m = mask[0, 0].bool()
    cols = m.any(0).nonzero()[:, 0]
    assert (int(cols.min()), int(cols.max())) == (4, 19)
    left_rows, right_rows = m[:, 4].nonzero()[:, 0], m[:, 19].nonzero()[:, 0]
    assert (int(left_rows.min()), int(left_rows.max())) == (2, 17)  # the near edge: y in [2, 18)
    assert (int(right_rows.min()), int(right_rows.max())) == (6, 13)  # the far edge: y in [6, 14) at x = 19.5
    for (y, x), colour in zip([(3, 5), (7, 18), (12, 18), (16, 5)], colours, strict=True):
        assert torch.allclose(out[0, :, y, x], colour), (y, x)
    assert float(out[0, :, 0, 10].abs().sum()) == 0 and float(out[0, :, 10, 22].abs().sum()) == 0


def test_the_mask_covers_the_quad_area_for_strong_perspectives() -> None:
    """Convex quads in strong perspective, some far from the origin (where the projective denominator's sign flips
    between the origin and the quad): the mask holds the pixels whose centres lie inside, about the quad's area."""
    quads = [
        [[10.0, 10.0], [30.0, 2.0], [30.0, 28.0], [10.0, 20.0]],
        [[40.0, 25.0], [44.0, 27.0], [44.0, 28.0], [40.0, 31.0]],
        [[20.0, 5.0], [45.0, 12.0], [38.0, 30.0], [22.0, 25.0]],
        [[2.0, 2.0], [46.0, 14.0], [46.0, 15.0], [2.0, 30.0]],
        [[40.0, 14.0], [47.0, 2.0], [47.0, 30.0], [40.0, 16.0]],  # the vanishing line between origin and quad
    ]
    for corners in quads:
        q = torch.tensor(corners, dtype=torch.float64)
        _, mask = sp.paste(torch.zeros(1, 3, 32, 48), torch.rand(3, 5, 7), [q])
        x, y = q[:, 0], q[:, 1]
        area = 0.5 * float((x * y.roll(-1) - x.roll(-1) * y).sum().abs())
        perimeter = float((q - q.roll(-1, 0)).norm(dim=1).sum())
        assert abs(float(mask.sum()) - area) <= perimeter / 2 + 2, (corners, float(mask.sum()), area)


def test_a_placement_by_corners_puts_the_patch_on_them() -> None:
    corners = ((4.0, 2.0), (20.0, 6.0), (20.0, 14.0), (4.0, 18.0))
    placement = sp.Placement(size=(8, 8), corners=corners)
    assert placement.kind == "quad" and placement.boxes((20, 24)) == [(2, 4, 16, 16)]
    patch = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    out, mask, _ = sp.place_batch(torch.zeros(1, 3, 20, 24), patch, placement, pred=None, eot=None, seed=0, step=0,
                                  indices=[0])  # fmt: skip
    expected, expected_mask = sp.paste(torch.zeros(1, 3, 20, 24), patch, [torch.tensor(corners)])
    assert torch.equal(out, expected) and torch.equal(mask, expected_mask)
    with pytest.raises(InputError, match="drop at, classes and tilt"):
        sp.Placement(corners=corners, tilt=0.2)
    with pytest.raises(InputError, match="degenerate"):
        sp.Placement(corners=((0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (0.0, 3.0)))


# -------------------------------------------------------------------------------------------------------- placement


def test_placement_boxes_fixed_centred_and_by_share() -> None:
    assert sp.Placement(size=(4, 6), at=(1, 2)).boxes((10, 20), batch=2) == [(1, 2, 4, 6)] * 2
    assert sp.Placement(size=(4, 6)).boxes((10, 20)) == [(3, 7, 4, 6)]
    h, w = sp.Placement(size=0.1).box_size((100, 200))
    assert abs(h * w - 2000) <= 50 and abs(h - w) <= 1
    assert sp.Placement(size=0.1).box_size((100, 200), (1, 2)) == (32, 62)
    with pytest.raises(InputError, match="leaves the 10x20 image"):
        sp.Placement(size=(4, 6), at=(8, 2)).boxes((10, 20))


def test_region_placement_puts_the_whole_patch_on_the_region() -> None:
    pred = torch.zeros(3, 16, 20, dtype=torch.int64)
    pred[0, 2:10, 3:15] = 4  # a wall of 8x12
    pred[1, 5:12, 10:20] = 5  # a road
    pred[2, 0:3, 0:3] = 4  # too small for a 4x5 box
    placement = sp.Placement(size=(4, 5), classes=(4, 5))
    seen = set()
    for seed in range(12):
        gens = [torch.Generator().manual_seed(seed * 10 + j) for j in range(3)]
        boxes = placement.boxes((16, 20), pred=pred, generators=gens)
        assert boxes[2] is None
        for j in range(2):
            box = boxes[j]
            assert box is not None
            top, left, h, w = box
            assert bool(torch.isin(pred[j, top : top + h, left : left + w], torch.tensor([4, 5])).all())
            seen.add((j, top, left))
        _, mask = sp.paste(torch.zeros(3, 3, 16, 20), torch.ones(3, 4, 5), placement.quads(boxes))
        assert float(mask[2].sum()) == 0
        assert bool((pred[:2][mask[:2, 0] > 0] > 0).all())
    assert len(seen) > 6  # the position is drawn, not always the same
    assert int(region_positions(pred, (4,), (8, 12))[0].sum()) == 1  # exactly one fit for a wall-sized box


def test_placement_refusals_name_the_argument() -> None:
    with pytest.raises(InputError, match="either at"):
        sp.Placement(at=(0, 0), classes=(1,))
    with pytest.raises(InputError, match="tilt"):
        sp.Placement(tilt=1.0)
    with pytest.raises(InputError, match="share of the image's area"):
        sp.Placement(size=1.5)
    with pytest.raises(InputError, match="patch must lie in"):
        sp.paste(torch.zeros(1, 3, 4, 4), torch.full((3, 2, 2), 2.0), [sp.quad_of((0, 0, 2, 2))])


# -------------------------------------------------------------------------------------------------------------- EOT


def test_eot_draws_are_seeded_per_image_and_step() -> None:
    eot = sp.PatchEOT(rotation=20.0, perspective=0.1, brightness=0.1, contrast=0.1, transforms="blur:1,jpeg:75")
    a, b = eot.draw(sp.patch_generator(1, 5, 3)), eot.draw(sp.patch_generator(1, 5, 3))
    assert a == b
    assert a != eot.draw(sp.patch_generator(1, 6, 3)) and a != eot.draw(sp.patch_generator(1, 5, 4))
    draws = [eot.draw(sp.patch_generator(0, s, 0)) for s in range(200)]
    assert all(0.8 <= d.scale <= 1.2 and abs(d.angle) <= 20 and abs(d.dx) <= 0.5 for d in draws)
    assert {d.transform for d in draws} == {-1, 0, 1}


def test_eot_appearance_changes_only_the_patch_pixels() -> None:
    """With EOT on the patch's appearance and placement (no image-wide transform), the pixels outside the patch's
    mask are still the input's, bit for bit."""
    images = random_images(3, 16, 20, seed=4)
    patch = torch.rand(3, 5, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    eot = sp.PatchEOT(rotation=25.0, perspective=0.15, brightness=0.1, contrast=0.2, noise=0.1)
    out, mask, _ = sp.place_batch(images, patch, sp.Placement(size=(5, 6), at=(5, 6), tilt=0.2), pred=None, eot=eot,
                                  seed=0, step=0, indices=[0, 1, 2])  # fmt: skip
    outside = (mask == 0).expand_as(images)
    assert torch.equal(out[outside], images[outside])
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # with an image-wide blur the outside changes too: the point of such a transform
    blur = sp.PatchEOT(transforms="blur:1", noise=0.0, shift=0.0, scale=(1.0, 1.0))
    draws = [blur.draw(sp.patch_generator(0, 0, i)) for i in range(3)]
    assert all(d.transform in (-1, 0) for d in draws)


# ---------------------------------------------------------------------------------------------------- printability


def test_nps_of_printable_colours_is_zero_and_positive_otherwise() -> None:
    cols = sp.DEFAULT_PRINTABLE
    idx = torch.randint(len(cols), (6, 7), generator=torch.Generator().manual_seed(0))
    patch = cols[idx].permute(2, 0, 1).contiguous()
    assert float(sp.nps(patch)) == 0.0
    p = patch.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(sp.nps(p), p)
    assert bool(torch.isfinite(g).all())
    off = patch.clone()
    off[:, 0, 0] = torch.tensor([0.1, 0.3, 0.9], dtype=off.dtype)
    assert float(sp.nps(off)) > 0
    assert float(sp.nps(off.to(torch.float32))) > 0


def test_printable_colours_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "colours.txt"
    path.write_text("# printed and measured\n(255, 0, 0)\n10 20 30\n\n0.0,128,255  # blue\n")
    cols = sp.load_printable_colours(path)
    assert cols.shape == (3, 3) and torch.equal(cols[1], torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64) / 255)
    patch = cols[torch.tensor([[0, 1], [2, 1]])].permute(2, 0, 1)
    assert float(sp.nps(patch, cols)) == 0.0
    assert float(sp.nps(torch.full((3, 2, 2), 0.5, dtype=torch.float64), cols)) > 0
    unit = tmp_path / "unit.txt"
    unit.write_text("0.5 0.5 0.5\n1 0 0\n")
    assert torch.equal(sp.load_printable_colours(unit)[0], torch.full((3,), 0.5, dtype=torch.float64))
    assert float(sp.load_printable_colours(unit, scale="255")[1, 0]) == 1 / 255
    bad = [
        ("1 2\n", ":1: expected three numbers"),
        ("1 2 x\n", "not a number"),
        ("0 0 0\n1 2 300\n", ":2: values must lie in"),
        ("# nothing\n", "holds no colour"),
    ]
    for text, message in bad:
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            sp.load_printable_colours(path)
    with pytest.raises(FileNotFoundError):
        sp.load_printable_colours(tmp_path / "missing.txt")


def test_total_variation() -> None:
    assert float(sp.total_variation(torch.full((3, 4, 5), 0.3))) == 0.0
    stripes = torch.zeros(3, 2, 2)
    stripes[:, :, 1] = 1.0  # two horizontal differences of 1 per channel, none vertical
    assert float(sp.total_variation(stripes)) == pytest.approx(3 * 2 / 4)


# ------------------------------------------------------------------------------------------------------------- fit


def test_a_fitted_patch_hides_more_than_a_random_patch_on_held_out_images() -> None:
    """A 12x6 patch beside the 'person' blob of the colour scenes, fitted for 30 steps on 4 images, evaluated on 4
    others. Measured with seeds 0..3 (with and without EOT): the fitted patch hides 0.136 of the class's pixels on
    every held-out set, a random patch of the same size 0.000-0.023: a margin of at least 0.11; asserted: 0.05."""
    model = wide_model()
    placement = sp.Placement(size=(12, 6), at=(6, 4))
    for seed in range(3):
        fit_images, person = colour_scene(4, seed=10 + seed)
        held_out, _ = colour_scene(4, seed=100 + seed)
        eot = sp.PatchEOT(shift=0.1, scale=(0.9, 1.1), noise=0.02) if seed == 2 else None
        res = sp.fit(model, fit_images, placement=placement, class_id=person, steps=30, lr=0.05, batch_size=4,
                     seed=seed, eot=eot)  # fmt: skip
        fitted = sp.evaluate(model, held_out, res.patch, placement=placement, class_id=person)
        rand = torch.rand(3, 12, 6, generator=torch.Generator().manual_seed(seed))
        baseline = sp.evaluate(model, held_out, rand, placement=placement, class_id=person)
        margin = float(fitted.hidden.mean() - baseline.hidden.mean())
        assert margin > 0.05, (seed, margin)
        assert float(fitted.kept.mean()) > 0.99


def test_fit_keeps_the_patch_in_range_and_is_deterministic() -> None:
    model = wide_model()
    images, person = colour_scene(3, seed=1)
    kwargs: dict[str, Any] = dict(placement=sp.Placement(size=(8, 8), classes=(0,)), class_id=person, steps=6,
                                  lr=0.5, batch_size=2, eot=sp.PatchEOT(rotation=10.0), tv_weight=0.1,
                                  nps_weight=0.1, seed=7)  # fmt: skip
    before = images.clone()
    a = sp.fit(model, images, **kwargs)
    b = sp.fit(model, images, **kwargs)
    assert torch.equal(images, before)
    assert torch.equal(a.patch, b.patch) and a.loss == b.loss
    assert float(a.patch.min()) == 0.0 and float(a.patch.max()) == 1.0  # lr 0.5: the clip acts, and holds
    c = sp.fit(model, images, **{**kwargs, "seed": 8})
    assert not torch.equal(a.patch, c.patch)


def test_resume_from_a_saved_state_equals_the_uninterrupted_fit(tmp_path: Path) -> None:
    model = wide_model()
    images, person = colour_scene(5, seed=2)
    kwargs: dict[str, Any] = dict(placement=sp.Placement(size=(6, 6), at=(6, 4)), class_id=person, lr=0.05,
                                  batch_size=2, eot=sp.PatchEOT(rotation=15.0, perspective=0.1, contrast=0.1,
                                                                transforms="jpeg:75,blur:1"),
                                  tv_weight=0.2, seed=3)  # fmt: skip
    saved: list[sp.PatchState] = []
    whole = sp.fit(model, images, steps=7, checkpoint=saved.append, checkpoint_every=3, **kwargs)
    assert [s.step for s in saved] == [3, 6, 7]
    torch.save(vars(saved[0]), tmp_path / "state.pt")
    state = sp.PatchState(**torch.load(tmp_path / "state.pt", weights_only=True))
    resumed = sp.fit(model, images, steps=7, state=state, **kwargs)
    assert torch.equal(resumed.patch, whole.patch)
    assert resumed.loss == whole.loss and len(whole.loss) == 7
    part = sp.fit(model, images, steps=3, **kwargs)  # a job that stops after 3 steps and goes on later
    assert torch.equal(sp.fit(model, images, steps=7, state=part.state, **kwargs).patch, whole.patch)


def test_pixels_under_the_patch_never_count() -> None:
    """With a 1x1-convolution model the patch can only change the pixels it covers; those do not count, so the fit
    sees no gradient and the patch stays where it started, and the evaluation sees nothing changed."""
    model = pointwise_model()
    images = random_images(2, 10, 12, seed=5)
    init = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    placement = sp.Placement(size=(4, 4), at=(3, 4))
    for goal in ("untargeted", "hide"):
        res = sp.fit(model, images, placement=placement, goal=goal, class_id=1 if goal == "hide" else None,
                     init=init, steps=3, lr=0.1)  # fmt: skip
        assert torch.equal(res.patch, init.to(torch.float32))
    ev = sp.evaluate(model, images, torch.zeros(3, 4, 4), placement=placement, class_id=1)
    assert ev.miou.tolist() == [1.0, 1.0] and ev.accuracy.tolist() == [1.0, 1.0]
    assert ev.patch_pixels.tolist() == [16, 16]
    assert ev.kept.tolist() == [1.0, 1.0]
    finite = ev.changed_by_distance[~ev.changed_by_distance.isnan()]
    assert finite.numel() > 0 and float(finite.abs().sum()) == 0


def test_an_untargeted_patch_lowers_agreement_near_it() -> None:
    model = wide_model()
    images, _ = colour_scene(4, seed=3)
    held_out, _ = colour_scene(3, seed=30)
    placement = sp.Placement(size=(6, 6), at=(2, 13))  # on the grey/green border
    res = sp.fit(model, images, placement=placement, goal="untargeted", steps=20, lr=0.05, batch_size=4)
    ev = sp.evaluate(model, held_out, res.patch, placement=placement, edges=(1, 2, 4, 100))
    grey = sp.evaluate(model, held_out, torch.full((3, 6, 6), 0.5), placement=placement, edges=(1, 2, 4, 100))
    assert float(ev.accuracy.mean()) < float(grey.accuracy.mean())
    near, far = ev.changed_by_distance[:, 0].mean(), ev.changed_by_distance[:, 2].mean()
    assert float(near) > 0 and float(far) == 0  # the 7x7 blur reaches 3 pixels: nothing changes beyond 4
    rows = ev.rows()
    assert len(rows) == 3 and rows[0]["skipped"] is None and len(rows[0]["changed_by_distance"]) == 3


def test_fit_takes_a_data_set_of_uint8_images_like_the_same_tensor() -> None:
    images, person = colour_scene(3, seed=4)
    dataset = [((x * 255).round().to(torch.uint8), torch.zeros(24, 32, dtype=torch.int64)) for x in images]
    kwargs: dict[str, Any] = dict(placement=sp.Placement(size=(6, 6), at=(6, 4)), class_id=person, steps=3,
                                  lr=0.05, batch_size=2)  # fmt: skip
    from_set = sp.fit(wide_model(), dataset, **kwargs)
    from_tensor = sp.fit(wide_model(), images.float(), **kwargs)
    assert from_set.image_ids == ("image_0", "image_1", "image_2")
    assert torch.equal(from_set.patch, from_tensor.patch)
    with pytest.raises(InputError, match="one size"):
        sp.fit(wide_model(), [dataset[0], (torch.zeros(3, 8, 8, dtype=torch.uint8), None)], **kwargs)


def test_a_step_costs_one_forward_and_two_backward_passes_and_the_model_is_untouched() -> None:
    """Nesti et al.'s split needs the gradients of L_N and L_S apart: two backward passes per batch; the clean
    predictions cost one forward pass per batch of fit images, before the steps."""
    model = wide_model()
    model.net.train()
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    images, person = colour_scene(4, seed=6)
    with count_passes(model) as passes:
        sp.fit(model, images, placement=sp.Placement(size=(6, 6), at=(6, 4)), class_id=person, steps=3, lr=0.05,
               batch_size=2, tv_weight=0.1, nps_weight=0.1)  # fmt: skip
    assert (passes.forward, passes.backward, passes.images) == (2 + 3, 2 * 3, 4 + 3 * 2)
    assert model.net.training and all(p.requires_grad for p in model.net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.net.state_dict().items())


def test_evaluate_skips_images_without_a_place_on_the_region() -> None:
    model = wide_model()
    images, person = colour_scene(2, seed=7)
    images[1, :, :, 16:] = torch.tensor(ColourNet.COLOURS[0]).view(3, 1, 1)  # no green half: no place on class 1
    ev = sp.evaluate(model, images, torch.rand(3, 6, 6), placement=sp.Placement(size=(6, 6), classes=(1,)),
                     class_id=person)  # fmt: skip
    assert ev.boxes[0] is not None and ev.boxes[1] is None
    rows = ev.rows()
    assert rows[1]["skipped"] == "no_place" and math.isnan(rows[1]["miou"]) and rows[0]["skipped"] is None
    top, left, h, w = ev.boxes[0]
    assert left >= 16 and ev.patch_pixels[0] == 36


def test_fit_refusals() -> None:
    model = wide_model()
    images, _ = colour_scene(2)
    placement = sp.Placement(size=(4, 4))
    with pytest.raises(InputError, match="goal must be one of"):
        sp.fit(model, images, placement=placement, goal="static")
    with pytest.raises(InputError, match="lr must be > 0"):
        sp.fit(model, images, placement=placement, lr=0.0)
    with pytest.raises(InputError, match="tv_weight must be >= 0"):
        sp.fit(model, images, placement=placement, tv_weight=-1.0)
    with pytest.raises(InputError, match="out of range: the model predicts 3 classes"):
        sp.fit(model, images, placement=placement, class_id=11, steps=1)
    with pytest.raises(InputError, match="no image is left"):
        sp.fit(model, images, placement=sp.Placement(size=(20, 20), classes=(1,)), class_id=2, steps=1)
    with pytest.raises(InputError, match="class_id goes with goal='hide'"):
        sp.fit(model, images, placement=placement, goal="untargeted", class_id=2)


# ---------------------------------------------------------------------------------------------------------- config


def test_fit_and_evaluate_stay_the_functions_after_importing_every_submodule() -> None:
    import importlib
    import inspect

    for name in ("config", "eot", "evaluate", "fit", "placement", "printability"):
        importlib.import_module(f"segattack.patches.{name}")
    assert inspect.isfunction(sp.fit) and inspect.isfunction(sp.evaluate)


REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    ({"goal": "static"}, "goal", "goal must be one of"),
    ({"classes": ()}, "classes", "class_id is empty"),
    ({"size": 0}, "size", "at least 1x1"),
    ({"size": 1.5}, "size", "share of the image's area"),
    ({"placement": "wall"}, "placement", "placement must be one of"),
    ({"placement": "box"}, "at", r"needs at = \(y, x\)"),
    ({"at": (1, 2)}, "at", "goes with placement 'box'"),
    ({"placement": "region"}, "region", "needs region"),
    ({"tilt": 1.0}, "tilt", "tilt must lie in"),
    ({"placement": "quad"}, "corners", "needs corners"),
    ({"placement": "quad", "corners": ((0, 0), (1, 1), (2, 2), (0, 4))}, "corners", "degenerate"),
    ({"corners": ((0, 0), (4, 0), (4, 4), (0, 4))}, "corners", "go with placement 'quad'"),
    ({"steps": 0}, "steps", "at least 1"),
    ({"lr": -0.1}, "lr", "lr must be a positive number"),
    ({"batch_size": 0}, "batch_size", "at least 1"),
    ({"gamma": 1.5}, "gamma", "gamma must lie in"),
    ({"omega": -0.1}, "omega", "omega must lie in"),
    ({"tv_weight": -1}, "tv_weight", "0 or more"),
    ({"nps_weight": math.nan}, "nps_weight", "must be a number"),
    ({"scale_min": 1.5}, "scale_min", "at most scale_max"),
    ({"rotation": 200}, "rotation", "at most 180"),
    ({"perspective": 0.6}, "perspective", "below 0.5"),
    ({"transforms": "jpeg:0"}, "transforms", "jpeg quality"),
    ({"seed": 1.5}, "seed", "integer"),
    ({"colours": ""}, "colours", "path of a text file"),
]


@pytest.mark.parametrize(("fields", "field", "message"), REFUSALS, ids=[r[1] + "-" + str(i) for i, r in
                                                                       enumerate(REFUSALS)])  # fmt: skip
def test_each_config_check_fires_and_names_its_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(sp.PatchError, match=message) as err:
        sp.PatchConfig(**fields)
    assert err.value.field == field
    assert "\n" not in str(err.value)


def test_config_builds_what_fit_takes() -> None:
    cfg = sp.PatchConfig(size=(4, 4), placement="box", at=(1, 1), classes=(2,), steps=2, lr=0.05, batch_size=2,
                         transforms="blur:1", rotation=5.0)  # fmt: skip
    kwargs = cfg.fit_kwargs()
    assert kwargs["placement"] == sp.Placement(size=(4, 4), at=(1, 1))
    assert kwargs["eot"].transforms[0].name == "blur:1" and kwargs["eot"].rotation == 5.0
    images, _ = colour_scene(2)
    res = sp.fit(wide_model(), images, **kwargs)
    assert res.patch.shape == (3, 4, 4) and res.class_ids == (2,)
    assert sp.PatchConfig(eot=False).make_eot() is None
    quad = sp.PatchConfig(placement="quad", corners=((0, 0), (9, 2), (9, 6), (0, 8))).make_placement()
    assert quad.kind == "quad" and quad.corners == ((0.0, 0.0), (9.0, 2.0), (9.0, 6.0), (0.0, 8.0))
