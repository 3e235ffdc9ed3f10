"""The attack family behind the registry: one conformance test for every registered attack, pass counts against the
documented costs, sweeps against separate runs, a cross-check against the authors' ``cospgd`` package, the registry's
validation and the pixel-wise losses computed by hand.

Every test uses the tiny models of ``conftest`` (float64 ``tiny_model``; the nearest-colour ``colour_model`` whose
decision boundaries are known), real forward and backward passes and no mocks.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import segattack as sa
from segattack.attacks.apgd import apgd_checkpoints
from segattack.attacks.losses import LOSSES
from segattack.metrics import pixel_success

from .conftest import ColourNet, TinyConvNet, colour_scene, count_passes, random_images

ATTACKS = sa.attacks.available()
TARGETED_ONLY = {"illm"}
UNTARGETED_ONLY = {"sea"}
#: Attacks that look for the smallest perturbation, not the strongest within the budget.
MINIMAL_NORM = {"alma_prox"}
B, H, W = 2, 12, 14


pytestmark = pytest.mark.usefixtures("one_thread")


def cases() -> list[tuple[str, bool]]:
    return [(name, targeted) for name in ATTACKS for targeted in (False, True)]


def runnable_cases() -> list[tuple[str, bool]]:
    """The (attack, targeted) cases an attack accepts (illm is targeted only, sea untargeted only)."""
    return [(n, t) for n, t in cases() if not (n in TARGETED_ONLY and not t) and not (n in UNTARGETED_ONLY and t)]


def _surrogate() -> sa.PixelModel:
    """Another random tiny net (float64, 5 classes like ``tiny_model``), the global RNG left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return sa.PixelModel(TinyConvNet().double())


#: The model ``transfer`` crafts on in the family's tests.
SURROGATE = _surrogate()


def fast_options(name: str) -> dict[str, Any]:
    """Few iterations, so that the whole family runs in well under a second; each attack's own options otherwise."""
    entry = sa.attacks.info(name)
    opts: dict[str, Any] = {"surrogate": SURROGATE} if name == "transfer" else {}
    if "steps" in entry.defaults and name != "illm":  # illm keeps the paper's rule (eps=4 -> 5 steps)
        opts["steps"] = 4
    if name == "dag":
        opts["step_size"] = 1 / 255  # a whole level a step, so that 4 steps can use more than 2 levels
    return opts


def deterministic_options(name: str) -> dict[str, Any]:
    """``fast_options`` without randomness (no random start; ``worst_case`` of deterministic members only)."""
    opts = fast_options(name)
    if "random_start" in sa.attacks.info(name).options:
        opts["random_start"] = False
    if name == "apgd":
        opts["steps"] = 12  # several checkpoints, where each image halves its own step size
    if name == "alma_prox":
        opts["step_size"] = 2 / 255  # its default (0.001) is meant for 500 steps
    if name in ("square", "transfer"):
        opts["seed"] = 0  # random by nature (square's squares, apgd's start under transfer): one seed per image
    return opts


def labels_for(model: sa.PixelModel, images: Tensor, targeted: bool) -> Tensor:
    """Untargeted: the clean prediction (the labels to move away from). Targeted: a target differing from it on
    part of the image (every pixel of the most frequent class moved to class ``(c + 1) % K``)."""
    pred = model.predict(images)
    if not targeted:
        return pred
    k = int(model(images[:1]).shape[1])
    cls = int(pred.flatten().mode().values)
    return torch.where(pred == cls, torch.full_like(pred, (cls + 1) % k), pred)


def worst_case_members(targeted: bool) -> tuple[str, ...]:
    return ("dag", "illm") if targeted else ("dag",)


def run(name: str, model: Any, images: Tensor, labels: Tensor, **kwargs: Any) -> Tensor:
    return sa.attacks.get(name)(model, images, labels, **kwargs)


def levels(t: Tensor) -> float:
    return float(t.abs().max()) * 255


# --------------------------------------------------------------------------------------------------------------------
# 1. conformance: every registered attack, targeted and untargeted


@pytest.mark.parametrize(("name", "targeted"), cases())
def test_conformance(tiny_model: sa.PixelModel, name: str, targeted: bool) -> None:
    model, net = tiny_model, tiny_model.net
    net.train()  # the caller's mode: attacks must run in eval mode and restore this
    next(net.parameters()).requires_grad_(False)  # mixed flags, restored as they were
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}

    x = random_images(B, H, W, seed=1)
    labels = labels_for(model, x, targeted)
    labels[:, 0, :3] = 255  # some pixels leave the loss
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(B, H, W, generator=g) > 0.4
    x0, labels0, mask0 = x.clone(), labels.clone(), mask.clone()
    opts = fast_options(name)

    if name in TARGETED_ONLY and not targeted:
        with pytest.raises(ValueError, match="targeted"):
            run(name, model, x, labels, eps=4 / 255, targeted=False, **opts)
        return
    if name in UNTARGETED_ONLY and targeted:
        with pytest.raises(ValueError, match="untargeted only"):
            run(name, model, x, labels, eps=4 / 255, targeted=True, **opts)
        return

    eps = 4
    adv = run(name, model, x, labels, eps=eps / 255, targeted=targeted, **opts)
    assert adv.shape == x.shape and adv.dtype == x.dtype and adv.device == x.device
    assert not adv.requires_grad
    assert levels(adv - x) <= eps + 1e-6  # budget
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1  # valid image
    assert not torch.equal(adv, x)  # it did something

    adv_m = run(name, model, x, labels, eps=eps / 255, targeted=targeted, mask=mask, **opts)
    outside = ~mask[:, None].expand_as(x)
    assert torch.equal(adv_m[outside], x[outside])  # no change outside the mask
    assert levels(adv_m - x) <= eps + 1e-6 and not torch.equal(adv_m, x)

    per_image = torch.tensor([2.0, 6.0], dtype=torch.float64)
    adv_e = run(name, model, x, labels, eps=per_image / 255, targeted=targeted, **opts)
    for i, e in enumerate(per_image.tolist()):
        assert levels(adv_e[i] - x[i]) <= e + 1e-6, (i, e)
    if name not in MINIMAL_NORM:  # a minimal-norm attack may stop short of any budget
        assert levels(adv_e[1] - x[1]) > 2 + 1e-6  # image 1 used its own (larger) budget, not image 0's

    assert torch.equal(x, x0) and torch.equal(labels, labels0) and torch.equal(mask, mask0)  # inputs unchanged
    assert [m.training for m in model.modules()] == modes  # train/eval flags restored
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())


EXACT_CONFIGS = [
    ("illm", {}),
    ("pgd", {"step_size": 1 / 255, "steps": 6}),
    ("segpgd", {"step_size": 1 / 255, "steps": 6}),
    ("cospgd", {"step_size": 1 / 255, "steps": 6}),
]


@pytest.mark.parametrize(("name", "opts"), EXACT_CONFIGS, ids=[c[0] for c in EXACT_CONFIGS])
def test_whole_level_steps_are_8bit_exact(tiny_model: sa.PixelModel, name: str, opts: dict[str, Any]) -> None:
    x = random_images(B, H, W, seed=3)
    labels = labels_for(tiny_model, x, True)
    torch.manual_seed(0)  # pgd & co. start at a random point of the ball: whole levels too
    for eps in (5 / 255, torch.tensor([3.0, 7.0], dtype=torch.float64) / 255):
        adv = run(name, tiny_model, x, labels, eps=eps, targeted=True, **opts)
        lv = adv * 255
        assert not torch.equal(adv, x)
        assert torch.equal(lv, lv.round()), float((lv - lv.round()).abs().max())
        assert torch.equal(adv, lv.round() / 255)  # exactly what an 8-bit PNG of it loads back as


# --------------------------------------------------------------------------------------------------------------------
# 2. batch of B equals B single runs (deterministic configurations)


@pytest.mark.parametrize(("name", "targeted"), runnable_cases())
def test_batch_equals_single_runs(tiny_model: sa.PixelModel, name: str, targeted: bool) -> None:
    x = random_images(3, H, W, seed=4)
    labels = labels_for(tiny_model, x, targeted)
    opts = deterministic_options(name)
    if name == "worst_case":
        opts["attacks"] = worst_case_members(targeted)
    eps = torch.tensor([3.0, 5.0, 8.0], dtype=torch.float64) / 255
    batch = run(name, tiny_model, x, labels, eps=eps, targeted=targeted, **opts)
    assert not torch.equal(batch, x)
    for i in range(3):
        single = run(name, tiny_model, x[i : i + 1], labels[i : i + 1], eps=float(eps[i]), targeted=targeted, **opts)
        assert torch.equal(batch[i : i + 1], single), i


@pytest.mark.parametrize("masked", [False, True])
def test_dag_step_has_linf_norm_gamma(tiny_model: sa.PixelModel, masked: bool) -> None:
    """One DAG step moves the pixels by gamma * g / ||g||_inf: the largest move is gamma, also when a mask keeps the
    perturbation to a small patch (the norm is taken over the pixels that may move)."""
    x = random_images(B, H, W, seed=12)
    labels = tiny_model.predict(x)
    mask = torch.zeros(B, H, W, dtype=torch.bool)
    mask[:, 4:7, 5:8] = True
    adv = sa.attacks.get("dag")(
        tiny_model, x, labels, eps=8 / 255, targeted=False, steps=1, step_size=1 / 255, best=False,
        mask=mask if masked else None,
    )  # fmt: skip
    moved = (adv - x).abs().flatten(1).amax(1) * 255
    assert torch.allclose(moved, torch.ones_like(moved), atol=1e-9), moved.tolist()


@pytest.mark.parametrize("name", ["pgd", "segpgd", "cospgd", "apgd"])
def test_restarts_without_best_keep_a_last_iterate(colour_model: sa.PixelModel, name: str) -> None:
    """With ``best=False`` a restart contributes its last iterate (not its best one): two identical deterministic
    restarts must give what one gives."""
    x, _ = colour_scene(n=2)
    labels = colour_model.predict(x)
    opts: dict[str, Any] = {"steps": 12, "random_start": False, "best": False, "step_size": 6 / 255}
    one = run(name, colour_model, x, labels, eps=12 / 255, targeted=False, restarts=1, **opts)
    two = run(name, colour_model, x, labels, eps=12 / 255, targeted=False, restarts=2, **opts)
    assert torch.equal(one, two)


# --------------------------------------------------------------------------------------------------------------------
# 3. a larger budget fools more (the colour model's boundaries are known)


def colour_options(name: str) -> dict[str, Any]:
    options: dict[str, dict[str, Any]] = {
        "apgd": {"steps": 10},
        "dag": {"steps": 30, "step_size": 1 / 255},
        "worst_case": {"steps": 5, "attacks": ("apgd:ce", "apgd:js")},
        "illm": {},
        "square": {"steps": 600},
        "alma_prox": {"steps": 30, "step_size": 2 / 255},
        "transfer": {"steps": 10, "surrogate": sa.PixelModel(ColourNet(), num_classes=3)},
    }
    return options.get(name, {"steps": 10})


@pytest.mark.parametrize(("name", "targeted"), runnable_cases())
def test_fooling_grows_with_eps(colour_model: sa.PixelModel, name: str, targeted: bool) -> None:
    x, person = colour_scene(n=2)
    pred = colour_model.predict(x)
    assert int((pred == person).sum()) > 100
    labels = sa.hide_class_target(pred, class_id=person) if targeted else pred
    shares = []
    for eps in (1 / 255, 16 / 255):
        torch.manual_seed(0)
        adv = run(name, colour_model, x, labels, eps=eps, targeted=targeted, **colour_options(name))
        adv_pred = colour_model.predict(adv)
        if targeted:
            share = sa.hiding_metrics(pred, adv_pred, class_id=person).fooled
        else:
            share = pixel_success(adv_pred, pred, targeted=False)
        shares.append(float(share.mean()))
    small, large = shares
    # untargeted, 16 levels move the person blob (about a sixth of each image, near the boundaries) but not the flat
    # grey and green halves; targeted, they hide nearly every person pixel
    assert large > small + (0.5 if targeted else 0.1), shares


# --------------------------------------------------------------------------------------------------------------------
# 4. passes counted with hooks on the wrapped network equal the documented cost


COST_CASES: list[tuple[str, dict[str, Any]]] = [
    *[(n, {"steps": 5, "restarts": 2, "best": b}) for n in ("pgd", "segpgd", "cospgd") for b in (True, False)],
    *[(n, {"steps": 5, "best": b}) for n in ("pgd", "segpgd", "cospgd") for b in (True, False)],
    ("apgd", {"steps": 7}),
    ("apgd", {"steps": 7, "restarts": 2, "best": False}),
    ("illm", {"best": True}),
    ("illm", {"best": False}),
    ("illm", {"steps": 3}),
    ("worst_case", {"steps": 3}),
    ("worst_case", {"steps": 2, "attacks": ("pgd", "apgd:js", "illm")}),
    ("alma_prox", {"steps": 6}),
]


@pytest.mark.parametrize(("name", "opts"), COST_CASES, ids=[f"{n}-{o}" for n, o in COST_CASES])
def test_passes_equal_documented_cost(tiny_model: sa.PixelModel, name: str, opts: dict[str, Any]) -> None:
    targeted = name == "illm" or "illm" in opts.get("attacks", ())
    x = random_images(B, H, W, seed=5)
    labels = labels_for(tiny_model, x, targeted)
    with count_passes(tiny_model) as passes:
        run(name, tiny_model, x, labels, eps=4 / 255, targeted=targeted, **opts)
    cost = sa.attacks.cost(name, eps=4 / 255, **opts)
    assert cost.exact
    assert (passes.forward, passes.backward) == (cost.forward, cost.backward), cost


def test_dag_passes_bounded_and_exact_when_stop_is_unreachable(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=6)
    labels = tiny_model.predict(x)
    bound = sa.attacks.cost("dag", eps=1 / 255, steps=6)
    assert not bound.exact and (bound.forward, bound.backward) == (7, 6)
    with count_passes(tiny_model) as passes:
        adv = sa.attacks.get("dag")(tiny_model, x, labels, eps=1 / 255, targeted=False, steps=6, stop=1.0)
    assert float(pixel_success(tiny_model.predict(adv), labels, targeted=False).max()) < 1  # stop not reached
    assert (passes.forward, passes.backward) == (bound.forward, bound.backward)


def test_dag_stops_early_within_the_bound(colour_model: sa.PixelModel) -> None:
    x, _ = colour_scene(n=2)
    labels = colour_model.predict(x)
    bound = sa.attacks.cost("dag", eps=24 / 255, steps=60, step_size=2 / 255)
    with count_passes(colour_model) as passes:
        adv = sa.attacks.get("dag")(
            colour_model, x, labels, eps=24 / 255, targeted=False, steps=60, step_size=2 / 255, stop=0.05
        )
    assert float(pixel_success(colour_model.predict(adv), labels, targeted=False).min()) >= 0.05
    assert passes.forward == passes.backward + 1
    assert 1 < passes.forward < bound.forward and passes.backward < bound.backward


def test_illm_sweep_shares_the_prefix(tiny_model: sa.PixelModel) -> None:
    eps_levels = list(range(1, 21))
    p = sa.attacks.plan("illm", [e / 255 for e in eps_levels])
    assert p.shared and (p.forward, p.backward) == (76, 76)
    assert "76" in p.note and "266" in p.note
    eps01 = [e / 255 for e in eps_levels]
    assert not sa.attacks.plan("illm", eps01, best=True).shared  # the best iterate is not shared

    x = random_images(B, H, W, seed=7)
    target = labels_for(tiny_model, x, True)
    eps = [e / 255 for e in eps_levels]
    with count_passes(tiny_model) as passes:
        advs = sa.attacks.sweep("illm", tiny_model, x, target, eps=eps, targeted=True)
    assert (passes.forward, passes.backward) == (76, 76)
    assert advs.shape == (20, *x.shape)
    for k in (0, 2, 3, 9, 19):
        assert torch.equal(advs[k], sa.illm(tiny_model, x, target, eps=eps[k])), k
    with pytest.raises(ValueError, match="targeted"):
        sa.attacks.sweep("illm", tiny_model, x, target, eps=eps[:2], targeted=False)


def test_pgd_sweep_is_one_call_per_eps(tiny_model: sa.PixelModel) -> None:
    eps_levels = [2, 4, 8]
    opts: dict[str, Any] = {"steps": 3}
    p = sa.attacks.plan("pgd", [e / 255 for e in eps_levels], **opts)
    assert not p.shared and (p.forward, p.backward) == (3 * 4, 3 * 3)

    x = random_images(B, H, W, seed=8)
    labels = tiny_model.predict(x)
    eps = [e / 255 for e in eps_levels]
    torch.manual_seed(11)
    with count_passes(tiny_model) as passes:
        advs = sa.attacks.sweep("pgd", tiny_model, x, labels, eps=eps, targeted=False, **opts)
    assert (passes.forward, passes.backward) == (p.forward, p.backward)
    torch.manual_seed(11)  # the random start draws from the global generator, in the order of eps
    separate = [sa.attacks.get("pgd")(tiny_model, x, labels, eps=e, targeted=False, **opts) for e in eps]
    assert advs.shape == (3, *x.shape)
    for k in range(3):
        assert torch.equal(advs[k], separate[k]), k
        assert levels(advs[k] - x) <= eps_levels[k] + 1e-6


# --------------------------------------------------------------------------------------------------------------------
# 5. segpgd and cospgd against the reference functions of the authors' ``cospgd`` package


def reference_loop(
    model: sa.PixelModel, x: Tensor, labels: Tensor, *, kind: str, eps: float, step_size: float, steps: int,
    targeted: bool,
) -> Tensor:  # fmt: skip
    """The attack loop as the cospgd package's README writes it: no random start, mean-reduced CE, last iterate."""
    import cospgd  # a test dependency (pyproject's ``test`` extra): a missing package fails, never skips

    functions = cospgd.functions
    k = int(model(x[:1]).shape[1])
    adv = x.clone()
    for t in range(steps):
        adv.requires_grad_(True)
        logits = model(adv)
        loss = F.cross_entropy(logits, labels, reduction="none")
        if kind == "segpgd":
            loss = functions.segpgd_scale(logits, labels, loss, t, steps, targeted=targeted)
        else:
            loss = functions.cospgd_scale(logits, labels, loss, num_classes=k, targeted=targeted).mean()
        (grad,) = torch.autograd.grad(loss, adv)
        adv = functions.step_inf(adv, eps, grad, x, step_size, targeted)
    return adv.detach()


@pytest.mark.parametrize("kind", ["segpgd", "cospgd"])
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize(("eps_levels", "step_size"), [(4, 1 / 255), (8, 0.01)])
def test_matches_cospgd_package(
    tiny_model: sa.PixelModel, kind: str, targeted: bool, eps_levels: int, step_size: float
) -> None:
    x = random_images(B, H, W, seed=9)
    labels = labels_for(tiny_model, x, targeted)
    assert int(labels.max()) < 255
    steps = 6
    ref = reference_loop(
        tiny_model, x, labels, kind=kind, eps=eps_levels / 255, step_size=step_size, steps=steps, targeted=targeted
    )
    ours = sa.attacks.get(kind)(
        tiny_model, x, labels, eps=eps_levels / 255, targeted=targeted, steps=steps, step_size=step_size,
        random_start=False, best=False,
    )  # fmt: skip
    assert not torch.equal(ours, x)
    assert torch.allclose(ours, ref, rtol=0, atol=1e-10), float((ours - ref).abs().max())


# --------------------------------------------------------------------------------------------------------------------
# 6. the registry


def test_available_is_sorted_and_has_the_family() -> None:
    names = sa.attacks.available()
    assert list(names) == sorted(names)
    assert {"apgd", "cospgd", "dag", "illm", "pgd", "segpgd", "worst_case"} <= set(names)
    for name in names:
        assert callable(sa.attacks.get(name)) and sa.attacks.info(name).summary


def test_get_unknown_lists_the_names() -> None:
    with pytest.raises(ValueError, match="unknown attack 'nope'.*apgd, cospgd, dag"):
        sa.attacks.get("nope")


def test_user_attack_is_registered_and_sweeps(tiny_model: sa.PixelModel) -> None:
    calls: list[float] = []

    @sa.attacks.register("test-myattack")
    def shift(
        model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool, steps: int | None = None,
        step_size: float | None = None, mask: Tensor | None = None, ignore_index: int = 255, sign: int = 1,
    ) -> Tensor:  # fmt: skip
        """Shift every pixel by eps (a user's attack)."""
        calls.append(eps)
        return (images + sign * eps).clamp(0, 1)

    try:
        assert sa.attacks.get("test-myattack") is shift and "test-myattack" in sa.attacks.available()
        assert sa.attacks.info("test-myattack").options == {"sign": 1}
        with pytest.raises(ValueError, match="registered already"):
            sa.attacks.register("test-myattack")(shift)
        x = random_images(B, H, W, seed=10)
        labels = tiny_model.predict(x)
        p = sa.attacks.plan("test-myattack", [1 / 255, 3 / 255])
        assert not p.shared and p.forward is None
        advs = sa.attacks.sweep("test-myattack", tiny_model, x, labels, eps=[1 / 255, 3 / 255], targeted=False, sign=-1)
        assert calls == [1 / 255, 3 / 255]
        assert advs.shape == (2, *x.shape)
        assert torch.equal(advs[1], (x - 3 / 255).clamp(0, 1))
        with pytest.raises(ValueError, match="does not document its cost"):
            sa.attacks.cost("test-myattack", eps=1 / 255)
    finally:
        sa.attacks.unregister("test-myattack")
    assert "test-myattack" not in sa.attacks.available()


def test_wrong_signatures_are_refused() -> None:
    def two_positional(model: Any, images: Tensor, *, eps: float, targeted: bool) -> Tensor:
        return images

    def no_targeted(model: Any, images: Tensor, labels: Tensor, *, eps: float) -> Tensor:
        return images

    def option_without_default(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool,
                               strength: float) -> Tensor:  # fmt: skip
        return images

    try:
        with pytest.raises(TypeError, match="three positional"):
            sa.attacks.register("test-bad")(two_positional)
        with pytest.raises(TypeError, match="'targeted'"):
            sa.attacks.register("test-bad")(no_targeted)
        with pytest.raises(TypeError, match="'strength' needs a default"):
            sa.attacks.register("test-bad")(option_without_default)
        with pytest.raises(ValueError, match="attack names"):
            sa.attacks.register("bad name")
        assert "test-bad" not in sa.attacks.available()
    finally:
        sa.attacks.unregister("test-bad")


def test_check_options() -> None:
    check = sa.attacks.check_options
    assert check("pgd", {"steps": 5, "step_size": 1 / 255, "restarts": 2, "best": False, "loss": "js"}) == {
        "steps": 5, "step_size": 1 / 255, "restarts": 2, "best": False, "loss": "js"
    }  # fmt: skip
    assert check("worst_case", {"attacks": ["apgd:ce", "pgd"]}) == {"attacks": ("apgd:ce", "pgd")}
    assert check("dag", {"stop": 1}) == {"stop": 1}  # an int where a number is wanted
    with pytest.raises(ValueError, match="has no option 'nope'.*restarts"):
        check("pgd", {"nope": 1})
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        check("segpgd", {"loss": "nope"})
    bad: list[tuple[str, dict[str, Any]]] = [
        ("pgd", {"restarts": "2"}),
        ("pgd", {"restarts": 2.0}),
        ("pgd", {"restarts": True}),
        ("pgd", {"best": 1}),
        ("pgd", {"loss": 3}),
        ("pgd", {"steps": "5"}),
        ("pgd", {"steps": 5.0}),
        ("illm", {"steps": True}),
        ("pgd", {"step_size": "0.01"}),
        ("dag", {"stop": "0.5"}),
        ("worst_case", {"attacks": "apgd"}),
    ]
    for name, opts in bad:
        key = next(iter(opts))
        with pytest.raises(ValueError, match=rf"option {name}\.{key} takes"):
            check(name, opts)


def test_parse_option() -> None:
    parse = sa.attacks.parse_option
    assert parse("pgd", "steps", "50") == 50 and isinstance(parse("pgd", "steps", "50"), int)
    assert parse("illm", "steps", " 7 ") == 7
    assert parse("pgd", "step_size", "0.01") == 0.01
    assert parse("pgd", "best", "true") is True and parse("pgd", "best", "Off") is False
    assert parse("pgd", "restarts", "3") == 3
    assert parse("pgd", "loss", "js") == "js"
    assert parse("dag", "stop", "1") == 1.0
    assert parse("worst_case", "attacks", "ce+js") == ("ce", "js")
    assert parse("worst_case", "attacks", "apgd:ce + segpgd") == ("apgd:ce", "segpgd")
    for name, key, text in [
        ("pgd", "steps", "many"), ("pgd", "steps", "2.5"), ("pgd", "step_size", "nan"), ("pgd", "step_size", "big"),
        ("pgd", "best", "maybe"), ("dag", "stop", "half"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=rf"option {name}\.{key} takes"):
            parse(name, key, text)
    with pytest.raises(ValueError, match="has no option 'nope'"):
        parse("pgd", "nope", "1")


def test_illm_is_targeted_only(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W)
    target = labels_for(tiny_model, x, True)
    for call in (
        lambda: sa.illm(tiny_model, x, target, eps=2 / 255, targeted=False),
        lambda: sa.attacks.get("illm")(tiny_model, x, target, eps=2 / 255, targeted=False),
    ):
        with pytest.raises(ValueError, match="targeted by definition"):
            call()


# --------------------------------------------------------------------------------------------------------------------
# 7. the pixel-wise losses


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("targeted", [False, True])
def test_losses_shape_and_finite(loss_name: str, targeted: bool) -> None:
    g = torch.Generator().manual_seed(0)
    logits = 30 * torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)  # large logits: saturated softmax
    labels = torch.randint(0, 4, (2, 5, 6), generator=g)
    valid = torch.rand(2, 5, 6, generator=g) > 0.2
    logits.requires_grad_(True)
    out = LOSSES[loss_name](logits, labels, valid=valid, targeted=targeted, t=2, steps=5)
    assert out.shape == (2, 5, 6) and out.dtype == torch.float64
    assert bool(torch.isfinite(out).all()) and float(out.detach().min()) >= -1e-12  # non-negative up to rounding
    (grad,) = torch.autograd.grad(out[valid].sum(), logits)
    assert bool(torch.isfinite(grad).all())


def _softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


# one image, two classes, one row of two pixels: pixel 0 logits (1, 0), label 0 (correct); pixel 1 logits (2, 0),
# label 1 (wrong)
TWO_LOGITS = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]]], dtype=torch.float64)  # (1, 2, 1, 2)
TWO_LABELS = torch.tensor([[[0, 1]]])
CE = [math.log(1 + math.exp(-1)), math.log(1 + math.exp(2))]


def _loss(name: str, *, targeted: bool = False, valid: Tensor | None = None, t: int = 0, steps: int = 1) -> list[float]:
    v = torch.ones(1, 1, 2, dtype=torch.bool) if valid is None else valid
    out = LOSSES[name](TWO_LOGITS, TWO_LABELS, valid=v, targeted=targeted, t=t, steps=steps)
    assert out.shape == (1, 1, 2)
    return [float(out[0, 0, 0]), float(out[0, 0, 1])]


def test_ce_by_hand() -> None:
    assert _loss("ce") == pytest.approx(CE, rel=1e-12)
    assert _loss("ce", targeted=True) == pytest.approx(CE, rel=1e-12)


def test_masked_ce_by_hand() -> None:
    assert _loss("masked-ce") == pytest.approx([CE[0], 0.0], rel=1e-12)  # untargeted: only pixels still correct
    assert _loss("masked-ce", targeted=True) == pytest.approx([0.0, CE[1]], rel=1e-12)  # not yet on target


def test_js_by_hand() -> None:
    expected = []
    for z, label in (([1.0, 0.0], 0), ([2.0, 0.0], 1)):
        p = _softmax(z)
        y = [1.0 if c == label else 0.0 for c in range(2)]
        m = [(a + b) / 2 for a, b in zip(p, y, strict=True)]
        kl_pm = sum(a * math.log(a / c) for a, c in zip(p, m, strict=True) if a > 0)
        kl_ym = sum(a * math.log(a / c) for a, c in zip(y, m, strict=True) if a > 0)
        expected.append(0.5 * kl_pm + 0.5 * kl_ym)
    assert _loss("js") == pytest.approx(expected, rel=1e-12)
    assert 0 < min(expected) and max(expected) < math.log(2)  # the JS divergence is bounded by log 2


def test_balanced_ce_by_hand() -> None:
    # both classes present once: weight n / (classes * count) = 2 / (2 * 1) = 1
    assert _loss("balanced-ce") == pytest.approx(CE, rel=1e-12)
    # pixel 1 not counted: class 0 is the only class present, weight 1 / (1 * 1); class 1 absent, weight 0
    assert _loss("balanced-ce", valid=torch.tensor([[[True, False]]])) == pytest.approx([CE[0], 0.0], rel=1e-12)
    # three pixels, class 0 twice and class 1 once: weights 3 / (2 * 2) = 0.75 and 3 / (2 * 1) = 1.5
    logits = torch.tensor([[[[1.0, 0.0, 2.0]], [[0.0, 1.0, 0.0]]]], dtype=torch.float64)
    labels = torch.tensor([[[0, 0, 1]]])
    out = LOSSES["balanced-ce"](logits, labels, valid=torch.ones_like(labels, dtype=torch.bool), targeted=False, t=0,
                                steps=1)  # fmt: skip
    ce = F.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(out, ce * torch.tensor([0.75, 0.75, 1.5], dtype=torch.float64), rtol=1e-12, atol=0)


def test_segpgd_and_cospgd_by_hand() -> None:
    lam = 1 / 8  # t = 1 of T = 4: t / (2T)
    assert _loss("segpgd", t=1, steps=4) == pytest.approx([(1 - lam) * CE[0], lam * CE[1]], rel=1e-12)
    assert _loss("segpgd", targeted=True, t=1, steps=4) == pytest.approx([lam * CE[0], (1 - lam) * CE[1]], rel=1e-12)
    cos = []
    for z, label in (([1.0, 0.0], 0), ([2.0, 0.0], 1)):
        p = _softmax(z)
        cos.append(p[label] / math.hypot(*p))  # cosine of p and a one-hot vector
    assert _loss("cospgd") == pytest.approx([cos[0] * CE[0], cos[1] * CE[1]], rel=1e-12)
    assert _loss("cospgd", targeted=True) == pytest.approx([(1 - cos[0]) * CE[0], (1 - cos[1]) * CE[1]], rel=1e-12)


# --------------------------------------------------------------------------------------------------------------------
# 8. APGD


def checkpoints_by_formula(n: int) -> list[int]:
    """w_j = ceil(p_j N), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), in exact integer
    hundredths."""
    p = [0, 22]
    while p[-1] + max(p[-1] - p[-2] - 3, 6) <= 100:
        p.append(p[-1] + max(p[-1] - p[-2] - 3, 6))
    out: list[int] = []
    for v in p:
        w = -(-v * n // 100)
        if not out or w > out[-1]:
            out.append(w)
    return out


def test_apgd_checkpoints() -> None:
    assert apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    for n in (1, 5, 10, 37, 50, 100, 250):
        assert apgd_checkpoints(n) == checkpoints_by_formula(n), n


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_apgd_every_loss_with_restarts(colour_model: sa.PixelModel, loss_name: str) -> None:
    x, _ = colour_scene(n=2)
    labels = colour_model.predict(x)
    torch.manual_seed(0)
    adv = sa.attacks.get("apgd")(colour_model, x, labels, eps=8 / 255, targeted=False, steps=12, restarts=2,
                                 loss=loss_name)  # fmt: skip
    assert adv.shape == x.shape and levels(adv - x) <= 8 + 1e-4
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    success = pixel_success(colour_model.predict(adv), labels, targeted=False)
    assert float(success.min()) > 0, success  # every loss moves some pixels of both images
