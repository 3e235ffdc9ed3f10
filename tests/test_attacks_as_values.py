"""Attacks as values (a registered name is as good as a callable), per-image seeds, one eps unit in the registry, and
the pipeline's check of every attack's output."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import Tensor

import segattack as sa
from segattack.attacks import registry
from segattack.attacks.registry import AttackError
from segattack.pipeline import AttackSpec, HideGoal, UntargetedGoal, attack_batch

from .test_attack_family import B, H, W, labels_for, random_images


def shifted(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool = False, sign: int = 1) -> Tensor:
    """An unregistered attack: every pixel moved by eps."""
    return (images + sign * eps).clamp(0, 1)


def test_a_partial_of_a_registered_attack_is_that_attack_with_bound_options() -> None:
    spec = AttackSpec(functools.partial(sa.attacks.pgd, loss="js"), {"steps": 3})
    assert spec.name == "pgd" and dict(spec.options) == {"loss": "js", "steps": 3}
    assert spec.describe() == {"name": "pgd", "options": {"loss": "js", "steps": 3}}
    assert spec.passes(4 / 255) == sa.attacks.cost("pgd", eps=4 / 255, loss="js", steps=3).backward
    assert AttackSpec(sa.attacks.segpgd).name == "segpgd"  # the registered function itself
    with pytest.raises(AttackError, match="has no option 'los'"):
        AttackSpec(functools.partial(sa.attacks.pgd, los="js"))
    with pytest.raises(AttackError, match="binds eps"):
        AttackSpec(functools.partial(sa.attacks.pgd, eps=0.1))
    with pytest.raises(AttackError, match="unknown loss|loss"):
        AttackSpec(functools.partial(sa.attacks.pgd, loss="nope"))


def test_an_unregistered_callable_runs_as_it_is(tiny_model: sa.PixelModel) -> None:
    spec = AttackSpec(functools.partial(shifted, sign=-1))
    assert spec.name.endswith("shifted") and not spec.entry.registered and spec.passes(2 / 255) is None
    assert spec.describe()["callable"] is True and spec.describe()["options"] == {"sign": -1}
    x = random_images(B, H, W, seed=3)
    out = attack_batch(tiny_model, x, attack=spec, goal=UntargetedGoal(), eps=[1 / 255, 3 / 255])
    assert torch.equal(out.advs["full"][1], (x - 3 / 255).clamp(0, 1))
    assert "one run per eps" in spec.plan_note([1 / 255, 3 / 255])


def test_the_registry_speaks_one_eps_unit() -> None:
    assert sa.attacks.cost("illm", eps=10 / 255).backward == 13  # the paper's n = min(eps + 4, 1.25 eps)
    p = sa.attacks.plan("illm", [2 / 255, 4 / 255, 10 / 255])
    assert p.shared and p.backward == 15 and sa.attacks.plan("illm", [10 / 255]).backward == 13
    for bad in (10, 0, -1 / 255, float("nan")):
        with pytest.raises(AttackError, match=r"\(0, 1\] image units"):
            sa.attacks.cost("pgd", eps=bad)
    with pytest.raises(AttackError, match=r"\(0, 1\] image units"):
        sa.attacks.plan("pgd", [4])


def test_goal_rules_are_registry_metadata() -> None:
    assert registry.info("illm").only == "targeted" and registry.info("pgd").only is None
    AttackSpec("illm").check_goal(targeted=True)
    with pytest.raises(AttackError, match="targeted only"):
        AttackSpec("illm").check_goal(targeted=False)
    with pytest.raises(AttackError, match="'illm' is targeted only"):  # a member of worst_case, too
        AttackSpec("worst_case", {"attacks": ("apgd:ce", "illm")}).check_goal(targeted=False)
    with pytest.raises(AttackError, match="lists no attack"):
        AttackSpec("worst_case", {"attacks": ()})
    with pytest.raises(AttackError, match="apgd.steps must be at least 1"):
        AttackSpec("apgd", {"steps": 0})


def test_seeded_random_starts_do_not_depend_on_the_batch(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=4)
    labels = tiny_model.predict(x)
    seeds = [11, 12, 13, 14][:B]
    for name in ("pgd", "apgd", "worst_case"):
        opts: dict[str, Any] = {"steps": 2}
        if name == "worst_case":
            opts["attacks"] = ("pgd", "apgd:js")
        whole = sa.attacks.get(name)(tiny_model, x, labels, eps=4 / 255, seed=seeds, **opts)
        for j in range(B):
            torch.manual_seed(j)  # the global RNG plays no part
            xj, yj = x[j : j + 1], labels[j : j + 1]
            one = sa.attacks.get(name)(tiny_model, xj, yj, eps=4 / 255, seed=[seeds[j]], **opts)
            assert torch.equal(one[0], whole[j]), (name, j)
    again = sa.attacks.pgd(tiny_model, x, labels, eps=4 / 255, steps=2, seed=seeds)
    other = sa.attacks.pgd(tiny_model, x, labels, eps=4 / 255, steps=2, seed=[s + 1 for s in seeds])
    assert torch.equal(again, sa.attacks.pgd(tiny_model, x, labels, eps=4 / 255, steps=2, seed=seeds))
    assert not torch.equal(again, other)
    with pytest.raises(TypeError, match="one integer per image"):
        sa.attacks.pgd(tiny_model, x, labels, eps=4 / 255, steps=2, seed=[1])


def test_seeded_eot_draws_do_not_depend_on_the_batch(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=5)
    target = labels_for(tiny_model, x, True)
    opts = {"eot": "noise:4,blur:1", "eot_samples": 2, "steps": 2}
    whole = sa.attacks.illm(tiny_model, x, target, eps=4 / 255, seed=[5] * B, **opts)
    one = sa.attacks.illm(tiny_model, x[1:2], target[1:2], eps=4 / 255, seed=[5], **opts)
    assert torch.equal(one[0], whole[1])


def test_the_pipeline_passes_per_image_seeds_derived_per_attack(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=6)
    spec = AttackSpec("pgd", {"steps": 2})
    whole = attack_batch(tiny_model, x, attack=spec, goal=UntargetedGoal(), eps=[2 / 255, 4 / 255], seeds=[7] * B)
    part = attack_batch(tiny_model, x[1:2], attack=spec, goal=UntargetedGoal(), eps=[4 / 255], seeds=[7])
    assert torch.equal(part.advs["full"][0, 0], whole.advs["full"][1, 1])


def test_the_pipeline_checks_every_attack_output(tiny_model: sa.PixelModel) -> None:
    x = random_images(B, H, W, seed=7)

    def too_far(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool = False) -> Tensor:
        return (images + 0.5).clamp(0, 1)

    def out_of_range(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool = False) -> Tensor:
        return images + eps

    def wrong_shape(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool = False) -> Tensor:
        return images[:, :1]

    def unmasked(model: Any, images: Tensor, labels: Tensor, *, eps: float, targeted: bool = False,
                 mask: Tensor | None = None) -> Tensor:  # fmt: skip
        return (images - eps).clamp(0, 1)

    cases = [(too_far, "exceeded its budget"), (out_of_range, "returned values in .*images are in \\[0, 1\\]"),
             (wrong_shape, "returned \\(1, ")]  # fmt: skip
    for fn, phrase in cases:
        with pytest.raises(AttackError, match=f"attack '.*{fn.__name__}' {phrase}"):
            attack_batch(tiny_model, x, attack=AttackSpec(fn), goal=UntargetedGoal(), eps=[2 / 255])
    pred = tiny_model.predict(x)
    cls = int(pred.flatten()[0])
    with pytest.raises(AttackError, match="outside the restriction mask"):
        attack_batch(tiny_model, x, attack=AttackSpec(unmasked), goal=HideGoal((cls,)), eps=[2 / 255],
                     modes=("during",), pred=pred)  # fmt: skip


def test_the_pgd_variants_are_one_attack_with_their_loss_and_defaults(tiny_model: sa.PixelModel) -> None:
    assert {n: registry.info(n).options["loss"] for n in ("pgd", "segpgd", "cospgd")} == {
        "pgd": "ce", "segpgd": "segpgd", "cospgd": "cospgd"}  # fmt: skip
    x = random_images(B, H, W, seed=8)
    labels = tiny_model.predict(x)
    common: dict[str, Any] = {"eps": 4 / 255, "steps": 3, "seed": [1] * B}
    assert torch.equal(sa.attacks.segpgd(tiny_model, x, labels, **common),
                       sa.attacks.pgd(tiny_model, x, labels, loss="segpgd", **common))  # fmt: skip
    assert torch.equal(sa.attacks.cospgd(tiny_model, x, labels, **common),
                       sa.attacks.pgd(tiny_model, x, labels, loss="cospgd", step_size=0.01, **common))  # fmt: skip
