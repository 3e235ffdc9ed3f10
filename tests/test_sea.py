"""SEA (Croce, Singh and Hein 2024): its losses by hand, its radius schedule and checkpoints, agreement with a plain
re-statement of their ``apgd_largereps``/``apgd_train``, the conformance properties of the attack family, its pass
counts, its errors, and ``apgd`` unchanged by the loop it now shares with ``sea``.

Tiny float64 models of ``conftest``, real forward and backward passes, no mocks.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import segattack as sa
import segattack.attacks.sea  # noqa: F401  (registers "sea")
from segattack.attacks._core import Best, levels_of, objective_and_grad, prepare
from segattack.attacks.losses import (
    LOSSES,
    check_class_weights,
    class_weights_from_labels,
    masked_balanced_ce_with,
)
from segattack.attacks.registry import AttackError, check_goal
from segattack.errors import InputError
from segattack.metrics import pixel_success

from .conftest import colour_scene, random_images

SEA = sys.modules["segattack.attacks.sea"]
APGD = sys.modules["segattack.attacks.apgd"]
sea = SEA.sea
B, H, W = 3, 12, 14


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def plane_model() -> sa.PixelModel:
    """Two classes split pixel by pixel by a plane through the middle of the colour cube: with eps above 1/2 every
    pixel can cross it, so an attack reaches pixel accuracy 0 and stops early (the random tiny nets never do)."""
    net = nn.Conv2d(3, 2, 1).double()
    weight = 4 * torch.tensor([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5]], dtype=torch.float64)
    with torch.no_grad():
        net.weight.copy_(weight.view(2, 3, 1, 1))
        assert net.bias is not None
        net.bias.copy_(-0.5 * weight.sum(1))
    return sa.PixelModel(net)


def levels(t: Tensor) -> float:
    return float(t.abs().max()) * 255


def accuracy(model: sa.PixelModel, adv: Tensor, labels: Tensor) -> Tensor:
    return 1 - pixel_success(model.predict(adv), labels, targeted=False)


# --------------------------------------------------------------------------------------------------------------------
# 1. the losses, by hand

# one image, three classes, one row of three pixels; predictions: class 0, class 1, class 0
LOGITS = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.5, 1.0, 0.0]], [[0.0, 0.5, -1.0]]]], dtype=torch.float64)
LABELS = torch.tensor([[[0, 1, 2]]])  # pixels 0 and 1 correct, pixel 2 wrong (label 2, predicted 0)
ALL = torch.ones(1, 1, 3, dtype=torch.bool)


def _pixel(i: int) -> tuple[list[float], int]:
    z = [float(LOGITS[0, c, 0, i]) for c in range(3)]
    return z, int(LABELS[0, 0, i])


def _ce(i: int) -> float:
    z, y = _pixel(i)
    return math.log(sum(math.exp(v) for v in z)) - z[y]


def _correct(i: int) -> bool:
    z, y = _pixel(i)
    return max(range(3), key=lambda c: z[c]) == y


def _call(
    loss: Callable[..., Tensor], *, targeted: bool = False, valid: Tensor = ALL, labels: Tensor = LABELS
) -> list[float]:
    out = loss(LOGITS, labels, valid=valid, targeted=targeted, t=0, steps=1)
    assert out.shape == (1, 1, 3) and out.dtype == torch.float64
    return out.flatten().tolist()


def test_masked_ce_by_hand() -> None:
    expected = [_ce(i) if _correct(i) else 0.0 for i in range(3)]
    assert expected[2] == 0.0 and expected[0] > 0
    assert _call(LOSSES["masked-ce"]) == pytest.approx(expected, rel=1e-12, abs=0)


def test_masked_balanced_ce_with_class_weights_by_hand() -> None:
    w = [0.1, 0.3, 0.6]
    expected = [w[_pixel(i)[1]] * _ce(i) if _correct(i) else 0.0 for i in range(3)]
    loss = masked_balanced_ce_with(w)
    assert _call(loss) == pytest.approx(expected, rel=1e-12, abs=0)
    # as SEA's code computes it: cross_entropy(weight=w) times the mask of the correctly classified pixels
    theirs = F.cross_entropy(LOGITS, LABELS, weight=torch.tensor(w, dtype=torch.float64), reduction="none")
    theirs = theirs * (LOGITS.argmax(1) == LABELS)
    assert torch.allclose(loss(LOGITS, LABELS, valid=ALL, targeted=False, t=0, steps=1), theirs, rtol=1e-12, atol=0)
    # targeted: the pixels not yet on target count (here pixel 2 only)
    assert _call(loss, targeted=True) == pytest.approx([0.0, 0.0, w[2] * _ce(2)], rel=1e-12, abs=0)
    # a tensor, a tuple and the command line's string give the same loss
    for same in (torch.tensor(w), tuple(w), "0.1+0.3+0.6"):
        assert _call(masked_balanced_ce_with(same)) == pytest.approx(expected, rel=1e-6)


def test_masked_balanced_ce_per_image_weights_by_hand() -> None:
    # labels 0, 0, 1 (pixel 2 now labelled 1: still wrong, predicted 0): class 0 twice, class 1 once, 2 classes
    labels = torch.tensor([[[0, 0, 1]]])
    n, present = 3, 2
    counts = {0: 2, 1: 1}
    z = [[float(LOGITS[0, c, 0, i]) for c in range(3)] for i in range(3)]
    expected = []
    for i, y in enumerate([0, 0, 1]):
        ce = math.log(sum(math.exp(v) for v in z[i])) - z[i][y]
        correct = max(range(3), key=lambda c: z[i][c]) == y
        expected.append(n / (present * counts[y]) * ce if correct else 0.0)
    assert expected[1] == 0.0  # pixel 1 predicted 1, labelled 0
    assert _call(LOSSES["masked-balanced-ce"], labels=labels) == pytest.approx(expected, rel=1e-12, abs=0)


def test_js_by_hand() -> None:
    expected = []
    for i in range(3):
        z, y = _pixel(i)
        e = [math.exp(v) for v in z]
        p = [v / sum(e) for v in e]
        q = [1.0 if c == y else 0.0 for c in range(3)]
        m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
        kl_pm = sum(a * math.log(a / c) for a, c in zip(p, m, strict=True) if a > 0)
        kl_qm = sum(a * math.log(a / c) for a, c in zip(q, m, strict=True) if a > 0)
        expected.append((kl_pm + kl_qm) / 2)
    assert _call(LOSSES["js"]) == pytest.approx(expected, rel=1e-12, abs=0)


def test_class_weights_from_labels_formula() -> None:
    maps = torch.tensor([[[0, 0, 0, 0], [0, 0, 1, 1]], [[2, 255, 255, 0], [0, 0, 0, 0]]])  # counts 11, 2, 1, 0
    w = class_weights_from_labels(maps, 4)
    inv = [1 / 11, 1 / 2, 1 / 1]
    assert w.dtype == torch.float64 and w.shape == (4,)
    assert w.tolist() == pytest.approx([v / sum(inv) for v in inv] + [0.0], rel=1e-12)
    assert float(w.sum()) == pytest.approx(1.0, rel=1e-12)
    # a data set streamed in batches gives the same weights as all of it at once
    assert torch.equal(class_weights_from_labels(iter([maps[:1], maps[1], maps[1:, :1]]), 4),
                       class_weights_from_labels(torch.cat([maps[:1].flatten(), maps[1].flatten(),
                                                            maps[1:, :1].flatten()]), 4))  # fmt: skip
    # ignore_index of another value
    assert class_weights_from_labels(torch.tensor([[0, 1, 1, 7]]), 2, ignore_index=7).tolist() == pytest.approx(
        [2 / 3, 1 / 3], rel=1e-12
    )


def test_class_weights_errors() -> None:
    with pytest.raises(InputError, match="outside 0..2"):
        class_weights_from_labels(torch.tensor([[0, 3]]), 3)
    with pytest.raises(InputError, match="no counted pixel"):
        class_weights_from_labels(torch.full((2, 2), 255), 3)
    with pytest.raises(TypeError, match="integer tensors"):
        class_weights_from_labels(torch.zeros(2, 2), 3)
    with pytest.raises(InputError, match="num_classes"):
        class_weights_from_labels(torch.zeros(2, 2, dtype=torch.long), 0)
    assert check_class_weights(None) is None
    parsed = check_class_weights("0.5, 1.5")
    assert parsed is not None and parsed.tolist() == [0.5, 1.5]
    for bad, match in (
        ([0.5, -1.0], ">= 0"), ([float("nan"), 1.0], "finite"), ([0.0, 0.0], "not all 0"), ([], "no weight"),
        ("a+b", "numbers separated"), (torch.ones(2, 2), "1-D"), ({"a": 1}, "one number per class"),
        ([True, False], "one number per class"),
    ):  # fmt: skip
        with pytest.raises(InputError, match=match):
            check_class_weights(bad)


def test_wrong_number_of_class_weights(tiny_model: sa.PixelModel) -> None:
    x = random_images(1, H, W, seed=1)
    with pytest.raises(InputError, match="3 weights but the model has 5 classes"):
        sea(tiny_model, x, tiny_model.predict(x), eps=4 / 255, steps=4, class_weights=[0.2, 0.3, 0.5])


# --------------------------------------------------------------------------------------------------------------------
# 2. the radius schedule and the checkpoints


def test_sea_schedule() -> None:
    assert SEA.sea_schedule(300, 8.0) == [(90, 16.0), (90, 12.0), (120, 8.0)]
    assert SEA.sea_schedule(10, 4.0) == [(3, 8.0), (3, 6.0), (4, 4.0)]
    assert [k for k, _ in SEA.sea_schedule(1, 1.0)] == [0, 0, 1]
    assert [k for k, _ in SEA.sea_schedule(4, 1.0)] == [1, 1, 2]
    for n in range(1, 400):
        lengths = [k for k, _ in SEA.sea_schedule(n, 1.0)]
        assert sum(lengths) == n and lengths[0] == lengths[1] == int(0.3 * n) and lengths[2] >= 1, n
    with pytest.raises(InputError, match="steps"):
        SEA.sea_schedule(0, 1.0)


def checkpoints_by_counter(n: int) -> list[int]:
    """SEA's code counts iterations since the last check and checks when the count reaches k, then lowers k."""
    k, k_min, dec = max(int(0.22 * n), 1), max(int(0.06 * n), 1), max(int(0.03 * n), 1)
    out, counter = [0], 0
    for i in range(n):
        counter += 1
        if counter == k:
            out.append(i + 1)
            counter, k = 0, max(k - dec, k_min)
    return out


def test_sea_checkpoints() -> None:
    assert SEA.sea_checkpoints(90) == [0, 19, 36, 51, 64, 75, 84]
    for n in (1, 2, 3, 4, 7, 10, 36, 90, 120, 300):
        assert SEA.sea_checkpoints(n) == checkpoints_by_counter(n), n


# --------------------------------------------------------------------------------------------------------------------
# 3. agreement with a plain re-statement of SEA's code (Linf, one image, no ignored pixels, in [0, 1] units)


def _image_mean(pix: Tensor) -> Tensor:
    return pix.flatten(1).mean(1)


def reference_stage(
    model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, radius: float, n: int,
    loss: Callable[[Tensor, Tensor], Tensor], start: Tensor,
) -> Tensor:  # fmt: skip
    """One ``apgd_train`` call as in their code: the gradient of ``loss``, step control and the point to go back to
    by the mean cross-entropy, the kept point the lowest accuracy (the latest on a tie), early stop at accuracy 0."""
    step = torch.full((x.shape[0], 1, 1, 1), 2 * radius, dtype=x.dtype)
    k, k_min, dec = max(int(0.22 * n), 1), max(int(0.06 * n), 1), max(int(0.03 * n), 1)

    def evaluate(z: Tensor, with_grad: bool) -> tuple[Tensor, Tensor | None, Tensor]:
        z = z.clone().requires_grad_(True)
        logits = model(z)
        grad = torch.autograd.grad(_image_mean(loss(logits, y)).sum(), z)[0] if with_grad else None
        acc = (logits.argmax(1) == y).to(x.dtype).flatten(1).mean(1)
        return _image_mean(F.cross_entropy(logits, y, reduction="none")).detach(), grad, acc.detach()

    x_adv = start.clone()
    f, grad, acc = evaluate(x_adv, True)
    assert grad is not None
    kept, x_best, grad_best, f_best = x_adv.clone(), x_adv.clone(), grad.clone(), f.clone()
    history = torch.zeros(n, x.shape[0], dtype=x.dtype)  # still zero where not yet written
    f_best_check, halved_check, counter = f_best.clone(), torch.ones_like(f_best, dtype=torch.bool), 0
    x_old = x_adv.clone()
    for i in range(n):
        momentum, x_old = x_adv - x_old, x_adv.clone()
        a = 0.75 if i > 0 else 1.0
        z = torch.min(torch.max(x_adv + step * grad.sign(), x - radius), x + radius).clamp(0, 1)
        x_adv = torch.min(torch.max(x_adv + a * (z - x_adv) + (1 - a) * momentum, x - radius), x + radius).clamp(0, 1)
        f, new_grad, now = evaluate(x_adv, i < n - 1)
        grad = grad if new_grad is None else new_grad
        better = now <= acc
        acc = torch.minimum(acc, now)
        kept[better] = x_adv[better]
        history[i] = f
        up = f > f_best
        x_best[up], grad_best[up], f_best[up] = x_adv[up], grad[up], f[up]
        counter += 1
        if counter == k:
            rises = sum((history[i - c] > history[i - c - 1]).to(x.dtype) for c in range(k))
            halve = (rises <= 0.75 * k) | (~halved_check & (f_best_check >= f_best))
            halved_check, f_best_check = halve, f_best.clone()
            step[halve] /= 2
            x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
            counter, k = 0, max(k - dec, k_min)
        if float(acc.sum()) == 0:
            break
    return kept


def reference_sea(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    eps: float,
    n: int,
    loss: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Their ``apgd_largereps`` without the random start: three stages, each from the last one's kept point."""
    point = x.clone()
    lengths = [int(0.3 * n), int(0.3 * n)]
    for k, radius in zip([*lengths, n - sum(lengths)], (2 * eps, 1.5 * eps, eps), strict=True):
        point = (x + (point - x).clamp(-radius, radius)).clamp(0, 1)
        if k > 0:
            point = reference_stage(model, x, y, radius, k, loss, point)
    return point


def _their_mask_ce(logits: Tensor, y: Tensor, weight: Tensor | None = None) -> Tensor:
    return F.cross_entropy(logits, y, weight=weight, reduction="none") * (logits.argmax(1) == y)


def _their_js(logits: Tensor, y: Tensor) -> Tensor:
    p = logits.softmax(1)
    q = F.one_hot(y, logits.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
    m = (p + q) / 2
    return ((F.kl_div(m.log(), p, reduction="none") + F.kl_div(m.log(), q, reduction="none")) / 2).sum(1)


WEIGHTS = [0.1, 0.3, 0.2, 0.25, 0.15]
THEIR_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "masked-ce": _their_mask_ce,
    "masked-balanced-ce": functools.partial(_their_mask_ce, weight=torch.tensor(WEIGHTS, dtype=torch.float64)),
    "js": _their_js,
}


@pytest.mark.parametrize("loss", sorted(THEIR_LOSSES))
@pytest.mark.parametrize(("n", "eps"), [(10, 4), (23, 8)])
def test_matches_a_restatement_of_their_code(tiny_model: sa.PixelModel, loss: str, n: int, eps: int) -> None:
    x = random_images(B, H, W, seed=21)
    y = tiny_model.predict(x)
    ours = sea(tiny_model, x, y, eps=eps / 255, steps=n, losses=(loss,), class_weights=WEIGHTS, random_start=False)
    for i in range(B):  # one image at a time: their early stop waits for the whole batch
        theirs = reference_sea(tiny_model, x[i : i + 1], y[i : i + 1], eps / 255, n, THEIR_LOSSES[loss])
        assert levels(ours[i : i + 1] - theirs) < 1e-9, (i, levels(ours[i : i + 1] - theirs))


@pytest.mark.parametrize("loss", sorted(THEIR_LOSSES))
def test_matches_their_code_with_early_stops(plane_model: sa.PixelModel, loss: str) -> None:
    x = random_images(B, H, W, seed=22)
    y = plane_model.predict(x)
    eps = torch.tensor([153.0, 2.0, 140.0], dtype=torch.float64) / 255  # images 0 and 2 reach accuracy 0
    weights = [0.3, 0.7]
    their_loss = functools.partial(_their_mask_ce, weight=torch.tensor(weights, dtype=torch.float64))
    ours = sea(plane_model, x, y, eps=eps, steps=20, losses=(loss,), class_weights=weights, random_start=False)
    assert accuracy(plane_model, ours, y)[[0, 2]].tolist() == [0.0, 0.0]
    assert float(accuracy(plane_model, ours, y)[1]) > 0
    for i in range(B):
        fn = their_loss if loss == "masked-balanced-ce" else THEIR_LOSSES[loss]
        theirs = reference_sea(plane_model, x[i : i + 1], y[i : i + 1], float(eps[i]), 20, fn)
        assert levels(ours[i : i + 1] - theirs) < 1e-9, (i, levels(ours[i : i + 1] - theirs))


# --------------------------------------------------------------------------------------------------------------------
# 4. the attack family's properties


def test_conformance(tiny_model: sa.PixelModel) -> None:
    model, net = tiny_model, tiny_model.net
    net.train()  # the caller's mode, restored
    next(net.parameters()).requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = random_images(B, H, W, seed=1)
    labels = model.predict(x)
    labels[:, 0, :3] = 255
    mask = torch.rand(B, H, W, generator=torch.Generator().manual_seed(2)) > 0.4
    x0, labels0, mask0 = x.clone(), labels.clone(), mask.clone()

    adv = sea(model, x, labels, eps=4 / 255, steps=6, seed=0)
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert levels(adv - x) <= 4 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert not torch.equal(adv, x)

    adv_m = sea(model, x, labels, eps=4 / 255, steps=6, seed=0, mask=mask)
    outside = ~mask[:, None].expand_as(x)
    assert torch.equal(adv_m[outside], x[outside]) and not torch.equal(adv_m, x)
    assert levels(adv_m - x) <= 4 + 1e-6

    per_image = torch.tensor([2.0, 6.0, 3.0], dtype=torch.float64)
    adv_e = sea(model, x, labels, eps=per_image / 255, steps=6, seed=0)
    for i, e in enumerate(per_image.tolist()):
        assert levels(adv_e[i] - x[i]) <= e + 1e-6
    assert levels(adv_e[1] - x[1]) > 2 + 1e-6

    assert torch.equal(x, x0) and torch.equal(labels, labels0) and torch.equal(mask, mask0)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())


def test_batch_equals_single_runs(tiny_model: sa.PixelModel, plane_model: sa.PixelModel) -> None:
    """With per-image seeds and budgets, also when some images stop early (the plane model at large budgets)."""
    seeds = [11, 12, 13]
    for model, eps_levels in ((tiny_model, (3.0, 5.0, 8.0)), (plane_model, (153.0, 3.0, 140.0))):
        x = random_images(B, H, W, seed=4)
        labels = model.predict(x)
        eps = torch.tensor(eps_levels, dtype=torch.float64) / 255
        batch = sea(model, x, labels, eps=eps, steps=8, seed=seeds)
        for i in range(B):
            single = sea(model, x[i : i + 1], labels[i : i + 1], eps=float(eps[i]), steps=8, seed=seeds[i])
            assert torch.equal(batch[i : i + 1], single), i
    assert accuracy(plane_model, batch, labels)[[0, 2]].tolist() == [0.0, 0.0]


def test_one_loss_is_its_part_of_the_full_run(tiny_model: sa.PixelModel) -> None:
    """Each loss's run does not depend on the other losses (its draws come from its name), and the full run keeps
    per image the loss of the lowest accuracy, the later one on a tie."""
    x = random_images(4, H, W, seed=5)
    labels = tiny_model.predict(x)
    seeds = [1, 2, 3, 4]
    full = sea(tiny_model, x, labels, eps=6 / 255, steps=7, seed=seeds)
    alone = {n: sea(tiny_model, x, labels, eps=6 / 255, steps=7, seed=seeds, losses=(n,)) for n in SEA.SEA_LOSSES}
    reordered = sea(tiny_model, x, labels, eps=6 / 255, steps=7, seed=seeds, losses=("js", "masked-ce"))
    acc = {n: accuracy(tiny_model, a, labels) for n, a in alone.items()}
    for i in range(4):
        # min() keeps the first of equals: iterate the losses backwards, so that a tie goes to the later loss
        pick = min(reversed(SEA.SEA_LOSSES), key=lambda n: float(acc[n][i]))
        assert torch.equal(full[i], alone[pick][i]), i
        pick = min(("masked-ce", "js"), key=lambda n: float(acc[n][i]))
        assert torch.equal(reordered[i], alone[pick][i]), i


def test_class_weights_only_change_masked_balanced_ce(tiny_model: sa.PixelModel) -> None:
    x = random_images(2, H, W, seed=6)
    labels = tiny_model.predict(x)
    run = functools.partial(sea, tiny_model, x, labels, eps=8 / 255, steps=9, seed=3)
    assert torch.equal(run(losses=("js",), class_weights=WEIGHTS), run(losses=("js",)))
    weighted = run(losses=("masked-balanced-ce",), class_weights=WEIGHTS)
    assert not torch.equal(weighted, run(losses=("masked-balanced-ce",)))
    assert torch.equal(weighted, run(losses=("masked-balanced-ce",), class_weights=torch.tensor(WEIGHTS)))


def test_random_start_and_seeds(tiny_model: sa.PixelModel) -> None:
    x = random_images(2, H, W, seed=7)
    labels = tiny_model.predict(x)
    run = functools.partial(sea, tiny_model, x, labels, eps=4 / 255, steps=5, losses=("js",))
    assert torch.equal(run(seed=1), run(seed=1))
    assert not torch.equal(run(seed=1), run(seed=2))
    assert torch.equal(run(random_start=False), run(random_start=False, seed=5))  # nothing else is random


# --------------------------------------------------------------------------------------------------------------------
# 5. passes against the documented cost


@contextmanager
def count_passes(model: sa.PixelModel) -> Iterator[list[int]]:
    """[forward, backward] passes through ``model.net``, counted by module hooks (as test_attack_family)."""
    counts = [0, 0]

    def on_forward(*_: object) -> None:
        counts[0] += 1

    def on_backward(*_: object) -> None:
        counts[1] += 1

    handles = [model.net.register_forward_hook(on_forward), model.net.register_full_backward_hook(on_backward)]
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize(("steps", "losses"), [(1, ("js",)), (3, ("js",)), (4, ("masked-ce",)), (10, None)])
def test_passes_equal_cost_without_early_stop(tiny_model: sa.PixelModel, steps: int, losses: Any) -> None:
    x = random_images(2, H, W, seed=8)
    labels = tiny_model.predict(x)
    opts: dict[str, Any] = {"steps": steps, "early_stop": False}
    if losses is not None:
        opts["losses"] = losses
    with count_passes(tiny_model) as passes:
        sea(tiny_model, x, labels, eps=4 / 255, seed=0, **opts)
    cost = sa.attacks.cost("sea", eps=4 / 255, **opts)
    assert cost.exact and tuple(passes) == (cost.forward, cost.backward), cost
    k = len(losses or SEA.SEA_LOSSES)
    stages = sum(1 for n, _ in SEA.sea_schedule(steps, 1.0) if n > 0)
    assert (cost.forward, cost.backward) == (k * (steps + stages), k * steps)


def test_passes_bounded_with_early_stop(tiny_model: sa.PixelModel, plane_model: sa.PixelModel) -> None:
    x = random_images(2, H, W, seed=8)
    bound = sa.attacks.cost("sea", eps=4 / 255, steps=10)
    assert not bound.exact
    labels = tiny_model.predict(x)
    with count_passes(tiny_model) as passes:
        sea(tiny_model, x, labels, eps=4 / 255, steps=10, seed=0)  # too small a budget to stop
    assert tuple(passes) == (bound.forward, bound.backward)
    labels = plane_model.predict(x)
    with count_passes(plane_model) as passes:
        adv = sea(plane_model, x, labels, eps=153 / 255, steps=10, seed=0)  # large enough: both images stop
    assert float(accuracy(plane_model, adv, labels).max()) == 0
    assert 0 < passes[0] < bound.forward and 0 < passes[1] < bound.backward
    assert sa.attacks.cost("sea", eps=8 / 255) == sa.attacks.Cost(forward=909, backward=900, exact=False)


# --------------------------------------------------------------------------------------------------------------------
# 6. errors and the registry


def test_errors(tiny_model: sa.PixelModel) -> None:
    x = random_images(1, H, W, seed=9)
    labels = tiny_model.predict(x)
    run = functools.partial(sea, tiny_model, x, labels, eps=4 / 255)
    with pytest.raises(InputError, match="untargeted only"):
        run(targeted=True)
    for opts, match in (
        ({"losses": ("nope",)}, "unknown loss 'nope'"), ({"losses": ()}, "lists no loss"),
        ({"losses": ("js", "js")}, "twice"), ({"losses": "js"}, "list of loss names"),
        ({"steps": 0}, "steps must be an integer >= 1"), ({"random_start": 1}, "random_start"),
        ({"early_stop": "yes"}, "early_stop"), ({"class_weights": [-1.0] * 5}, ">= 0"),
        ({"step_size": 2.0}, "exceeds 1"),
    ):  # fmt: skip
        with pytest.raises(InputError, match=match):
            run(**opts)
    info = sa.attacks.info("sea")
    assert info.only == "untargeted" and info.seeded and info.summary.startswith("SEA")
    with pytest.raises(AttackError, match="untargeted only"):
        check_goal("sea", {}, targeted=True)
    check_goal("sea", {}, targeted=False)
    for opts, match in (
        ({"losses": ("nope",)}, "unknown loss"), ({"losses": ()}, "lists no loss"), ({"steps": 0}, "at least"),
        ({"class_weights": "1+x"}, "numbers separated"), ({"early_stop": 1}, "true/false"),
    ):  # fmt: skip
        with pytest.raises(AttackError, match=match):
            sa.attacks.check_options("sea", opts)
    assert sa.attacks.parse_option("sea", "losses", "masked-ce+js") == ("masked-ce", "js")
    assert sa.attacks.check_options("sea", {"losses": ["js"], "class_weights": "0.5+0.5"}) == {
        "losses": ("js",), "class_weights": "0.5+0.5",
    }  # fmt: skip


def test_step_size_scales_with_the_stage_radius(tiny_model: sa.PixelModel) -> None:
    """``step_size`` is the last stage's initial step; the default is 2 eps: the same run when given explicitly."""
    x = random_images(2, H, W, seed=10)
    labels = tiny_model.predict(x)
    run = functools.partial(sea, tiny_model, x, labels, eps=4 / 255, steps=10, seed=1)
    assert torch.allclose(run(), run(step_size=8 / 255), rtol=0, atol=1e-12)
    assert not torch.equal(run(), run(step_size=1 / 255))


# --------------------------------------------------------------------------------------------------------------------
# 7. apgd unchanged by the shared loop: the loop as it was before ``apgd_loop``, restated, bit for bit


def apgd_before(model: Any, images: Tensor, labels: Tensor, *, eps: Any, targeted: bool = False, steps: int = 100,
                step_size: float | None = None, mask: Tensor | None = None, loss: str = "ce", restarts: int = 1,
                random_start: bool = True, best: bool = True, seed: Any = None, eot: Any = None,
                eot_samples: int = 8) -> Tensor:  # fmt: skip
    pixel_loss = LOSSES[loss]
    problem = prepare(model, images, labels, eps=eps, targeted=targeted, mask=mask, ignore_index=255, eot=eot,
                      eot_samples=eot_samples, seed=seed)  # fmt: skip
    eta0 = 2 * problem.eps if step_size is None else problem.per_image(levels_of(step_size))
    marks = APGD.apgd_checkpoints(steps)[1:]
    kept: Best | None = None
    for r in range(restarts):
        problem.restart(r)
        x = problem.random_start() if random_start else torch.zeros_like(problem.base)
        f, grad, now = objective_and_grad(problem, x, pixel_loss, t=0, steps=steps, check=r == 0, predict=best)
        success = Best(x, now if now is not None else torch.zeros_like(f))
        x_max, f_max, g_max, eta, x_prev = x.clone(), f.clone(), grad.clone(), eta0.clone(), x
        rises, f_last, f_max_check = torch.zeros_like(f), f.clone(), f.clone()
        halved = torch.zeros_like(f, dtype=torch.bool)
        last = 0
        for k in range(steps):
            z = torch.clamp(x + eta * grad.sign(), problem.lo, problem.hi)
            a = 1.0 if k == 0 else 0.75
            x_prev, x = x, torch.clamp(x + a * (z - x) + (1 - a) * (x - x_prev), problem.lo, problem.hi)
            f, grad, now = objective_and_grad(problem, x, pixel_loss, t=k + 1, steps=steps, check=False, predict=best)
            if now is not None:
                success.update(x, now)
            rises += (f > f_last).to(f.dtype)
            f_last = f
            up = f > f_max
            u4 = up.view(-1, 1, 1, 1)
            x_max, g_max, f_max = torch.where(u4, x, x_max), torch.where(u4, grad, g_max), torch.where(up, f, f_max)
            if k + 1 in marks:
                halve = APGD.halving(rises, k + 1 - last, halved, f_max, f_max_check)
                halved, f_max_check, last = halve, f_max.clone(), k + 1
                rises.zero_()
                h4 = halve.view(-1, 1, 1, 1)
                eta, x, grad = torch.where(h4, eta / 2, eta), torch.where(h4, x_max, x), torch.where(h4, g_max, grad)
        delta, key = (success.delta, success.score) if best else (x_max, f_max)
        if kept is None:
            kept = Best(delta, key)
        else:
            kept.update(delta, key)
    assert kept is not None
    return problem.adv(kept.delta)


APGD_CASES: list[dict[str, Any]] = [
    {"steps": 12, "seed": [1, 2, 3], "mask": True},
    {"steps": 12, "random_start": False, "best": False, "mask": True},
    {"steps": 9, "restarts": 2, "seed": 7},
    {"steps": 9, "restarts": 2, "best": False, "seed": 7},
    {"steps": 10, "step_size": 3 / 255, "seed": 0, "loss": "js"},
    {"steps": 15, "targeted": True, "seed": 4, "loss": "masked-ce"},
    {"steps": 15, "seed": 3, "loss": "segpgd", "eps": torch.tensor([2.0, 5.0, 9.0], dtype=torch.float64) / 255},
    {"steps": 1, "seed": 3, "loss": "balanced-ce"},
    {"steps": 6, "seed": [1, 2, 3], "eot": "noise:2,jpeg:75", "eot_samples": 2},
]


@pytest.mark.parametrize("opts", APGD_CASES, ids=[str(i) for i in range(len(APGD_CASES))])
def test_apgd_unchanged(tiny_model: sa.PixelModel, opts: dict[str, Any]) -> None:
    x = random_images(B, H, W, seed=1)
    pred = tiny_model.predict(x)
    labels = (pred + 1) % 5 if opts.get("targeted") else pred
    opts = {"eps": 4 / 255, **opts}
    mask = torch.rand(B, H, W, generator=torch.Generator().manual_seed(2)) > 0.4 if opts.pop("mask", False) else None
    now = sa.attacks.apgd(tiny_model, x, labels, mask=mask, **opts)
    before = apgd_before(tiny_model, x, labels, mask=mask, **opts)
    assert torch.equal(now, before)


# --------------------------------------------------------------------------------------------------------------------
# 8. strength


def test_sea_at_least_as_strong_as_apgd_with_each_of_its_losses(tiny_model: sa.PixelModel) -> None:
    """SEA (its three losses, n iterations each) leaves a mean pixel accuracy no higher than APGD with any one of
    its losses at n iterations. One loss alone, SEA's shrinking radius is not stronger than plain APGD on these
    undefended tiny models (within a few tenths of a percent either way; the schedule targets robust models)."""
    x = random_images(4, H, W, seed=1)
    labels = tiny_model.predict(x)
    seeds = [1, 2, 3, 4]
    for eps, n in ((4, 10), (8, 20)):
        ours = float(
            accuracy(tiny_model, sea(tiny_model, x, labels, eps=eps / 255, steps=n, seed=seeds), labels).mean()
        )
        for loss in SEA.SEA_LOSSES:
            adv = sa.attacks.apgd(tiny_model, x, labels, eps=eps / 255, steps=n, seed=seeds, loss=loss)
            theirs = float(accuracy(tiny_model, adv, labels).mean())
            assert ours <= theirs, (eps, n, loss, ours, theirs)


def test_sea_fools_the_colour_model(colour_model: sa.PixelModel) -> None:
    x, _ = colour_scene(n=2)
    labels = colour_model.predict(x)
    small = accuracy(colour_model, sea(colour_model, x, labels, eps=1 / 255, steps=12, seed=0), labels)
    large = accuracy(colour_model, sea(colour_model, x, labels, eps=16 / 255, steps=12, seed=0), labels)
    assert float(large.mean()) < float(small.mean()) - 0.1, (small.tolist(), large.tolist())
