"""The attacks that detect gradient masking: ``square`` (Square Attack, a query-based black-box random search) and
``transfer`` (a white-box attack crafted on a surrogate model or an ensemble, used against the target).

The family's conformance (budget, range, mask, per-image eps, inputs and models untouched, batch = single runs, pass
counts within the documented cost), then what each promises: square stays within its query budget, never runs a
backward pass, and lowers pixel accuracy (but less than a white-box attack on an honest model); transfer from the
target itself is the white-box attack it wraps, from another model it is weaker, and an ensemble averages logits.
Real tiny models of ``conftest``, no mocks.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import segattack as sa
import segattack.attacks.square  # noqa: F401  (registers "square")
import segattack.attacks.transfer  # noqa: F401  (registers "transfer")
from segattack.attacks import registry
from segattack.attacks.square import p_schedule, square
from segattack.attacks.transfer import SurrogateEnsemble, surrogate_model, transfer
from segattack.metrics import pixel_success

from .conftest import ColourNet, TinyConvNet, colour_scene, count_passes, random_images

B, H, W = 2, 12, 14
NAMES = ("square", "transfer")


pytestmark = pytest.mark.usefixtures("one_thread")


def small_net(seed: int, classes: int = 5, dtype: torch.dtype = torch.float64) -> TinyConvNet:
    torch.manual_seed(seed)
    net = TinyConvNet(classes).to(dtype)
    bn = net.body[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():  # non-trivial BN statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture
def other_model() -> sa.PixelModel:
    """Another random tiny net with the classes of ``tiny_model``: a surrogate that is not the target."""
    return sa.PixelModel(small_net(7), mean=(0.5, 0.5, 0.5), std=(0.3, 0.3, 0.3))


def options(name: str, surrogate: Any) -> dict[str, Any]:
    """Few queries / steps, fixed seeds: the whole file runs in seconds."""
    if name == "square":
        return {"steps": 30, "seed": 0}
    return {"steps": 4, "seed": 0, "surrogate": surrogate}


def labels_for(model: sa.PixelModel, images: Tensor, targeted: bool) -> Tensor:
    """Untargeted: the clean prediction. Targeted: the most frequent predicted class moved to the next class."""
    pred = model.predict(images)
    if not targeted:
        return pred
    k = int(model(images[:1]).shape[1])
    cls = int(pred.flatten().mode().values)
    return torch.where(pred == cls, torch.full_like(pred, (cls + 1) % k), pred)


def levels(t: Tensor) -> float:
    return float(t.abs().max()) * 255


def success(model: sa.PixelModel, adv: Tensor, labels: Tensor, targeted: bool = False) -> float:
    return float(pixel_success(model.predict(adv), labels, targeted=targeted).mean())


def snapshot(model: sa.PixelModel) -> tuple[list[bool], list[bool], dict[str, Tensor]]:
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def assert_untouched(model: sa.PixelModel, before: tuple[list[bool], list[bool], dict[str, Tensor]]) -> None:
    modes, flags, state = before
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())


# --------------------------------------------------------------------------------------------------------------------
# 1. the family's conformance


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_conformance(tiny_model: sa.PixelModel, other_model: sa.PixelModel, name: str, targeted: bool) -> None:
    model = tiny_model
    for m in (model, other_model):
        m.net.train()  # the caller's mode: restored after the attack
        next(m.net.parameters()).requires_grad_(False)  # mixed flags, restored as they were
    before = snapshot(model), snapshot(other_model)
    x = random_images(B, H, W, seed=1)
    labels = labels_for(model, x, targeted)
    labels[:, 0, :3] = 255
    mask = torch.rand(B, H, W, generator=torch.Generator().manual_seed(2)) > 0.4
    x0, labels0, mask0 = x.clone(), labels.clone(), mask.clone()
    opts = options(name, other_model)
    attack = sa.attacks.get(name)

    eps = 4
    adv = attack(model, x, labels, eps=eps / 255, targeted=targeted, **opts)
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert levels(adv - x) <= eps + 1e-6 and not torch.equal(adv, x)
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1

    adv_m = attack(model, x, labels, eps=eps / 255, targeted=targeted, mask=mask, **opts)
    outside = ~mask[:, None].expand_as(x)
    assert torch.equal(adv_m[outside], x[outside]) and not torch.equal(adv_m, x)
    assert levels(adv_m - x) <= eps + 1e-6

    per_image = torch.tensor([2.0, 6.0], dtype=torch.float64)
    adv_e = attack(model, x, labels, eps=per_image / 255, targeted=targeted, **opts)
    for i, e in enumerate(per_image.tolist()):
        assert levels(adv_e[i] - x[i]) <= e + 1e-6, (i, e)
    assert levels(adv_e[1] - x[1]) > 2 + 1e-6  # image 1 used its own budget

    assert torch.equal(x, x0) and torch.equal(labels, labels0) and torch.equal(mask, mask0)
    assert_untouched(model, before[0])
    assert_untouched(other_model, before[1])


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_single_runs(
    tiny_model: sa.PixelModel, other_model: sa.PixelModel, name: str, targeted: bool
) -> None:
    x = random_images(3, H, W, seed=4)
    labels = labels_for(tiny_model, x, targeted)
    mask = torch.rand(3, H, W, generator=torch.Generator().manual_seed(3)) > 0.3
    eps = torch.tensor([3.0, 5.0, 8.0], dtype=torch.float64) / 255
    seeds = [11, 12, 13]
    opts = {k: v for k, v in options(name, other_model).items() if k != "seed"}
    attack = sa.attacks.get(name)
    for m in (None, mask):
        batch = attack(tiny_model, x, labels, eps=eps, targeted=targeted, mask=m, seed=seeds, **opts)
        assert not torch.equal(batch, x)
        for i in range(3):
            one = attack(
                tiny_model, x[i : i + 1], labels[i : i + 1], eps=float(eps[i]), targeted=targeted,
                mask=None if m is None else m[i : i + 1], seed=[seeds[i]], **opts,
            )  # fmt: skip
            assert torch.equal(batch[i : i + 1], one), i


def test_square_is_8bit_exact(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=3)
    labels = tiny_model.predict(x)
    for eps in (5 / 255, torch.tensor([3.0, 7.0], dtype=torch.float64) / 255):
        adv = square(tiny_model, x, labels, eps=eps, steps=20, seed=1)
        assert torch.equal(adv, (adv * 255).round() / 255)  # what an 8-bit PNG of it loads back as


def test_square_seeds_decide_the_draws(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=5)
    labels = tiny_model.predict(x)
    a = square(tiny_model, x, labels, eps=4 / 255, steps=10, seed=1)
    assert torch.equal(a, square(tiny_model, x, labels, eps=4 / 255, steps=10, seed=1))
    assert not torch.equal(a, square(tiny_model, x, labels, eps=4 / 255, steps=10, seed=2))


# --------------------------------------------------------------------------------------------------------------------
# 2. square: the query budget, no backward pass, and it works


@pytest.mark.parametrize("objective", ["accuracy", "margin"])
def test_square_spends_at_most_its_budget_and_never_backward(tiny_model: sa.PixelModel, objective: str) -> None:
    x = random_images(B, H, W, seed=6)
    labels = tiny_model.predict(x)
    steps = 25
    cost = sa.attacks.cost("square", eps=4 / 255, steps=steps, objective=objective)
    assert (cost.forward, cost.backward) == (steps, 0)
    with count_passes(tiny_model) as passes:
        adv = square(tiny_model, x, labels, eps=4 / 255, steps=steps, objective=objective, seed=0)
    assert passes.backward == 0 and not passes.grad  # autograd never recorded a pass: no backward can run
    assert passes.forward <= cost.forward and passes.images <= B * steps
    if float(pixel_success(tiny_model.predict(adv), labels, targeted=False).max()) < 1:  # no image finished early
        assert (passes.forward, passes.images) == (steps, B * steps)
    with count_passes(tiny_model) as passes:  # one image: its queries are the passes
        square(tiny_model, x[:1], labels[:1], eps=4 / 255, steps=steps, objective=objective, seed=0)
    assert passes.images == passes.forward <= steps and passes.backward == 0


def test_square_stops_an_image_with_nothing_to_search(tiny_model: sa.PixelModel) -> None:
    """An image whose pixels are all ignored, or whose mask is empty, costs the first query only."""
    x = random_images(B, H, W, seed=7)
    labels = tiny_model.predict(x)
    ignored = labels.clone()
    ignored[0] = 255
    with count_passes(tiny_model) as passes:
        square(tiny_model, x, ignored, eps=4 / 255, steps=20, seed=0)
    assert passes.forward == 20 and passes.images == 1 * 2 + 19 * 1  # image 0 only at the start
    mask = torch.ones(B, H, W, dtype=torch.bool)
    mask[1] = False
    with count_passes(tiny_model) as passes:
        adv = square(tiny_model, x, labels, eps=4 / 255, steps=20, seed=0, mask=mask)
    assert passes.images == 2 + 19 and torch.equal(adv[1], x[1]) and not torch.equal(adv[0], x[0])


@pytest.mark.parametrize("objective", ["accuracy", "margin"])
def test_square_lowers_accuracy_but_less_than_white_box(colour_model: sa.PixelModel, objective: str) -> None:
    """Untargeted at 8 levels on the nearest-colour model: the search fools more pixels than its start (the random
    stripes) and than clean images; APGD with 20 gradient steps fools more still (an honest model)."""
    x, _ = colour_scene(n=2)
    pred = colour_model.predict(x)
    start = success(colour_model, square(colour_model, x, pred, eps=8 / 255, steps=1, seed=0), pred)
    found = success(
        colour_model, square(colour_model, x, pred, eps=8 / 255, steps=300, seed=0, objective=objective), pred
    )
    white = success(colour_model, sa.attacks.get("apgd")(colour_model, x, pred, eps=8 / 255, steps=20, seed=0), pred)
    assert found > start + 0.01 and found > 0.02, (start, found)  # measured: 0.001 -> 0.026 (margin: 0.029)
    assert white > found + 0.02, (found, white)  # measured: 0.078


def test_square_hides_a_class(colour_model: sa.PixelModel) -> None:
    x, person = colour_scene(n=2)
    pred = colour_model.predict(x)
    target = sa.hide_class_target(pred, class_id=person)
    fooled = []
    for steps in (1, 300):
        adv = square(colour_model, x, target, eps=16 / 255, targeted=True, steps=steps, seed=0)
        fooled.append(float(sa.hiding_metrics(pred, colour_model.predict(adv), class_id=person).fooled.mean()))
    assert fooled[1] > fooled[0] + 0.4, fooled  # measured: 0.04 -> 0.73


def test_p_schedule_halves_on_the_rescaled_iterations() -> None:
    for n in (100, 1000, 10000):
        ps = [p_schedule(0.8, it, n) for it in range(n)]
        assert ps[0] == 0.8 and all(a >= b for a, b in zip(ps, ps[1:], strict=False))  # never grows
        assert min(ps) == 0.8 / 512 or n < 10000  # the last halving is reached only at the paper's full budget
        # the schedule depends on the share of the budget spent only
        assert all(p_schedule(0.8, it, n) == p_schedule(0.8, it * (10000 // n), 10000) for it in range(0, n, 7))


# --------------------------------------------------------------------------------------------------------------------
# 3. transfer


def test_transfer_from_the_target_is_the_white_box_attack(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=8)
    labels = tiny_model.predict(x)
    mask = torch.rand(B, H, W, generator=torch.Generator().manual_seed(4)) > 0.5
    common: dict[str, Any] = {"eps": 4 / 255, "steps": 5, "seed": [3, 4], "mask": mask}
    apgd = sa.attacks.get("apgd")
    white = apgd(tiny_model, x, labels, **common)
    assert torch.equal(transfer(tiny_model, x, labels, surrogate=tiny_model, **common), white)
    pgd = sa.attacks.get("pgd")
    js = pgd(tiny_model, x, labels, loss="js", **common)
    assert torch.equal(transfer(tiny_model, x, labels, surrogate=[tiny_model], white_box="pgd:js", **common), js)
    partial = functools.partial(pgd, loss="js")
    assert torch.equal(transfer(tiny_model, x, labels, surrogate=tiny_model, white_box=partial, **common), js)


def test_transfer_never_runs_the_target_and_counts_the_surrogate(
    tiny_model: sa.PixelModel, other_model: sa.PixelModel
) -> None:
    x = random_images(B, H, W, seed=9)
    labels = tiny_model.predict(x)
    third = sa.PixelModel(small_net(8))
    one = sa.attacks.cost("transfer", eps=4 / 255, steps=5, surrogate=other_model)
    two = sa.attacks.cost("transfer", eps=4 / 255, steps=5, surrogate=[other_model, third], white_box="pgd")
    assert (one.forward, one.backward, one.exact) == (6, 6, True)  # apgd: steps + 1 passes
    assert (two.forward, two.backward) == (2 * 6, 2 * 5)  # pgd with its best iterate, on each member
    with count_passes(tiny_model) as target, count_passes(other_model) as sur:
        transfer(tiny_model, x, labels, eps=4 / 255, steps=5, surrogate=other_model, seed=0)
    assert (target.forward, target.backward) == (0, 0)
    assert (sur.forward, sur.backward) == (one.forward, one.backward)
    with count_passes(tiny_model) as target, count_passes(other_model) as a, count_passes(third) as b:
        transfer(tiny_model, x, labels, eps=4 / 255, steps=5, surrogate=[other_model, third], white_box="pgd", seed=0)
    assert (target.forward, target.backward) == (0, 0)
    assert (a.forward + b.forward, a.backward + b.backward) == (two.forward, two.backward)


def test_ensemble_averages_logits(tiny_model: sa.PixelModel, other_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=10)
    labels = tiny_model.predict(x)
    ensemble = surrogate_model([tiny_model, other_model])
    assert isinstance(ensemble, SurrogateEnsemble) and len(ensemble) == 2
    mean = (tiny_model(x) + other_model(x)) / 2
    assert torch.allclose(ensemble(x), mean, rtol=0, atol=1e-12)
    # log-probabilities averaged instead: the same softmax, so the same attack (see SurrogateEnsemble)
    mean_log_p = (tiny_model(x).log_softmax(1) + other_model(x).log_softmax(1)) / 2
    assert torch.allclose(mean_log_p.softmax(1), mean.softmax(1), rtol=0, atol=1e-12)

    def by_hand(images: Tensor) -> Tensor:
        return (tiny_model(images) + other_model(images)) / 2

    common: dict[str, Any] = {"eps": 4 / 255, "steps": 4, "seed": 5}
    ours = transfer(tiny_model, x, labels, surrogate=[tiny_model, other_model], **common)
    assert torch.equal(ours, sa.attacks.get("apgd")(by_hand, x, labels, **common))
    assert surrogate_model([tiny_model]) is tiny_model and surrogate_model(tiny_model) is tiny_model
    wrapped = surrogate_model(tiny_model.net)  # a bare nn.Module: a PixelModel without normalisation
    assert isinstance(wrapped, sa.PixelModel) and wrapped.net is tiny_model.net
    five_and_three = surrogate_model([tiny_model, sa.PixelModel(small_net(9, classes=3))])
    with pytest.raises(ValueError, match="same number of classes"):
        five_and_three(x)


def test_transfer_from_another_model_is_weaker_than_white_box(colour_model: sa.PixelModel) -> None:
    """On an honest model (the nearest-colour one) the white-box attack beats examples crafted on another model: on
    the same model without its blur (the same task: the attack fools it more than the clean images do, and transfers
    well) and on a random conv net (nothing transfers). Untargeted at 8 levels against the clean prediction, same
    seeds and steps."""
    x, _ = colour_scene(n=2)
    pred = colour_model.predict(x)
    common: dict[str, Any] = {"eps": 8 / 255, "steps": 10, "seed": 0}
    white = success(colour_model, sa.attacks.get("apgd")(colour_model, x, pred, **common), pred)
    unblurred = ColourNet()
    with torch.no_grad():
        unblurred.blur.weight.zero_()
        unblurred.blur.weight[:, :, 1, 1] = 1.0
    similar = sa.PixelModel(unblurred, num_classes=3)
    moved = transfer(colour_model, x, pred, surrogate=similar, **common)
    assert success(similar, moved, pred) > success(similar, x, pred) + 0.02  # measured: 0.063 -> 0.098
    near = success(colour_model, moved, pred)
    assert 0.02 < near < white, (near, white)  # measured: 0.063 < 0.078
    random_net = sa.PixelModel(small_net(1, classes=3, dtype=torch.float32))
    far = success(colour_model, transfer(colour_model, x, pred, surrogate=random_net, **common), pred)
    assert far < white - 0.05, (far, white)  # measured: 0.0


# --------------------------------------------------------------------------------------------------------------------
# 4. bad options: one clear error each, from a direct call and from the registry


def test_transfer_refuses_bad_options(tiny_model: sa.PixelModel) -> None:
    x = random_images(1, H, W)
    labels = tiny_model.predict(x)
    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "transfer needs surrogate="),
        ({"surrogate": None}, "transfer needs surrogate="),
        ({"surrogate": []}, "surrogate lists no model"),
        ({"surrogate": "fcn8s"}, "surrogate must be a model"),
        ({"surrogate": [tiny_model, x]}, r"surrogate\[1\] must be a model"),
        ({"surrogate": tiny_model, "white_box": "nope"}, "unknown attack 'nope'"),
        ({"surrogate": tiny_model, "white_box": "pgd:nope"}, "unknown loss 'nope'"),
        ({"surrogate": tiny_model, "white_box": "transfer"}, "cannot craft with transfer itself"),
        ({"surrogate": tiny_model, "white_box": 3}, "transfer.white_box takes a white-box attack"),
        ({"surrogate": tiny_model, "steps": 0}, "apgd.steps must be at least 1"),
    ]
    for opts, message in bad:
        with pytest.raises(ValueError, match=message):
            transfer(tiny_model, x, labels, eps=4 / 255, **opts)
        with pytest.raises(ValueError, match=message):
            sa.attacks.check_options("transfer", opts)
    with pytest.raises(ValueError, match="transfer needs surrogate="):
        sa.attacks.cost("transfer", eps=4 / 255)
    with pytest.raises(TypeError, match="model must be"):
        transfer(None, x, labels, eps=4 / 255, surrogate=tiny_model)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="targeted only"):  # the goal is checked on the crafting attack too
        registry.check_goal("transfer", {"surrogate": tiny_model, "white_box": "illm"}, targeted=False)
    checked = sa.attacks.check_options("transfer", {"surrogate": [tiny_model, tiny_model], "white_box": "pgd:js"})
    assert checked["white_box"] == "pgd:js" and checked["surrogate"] == (tiny_model, tiny_model)


def test_square_refuses_bad_options(tiny_model: sa.PixelModel) -> None:
    x = random_images(1, H, W)
    labels = tiny_model.predict(x)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"objective": "ce"}, "unknown square objective 'ce'; choose one of accuracy, margin"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"step_size": 1 / 255}, "square takes no step_size"),
        ({"p_init": 0.0}, r"p_init must be a share of the image's pixels in \(0, 1\]"),
        ({"p_init": 1.5}, "p_init must be a share"),
    ]
    for opts, message in bad:
        with pytest.raises(ValueError, match=message):
            square(tiny_model, x, labels, eps=4 / 255, **opts)
        with pytest.raises(ValueError, match=message):
            sa.attacks.check_options("square", opts)
    with pytest.raises(ValueError, match="option square.p_init takes a number"):
        sa.attacks.check_options("square", {"p_init": True})
    with pytest.raises(ValueError, match="eps=4/255"):
        square(tiny_model, x, labels, eps=4)  # eps in levels: the message gives the [0, 1] units
