"""``evaluate(..., attack=, eps=)``: the mIoU and accuracy under one attack, in memory."""

from __future__ import annotations

import functools

import pytest
import torch

import segattack as sa

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scenes() -> sa.data.SyntheticStreets:
    return sa.data.SyntheticStreets(split="val", size=(32, 64), length=3, seed=0)


@pytest.fixture(scope="module")
def model() -> sa.PixelModel:
    return sa.zoo.load(sa.zoo.DEFAULT_MODEL)


def test_an_attack_lowers_accuracy_and_the_batch_does_not_matter(model, scenes) -> None:
    clean = sa.evaluate(model, scenes, num_classes=19)
    options = {"steps": 3}
    one = sa.evaluate(model, scenes, num_classes=19, attack="pgd", eps=4 / 255, attack_options=options, batch_size=1)
    three = sa.evaluate(model, scenes, num_classes=19, attack="pgd", eps=4 / 255, attack_options=options, batch_size=3)
    assert one.pixel_accuracy < clean.pixel_accuracy - 0.2
    assert torch.equal(one.confusion, three.confusion)  # one seed per image: random starts independent of batches
    assert one.confusion.sum() == clean.confusion.sum()  # the same pixels counted
    assert (one.attack, one.eps, clean.attack, clean.eps) == ("pgd", 4 / 255, None, None)
    assert one.as_dict()["attack"] == "pgd"


def test_the_seed_draws_the_random_starts(model, scenes) -> None:
    a, b = (sa.evaluate(model, scenes, num_classes=19, attack="pgd", eps=2 / 255, attack_options={"steps": 1},
                        seed=s) for s in (0, 1))  # fmt: skip
    assert not torch.equal(a.confusion, b.confusion)


def test_an_attack_as_a_partial_equals_its_name_with_options(model, scenes) -> None:
    partial = functools.partial(sa.attacks.apgd, loss="js", steps=2)
    by_value = sa.evaluate(model, scenes, num_classes=19, attack=partial, eps=4 / 255)
    by_name = sa.evaluate(model, scenes, num_classes=19, attack="apgd", eps=4 / 255,
                          attack_options={"loss": "js", "steps": 2})  # fmt: skip
    assert torch.equal(by_value.confusion, by_name.confusion)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attack": "illm", "eps": 4 / 255}, "targeted"),
        ({"attack": "pgd"}, "eps=4/255"),
        ({"eps": 4 / 255}, "need an attack"),
        ({"attack": "pgd", "eps": 4}, "[0, 1]"),
        ({"attack": "pgd", "eps": 4 / 255, "attack_options": {"stpes": 3}}, "stpes"),
        ({"attack": "nope", "eps": 4 / 255}, "apgd"),
    ],
)
def test_refusals_name_the_fix(model, scenes, kwargs, message) -> None:
    with pytest.raises(ValueError, match=None) as err:
        sa.evaluate(model, scenes, num_classes=19, **kwargs)
    assert message in str(err.value)
