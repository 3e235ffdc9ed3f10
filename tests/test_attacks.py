from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import segattack as sa
from segattack.attacks._core import paper_steps

from .conftest import colour_scene, random_images


def setup(model: sa.PixelModel, b: int = 2, h: int = 12, w: int = 14, seed: int = 0):  # type: ignore[no-untyped-def]
    x = random_images(b, h, w, seed=seed)
    pred = model.predict(x)
    cls = int(pred.flatten().mode().values)
    pred_hidden = pred.clone()
    target = sa.hide_class_target(pred_hidden, class_id=cls)
    return x, pred, cls, target


def test_paper_steps_rule() -> None:
    assert [paper_steps(e) for e in range(1, 21)] == [
        2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24
    ]  # fmt: skip
    assert paper_steps(10) == 13  # ceil(min(14, 12.5))
    with pytest.raises(ValueError, match="positive"):
        paper_steps(0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(eps_levels=st.integers(1, 12), seed=st.integers(0, 1000), masked=st.booleans())
def test_budget_range_exactness_inputs(tiny_model: sa.PixelModel, eps_levels: int, seed: int, masked: bool) -> None:
    x, pred, cls, target = setup(tiny_model, seed=seed)
    x_copy, t_copy = x.clone(), target.clone()
    mask = (pred == cls) if masked else None
    adv = sa.illm(tiny_model, x, target, eps=eps_levels / 255, mask=mask)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float((adv - x).abs().max()) * 255 <= eps_levels + 1e-6  # budget
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1  # valid image
    levels = adv * 255
    assert torch.equal(levels, levels.round())  # 8-bit exact: whole levels
    assert torch.equal(x, x_copy) and torch.equal(target, t_copy)  # inputs unchanged
    if mask is not None:
        assert torch.equal(adv[~mask[:, None].expand_as(adv)], x[~mask[:, None].expand_as(x)])


def test_png_round_trip_is_exact(colour_model: sa.PixelModel) -> None:
    x, person = colour_scene(n=1)  # float32 images, as loaded from PNG
    target = sa.hide_class_target(colour_model.predict(x), class_id=person)
    adv = sa.illm(colour_model, x, target, eps=10 / 255)
    assert not torch.equal(adv, x)
    arr = (adv[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    back = torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(back, adv)


def test_batch_equals_single_runs(tiny_model: sa.PixelModel) -> None:
    x, _, _, target = setup(tiny_model, b=3)
    batch = sa.illm(tiny_model, x, target, eps=6 / 255)
    for i in range(3):
        single = sa.illm(tiny_model, x[i : i + 1], target[i : i + 1], eps=6 / 255)
        assert torch.equal(batch[i : i + 1], single)


def test_per_image_eps_equals_single_runs(tiny_model: sa.PixelModel) -> None:
    x, _, _, target = setup(tiny_model, b=3)
    eps = torch.tensor([2, 5, 9]) / 255
    batch = sa.illm(tiny_model, x, target, eps=eps)
    for i in range(3):
        single = sa.illm(tiny_model, x[i : i + 1], target[i : i + 1], eps=float(eps[i]))
        assert torch.equal(batch[i : i + 1], single)
        assert float((batch[i] - x[i]).abs().max()) * 255 <= eps[i] * 255 + 1e-6


@pytest.mark.parametrize("masked", [False, True])
def test_sweep_equals_separate_runs(tiny_model: sa.PixelModel, masked: bool) -> None:
    x, pred, cls, target = setup(tiny_model)
    mask = (pred == cls) if masked else None
    eps = [10 / 255, 1 / 255, 3 / 255, 4 / 255, 7 / 255]
    advs = sa.illm_sweep(tiny_model, x, target, eps=eps, mask=mask)
    assert advs.shape == (5, *x.shape)
    for k, e in enumerate(eps):
        assert torch.equal(advs[k], sa.illm(tiny_model, x, target, eps=e, mask=mask)), e


def test_sweep_with_explicit_steps_and_step_size(tiny_model: sa.PixelModel) -> None:
    x, _, _, target = setup(tiny_model)
    eps = [4 / 255, 8 / 255]
    advs = sa.illm_sweep(tiny_model, x, target, eps=eps, steps=[3, 11], step_size=2 / 255)
    for k, (e, n) in enumerate(zip(eps, [3, 11], strict=True)):
        assert torch.equal(advs[k], sa.illm(tiny_model, x, target, eps=e, steps=n, step_size=2 / 255))


def test_sweep_plan_counts() -> None:
    plan = sa.sweep_plan([e / 255 for e in range(1, 21)])
    assert (plan.passes, plan.separate_passes) == (76, 266)
    assert plan.fork[:3] == (1, 2, 3) and plan.steps[9] == 13
    single = sa.sweep_plan([10 / 255])
    assert single.passes == single.separate_passes == 13


def test_attack_hides_class_more_with_larger_eps(colour_model: sa.PixelModel) -> None:
    x, person = colour_scene(n=3)
    pred = colour_model.predict(x)
    assert (pred == person).sum() > 100  # the scene has a visible person
    target = sa.hide_class_target(pred, class_id=person)
    eps = [1 / 255, 4 / 255, 10 / 255, 24 / 255]
    advs = sa.illm_sweep(colour_model, x, target, eps=eps)
    fooled = [
        float(sa.summarize(sa.hiding_metrics(pred, colour_model.predict(a), class_id=person).fooled).mean) for a in advs
    ]
    preserved = [
        float(sa.summarize(sa.hiding_metrics(pred, colour_model.predict(a), class_id=person).preserved).mean)
        for a in advs
    ]
    assert all(b >= a for a, b in zip(fooled, fooled[1:], strict=False)), fooled
    assert fooled[0] < 0.5 and fooled[-1] > 0.9, fooled
    assert min(preserved) > 0.95, preserved
    # the post-hoc restricted perturbation touches only person pixels and still hides some of them
    restricted = sa.restrict(advs[-1], x, mask=pred == person)
    m = sa.hiding_metrics(pred, colour_model.predict(restricted), class_id=person)
    assert float(m.fooled.mean()) > 0.5


def test_restrict() -> None:
    x = torch.rand(2, 3, 4, 5)
    adv = torch.rand(3, 2, 3, 4, 5)
    mask = torch.rand(2, 4, 5) > 0.5
    r = sa.restrict(adv, x, mask=mask)
    m = mask[:, None].expand(2, 3, 4, 5)
    assert r.shape == adv.shape
    for k in range(3):
        assert torch.equal(r[k][m], adv[k][m]) and torch.equal(r[k][~m], x[~m])
    assert torch.equal(sa.restrict(adv[0], x, mask=mask), r[0])


def test_bare_module_is_not_changed(tiny_model: sa.PixelModel) -> None:
    net = tiny_model.net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = random_images(2, 8, 8)
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    adv = sa.illm(net, x, target, eps=3 / 255)  # a bare nn.Module is wrapped: eval mode, no parameter grads
    assert adv.shape == x.shape
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def _raises(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_validation_errors(tiny_model: sa.PixelModel) -> None:
    x, pred, cls, target = setup(tiny_model)
    m = tiny_model
    _raises(lambda: sa.illm(m, x, target, eps=10), "write eps=10/255")
    _raises(lambda: sa.illm(m, x, target, eps=0.0), "positive")
    _raises(lambda: sa.illm(m, x, target, eps=-1 / 255), "positive")
    _raises(lambda: sa.illm(m, x, target, eps=float("nan")), "positive")
    _raises(lambda: sa.illm(m, x, target, eps=torch.ones(5) / 255), r"\(B,\)")
    _raises(lambda: sa.illm(m, x, target, eps=1 / 255, step_size=0), "step_size")
    _raises(lambda: sa.illm(m, x, target, eps=1 / 255, steps=-1), "steps")
    _raises(lambda: sa.illm(m, x * 255, target, eps=1 / 255), r"\[0, 1\]")
    _raises(lambda: sa.illm(m, x, target.float(), eps=1 / 255), "integer")
    _raises(lambda: sa.illm(m, x, target[:, :4], eps=1 / 255), "shape")
    _raises(lambda: sa.illm(m, x, target + 40, eps=1 / 255), "outside 0..4")
    _raises(lambda: sa.illm(m, x, target, eps=1 / 255, mask=pred), "boolean")
    _raises(lambda: sa.illm(m, x, target, eps=1 / 255, mask=(pred == cls)[:, :3]), "mask has shape")
    _raises(lambda: sa.illm(lambda z: z.mean((2, 3)), x, target, eps=1 / 255), "at input size")
    _raises(lambda: sa.illm("model", x, target, eps=1 / 255), "callable")  # type: ignore[arg-type]
    _raises(lambda: sa.illm_sweep(m, x, target, eps=[]), "at least one")
    _raises(lambda: sa.illm_sweep(m, x, target, eps=[1 / 255, 2 / 255], steps=[3]), "one per eps")
    _raises(lambda: sa.restrict(x[None], x[:1], mask=pred == cls), "does not end")


def test_ignore_index_pixels_leave_the_loss(tiny_model: sa.PixelModel) -> None:
    x, _, _, target = setup(tiny_model)
    ignored = torch.full_like(target, 255)
    adv = sa.illm(tiny_model, x, ignored, eps=4 / 255)
    assert torch.equal(adv, x)  # no pixel in the loss: zero gradient, no step
