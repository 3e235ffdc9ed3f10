"""Expectation over Transformation (Athalye et al. 2018) as the ``eot``/``eot_samples`` options of the iterative
attacks: ``identity`` changes nothing, the attack guarantees hold with EOT on, the gradient is the average over the
draws, passes counted with hooks equal ``cost``, and the options travel through the registry and the command line.

Tiny models from ``conftest`` (float64 ``tiny_model``), real forward and backward passes, no mocks.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import segattack as sa
from segattack.attacks import losses
from segattack.attacks._core import EOT, make_eot, objective_and_grad, prepare
from segattack.transforms import Transform, parse_transforms

from .conftest import count_passes, random_images
from .test_attack_family import labels_for

EOT_ATTACKS = ("illm", "pgd", "segpgd", "cospgd", "apgd")
B, H, W = 2, 12, 14
MIXED = "jpeg:75,noise:2,blur:1,resize:0.5"


pytestmark = pytest.mark.usefixtures("one_thread")


def fast(name: str) -> dict[str, Any]:
    return {} if name == "illm" else {"steps": 4}


def attack(name: str, model: Any, images: Tensor, labels: Tensor, *, seed: int = 0, **kwargs: Any) -> Tensor:
    torch.manual_seed(seed)  # random starts and EOT draws come from torch's global RNG
    return sa.attacks.get(name)(model, images, labels, **kwargs)


def targeted_for(name: str) -> bool:
    return name == "illm"


# --------------------------------------------------------------------------------------------------------------------
# identity: the attack without EOT, bit for bit


@pytest.mark.parametrize("name", EOT_ATTACKS)
@pytest.mark.parametrize("eot", ["identity", [Transform("identity")]], ids=["spec", "list"])
def test_identity_eot_equals_no_eot(tiny_model: sa.PixelModel, name: str, eot: Any) -> None:
    """One deterministic transform needs one draw (not ``eot_samples``), and ``identity.differentiable`` feeds the
    model the adversarial image itself: the same passes, the same floating-point values, the same result."""
    x = random_images(B, H, W, seed=1)
    targeted = targeted_for(name)
    labels = labels_for(tiny_model, x, targeted)
    opts = {**fast(name), **({"restarts": 2} if name != "illm" else {})}
    plain = attack(name, tiny_model, x, labels, eps=4 / 255, targeted=targeted, **opts)
    with_eot = attack(name, tiny_model, x, labels, eps=4 / 255, targeted=targeted, eot=eot, eot_samples=5, **opts)
    assert torch.equal(plain, with_eot)


# --------------------------------------------------------------------------------------------------------------------
# the guarantees with EOT on


@pytest.mark.parametrize(
    ("name", "targeted"), [(n, t) for n in EOT_ATTACKS for t in (False, True) if t or n != "illm"]
)  # illm is targeted only
def test_conformance_with_eot(tiny_model: sa.PixelModel, name: str, targeted: bool) -> None:
    model, net = tiny_model, tiny_model.net
    net.train()
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = random_images(B, H, W, seed=1)
    labels = labels_for(model, x, targeted)
    labels[:, 0, :3] = 255
    mask = torch.rand(B, H, W, generator=torch.Generator().manual_seed(2)) > 0.4
    x0, labels0, mask0 = x.clone(), labels.clone(), mask.clone()
    opts = {**fast(name), "eot": MIXED, "eot_samples": 3}
    if name in ("pgd", "segpgd", "cospgd"):
        opts["step_size"] = 1 / 255  # whole-level steps (their default 2.5 eps / steps is 2.5 levels here)
    eps = 4

    adv = attack(name, model, x, labels, eps=eps / 255, targeted=targeted, **opts)
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert float((adv - x).abs().max()) * 255 <= eps + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert not torch.equal(adv, x)
    if name != "apgd":  # whole-level sign steps from a whole-level start: the result is an exact 8-bit image
        lv = adv * 255
        assert torch.equal(lv, lv.round())

    adv_m = attack(name, model, x, labels, eps=eps / 255, targeted=targeted, mask=mask, **opts)
    outside = ~mask[:, None].expand_as(x)
    assert torch.equal(adv_m[outside], x[outside]) and not torch.equal(adv_m, x)

    again = attack(name, model, x, labels, eps=eps / 255, targeted=targeted, **opts)
    assert torch.equal(adv, again)  # seeded: the same draws give the same result
    other = attack(name, model, x, labels, eps=eps / 255, targeted=targeted, seed=1, **opts)
    assert not torch.equal(adv, other)  # and the draws do matter

    assert torch.equal(x, x0) and torch.equal(labels, labels0) and torch.equal(mask, mask0)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", EOT_ATTACKS)
def test_batch_equals_single_runs_for_one_deterministic_transform(tiny_model: sa.PixelModel, name: str) -> None:
    x = random_images(3, H, W, seed=3)
    targeted = targeted_for(name)
    labels = labels_for(tiny_model, x, targeted)
    opts = {**fast(name), "eot": "jpeg:60", "eot_samples": 4}
    if name != "illm":
        opts["random_start"] = False
    batch = attack(name, tiny_model, x, labels, eps=4 / 255, targeted=targeted, **opts)
    for i in range(3):
        single = attack(name, tiny_model, x[i : i + 1], labels[i : i + 1], eps=4 / 255, targeted=targeted, **opts)
        assert torch.equal(batch[i : i + 1], single), i
    plain = attack(name, tiny_model, x, labels, eps=4 / 255, targeted=targeted, **{**opts, "eot": None})
    assert not torch.equal(batch, plain)  # the JPEG in the loop changed the attack


# --------------------------------------------------------------------------------------------------------------------
# the gradient is the average over the draws


def test_eot_gradient_is_the_mean_over_noise_draws_and_differs_from_the_plain_one(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=4)
    labels = tiny_model.predict(x)
    common = {"eps": 4 / 255, "targeted": False, "mask": None, "ignore_index": 255}
    plain = prepare(tiny_model, x, labels, **common)
    noisy = prepare(tiny_model, x, labels, **common, eot="noise:6", eot_samples=4)
    delta = torch.zeros_like(plain.base)
    _, g_plain, _ = objective_and_grad(plain, delta, losses.ce, t=0, steps=1, check=True)
    torch.manual_seed(9)
    f_eot, g_eot, s_eot = objective_and_grad(noisy, delta, losses.ce, t=0, steps=1, check=True)

    # by hand: the same four noise draws from the global RNG, each through the model, gradients averaged
    torch.manual_seed(9)
    t = Transform("noise", 6)
    grads, objs, succ = [], [], []
    for _ in range(4):
        adv = (x.clone()).requires_grad_(True)
        logits = tiny_model(t.differentiable(adv))
        per_image = torch.nn.functional.cross_entropy(logits, labels, reduction="none").flatten(1).sum(1)
        grads.append(torch.autograd.grad(per_image.sum(), adv)[0])
        objs.append(per_image.detach())
        succ.append(noisy.success(logits.argmax(1)))
    assert torch.allclose(g_eot, torch.stack(grads).mean(0), rtol=1e-10, atol=1e-12)
    assert torch.allclose(f_eot, torch.stack(objs).mean(0), rtol=1e-10)
    assert s_eot is not None and torch.allclose(s_eot, torch.stack(succ).mean(0))

    # a measurement, not a tolerance: the EOT direction is not the plain one, nor any single draw's
    agree = float((g_eot.sign() == g_plain.sign()).double().mean())
    assert agree < 0.99, agree
    assert not torch.equal(g_eot.sign(), grads[0].sign())


def test_mixed_draw_sends_each_image_through_one_transform() -> None:
    eot = make_eot("jpeg:50,blur:1,resize:0.5", 2)
    assert isinstance(eot, EOT) and eot.draws == 2
    x = random_images(6, H, W, seed=5)
    torch.manual_seed(3)
    y = eot.apply(x)
    expected = [t(x) for t in eot.transforms]
    picked = [[k for k, e in enumerate(expected) if torch.equal(y[i], e[i])] for i in range(6)]
    assert all(len(p) == 1 for p in picked), picked
    assert len({p[0] for p in picked}) > 1  # six images, three transforms: more than one was drawn


# --------------------------------------------------------------------------------------------------------------------
# passes: hooks against cost()

COST_CASES: list[tuple[str, dict[str, Any]]] = [
    ("illm", {"eot": "noise:2", "eot_samples": 3}),
    ("illm", {"eot": "jpeg:75,blur:1", "eot_samples": 2, "best": True}),
    ("illm", {"eot": "jpeg:75", "eot_samples": 5}),  # one deterministic transform: one draw
    ("pgd", {"steps": 3, "eot": MIXED, "eot_samples": 2}),
    ("pgd", {"steps": 2, "restarts": 2, "best": False, "eot": "noise:1", "eot_samples": 3}),
    ("segpgd", {"steps": 3, "eot": "resize:0.5,noise:2", "eot_samples": 2}),
    ("cospgd", {"steps": 3, "eot": "blur:0.8", "eot_samples": 4}),
    ("apgd", {"steps": 4, "eot": "jpeg:50,noise:3", "eot_samples": 2}),
]


@pytest.mark.parametrize(("name", "opts"), COST_CASES, ids=[f"{n}-{o}" for n, o in COST_CASES])
def test_passes_equal_documented_cost_with_eot(tiny_model: sa.PixelModel, name: str, opts: dict[str, Any]) -> None:
    targeted = targeted_for(name)
    x = random_images(B, H, W, seed=5)
    labels = labels_for(tiny_model, x, targeted)
    with count_passes(tiny_model) as passes:
        attack(name, tiny_model, x, labels, eps=4 / 255, targeted=targeted, **opts)
    cost = sa.attacks.cost(name, eps=4 / 255, **opts)
    plain = sa.attacks.cost(name, eps=4 / 255, **{k: v for k, v in opts.items() if not k.startswith("eot")})
    draws = 1 if opts["eot"] in ("jpeg:75", "blur:0.8") else opts["eot_samples"]
    assert (cost.forward, cost.backward) == (plain.forward * draws, plain.backward * draws)
    assert (passes.forward, passes.backward) == (cost.forward, cost.backward), cost


def test_sweep_with_eot_runs_each_budget_and_plans_so(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=6)
    target = labels_for(tiny_model, x, True)
    opts = {"eot": "noise:2", "eot_samples": 2}
    p = sa.attacks.plan("illm", [2 / 255, 4 / 255], **opts)
    assert not p.shared and p.backward == 2 * (3 + 5)
    torch.manual_seed(0)
    swept = sa.attacks.sweep("illm", tiny_model, x, target, eps=[2 / 255, 4 / 255], targeted=True, **opts)
    torch.manual_seed(0)
    first = sa.attacks.illm(tiny_model, x, target, eps=2 / 255, **opts)
    assert swept.shape == (2, *x.shape) and torch.equal(swept[0], first)
    assert float((swept[1] - x).abs().max()) * 255 <= 4 + 1e-6
    assert sa.attacks.plan("illm", [2 / 255, 4 / 255]).shared  # without EOT the prefix is still shared


# --------------------------------------------------------------------------------------------------------------------
# options through the registry and the command line


def test_registry_checks_and_normalises_the_options() -> None:
    for name in EOT_ATTACKS:
        assert sa.attacks.info(name).options["eot"] is None and sa.attacks.info(name).options["eot_samples"] >= 1
    out = sa.attacks.check_options("pgd", {"eot": parse_transforms("jpeg:75,blur:1.0"), "eot_samples": 4})
    assert out == {"eot": "jpeg:75,blur:1", "eot_samples": 4}  # plain text, as configurations store it
    assert sa.attacks.check_options("illm", {"eot": None}) == {"eot": None}
    with pytest.raises(ValueError, match=r"option pgd\.eot: jpeg quality must be an integer from 1 to 100"):
        sa.attacks.check_options("pgd", {"eot": "jpeg:750"})
    with pytest.raises(ValueError, match=r"option apgd\.eot: .*lists noise:2 twice"):
        sa.attacks.check_options("apgd", {"eot": "noise:2,noise:2.0"})
    with pytest.raises(ValueError, match=r"option illm\.eot_samples: eot_samples must be an integer >= 1"):
        sa.attacks.check_options("illm", {"eot_samples": 0})
    with pytest.raises(ValueError, match=r"option illm\.eot: eot takes a transforms spec"):
        sa.attacks.check_options("illm", {"eot": 3})
    with pytest.raises(ValueError, match="has no option 'eot'"):
        sa.attacks.check_options("dag", {"eot": "jpeg:75"})


def test_direct_calls_validate_too(tiny_model: sa.PixelModel) -> None:
    x = random_images(1, H, W)
    labels = tiny_model.predict(x)
    with pytest.raises(ValueError, match="blur sigma must be a positive number"):
        sa.attacks.pgd(tiny_model, x, labels, eps=2 / 255, eot="blur:-1")
    with pytest.raises(ValueError, match="eot_samples must be an integer >= 1"):
        sa.attacks.apgd(tiny_model, x, labels, eps=2 / 255, eot="noise:2", eot_samples=0)
    with pytest.raises(ValueError, match="eot lists no transform"):
        sa.attacks.illm(tiny_model, x, labels, eps=2 / 255, eot=[])


def test_parse_option_keeps_commas_of_a_transforms_spec() -> None:
    assert sa.attacks.parse_option("illm", "eot", "jpeg:75, blur:1.0") == "jpeg:75,blur:1"
    assert sa.attacks.parse_option("illm", "eot", "none") is None
    assert sa.attacks.parse_option("illm", "eot_samples", "4") == 4
    with pytest.raises(ValueError, match="unknown transform 'gamma:2'"):
        sa.attacks.parse_option("pgd", "eot", "gamma:2")


def test_command_line_options_reach_the_attack_spec() -> None:
    from segattack.commands._common import parse_attacks

    (spec,) = parse_attacks("illm", ["illm.eot=jpeg:75,blur:1", "illm.eot_samples=4"])
    assert spec.options == {"eot": "jpeg:75,blur:1", "eot_samples": 4}
    assert spec.passes(4 / 255) == 4 * 5  # eps=4: the paper's 5 steps, 4 draws each
    specs = parse_attacks("illm,pgd", ["pgd.eot=noise:2"])  # --attack splits on commas; --attack-opt values do not
    assert [s.options for s in specs] == [{}, {"eot": "noise:2"}]
