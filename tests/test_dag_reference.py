"""``dag`` (``segattack.attacks.dag``) against adv_lib's DAG (``adv_lib.attacks.segmentation.dense_adversary.dag``,
adv-lib 0.2.8), the reference implementation of Xie et al. (ICCV 2017) this project claims to equal.

Corresponding settings: adv_lib's ``γ`` is ``step_size`` (both in [0, 1] image units), its ``adv_threshold`` is
``stop`` (both: an image stops once this share of its counted pixels is adversarial), its ``targeted`` and labels are
the same (pixels labelled 255 count for neither: adv_lib's default ``masks = labels < num_classes``, this project's
``ignore_index=255``), and its ``max_iter = m`` is ``steps = m - 1`` (see 1. below). The active pixels and the step
agree: adv_lib descends relu(difference of logits) summed over the counted pixels, whose gradient is nonzero exactly
where this implementation's pixel is active (untargeted: still predicted as its label, the step towards the largest
other logit; targeted: not yet on the target, the step from the current prediction's logit towards the target's),
and both normalise the step per image to L-inf gamma.

With these settings, on images whose pixels never leave [0, 1] and with a budget that cannot act, the two give the
same adversarial images to 1e-6, and the same sequence of images fed to the model, targeted and untargeted, with
per-image early stops at different iterations. Measured on 2026-12-06 with these tests' settings (largest gap of the
adversarial images over ``CASES``, and in ``test_float32``): 2.2e-16 in float64, 1.2e-7 in float32; a step size 0.1%
off moves them by 2e-4 to 6e-3, far above the tolerance.

Differences by design, each asserted below:

1. Iteration counting. adv_lib's ``max_iter = m`` evaluates m iterates (x_0 .. x_{m-1}) with m forward and m backward
   passes: its last gradient step is taken and never evaluated. ``steps = n`` evaluates n + 1 iterates (x_0 .. x_n)
   with n + 1 forward and n backward passes. So ``steps = max_iter - 1`` sees the same iterates, one backward pass
   fewer.
2. What comes back for an image that never reaches the threshold: adv_lib returns the clean image; this
   implementation the iterate of the highest success (``best=True``) or the last one (``best=False``). The iterates
   themselves are the same, so the last one equals adv_lib's last evaluated iterate.
3. The image range. adv_lib lets the perturbation r grow without bound and clamps x + r to [0, 1] inside the forward
   pass, so a pixel pushed past the range gets zero gradient there (and stays past it), and the L-inf normalisation
   is over the remaining pixels; this implementation clamps the perturbation itself to the range, takes the gradient
   at the clamped image (nonzero at saturated pixels) and normalises over all of them. The first two iterates still
   agree (the first step starts inside the range, and clamping r or x + r gives the same image); from the third
   they differ once a pixel was pushed past the range (measured on 2026-12-06 with the settings of
   ``test_they_part_where_the_range_clip_acts``, 8-bit random images with saturated pixels and gamma = 2/255: 8e-5 at
   the third iterate, 0.024 at the 20th).
4. The budget: adv_lib's DAG has none; this one clips to ``eps`` (eps=1: none). Equal when eps cannot act
   (eps >= steps * gamma).

Not compared: adv_lib's ``p`` (L2 step normalisation; this implementation has only L-inf), its ``masks`` given
explicitly other than as the counted pixels, this implementation's ``mask`` (pixels that may move; adv_lib has no
such option), and the floor under the gradient's norm (1e-8 in adv_lib, 1e-12 here: only a gradient of norm below
1e-8 tells them apart). adv_lib is loaded without its package (``tests/adv_lib_loader.py``); the tests skip, saying
why, where adv-lib 0.2.8 is not installed.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

import segattack as sa
from segattack.metrics import pixel_success

from .adv_lib_loader import load_adv_lib
from .conftest import TinyConvNet, count_passes, random_images

pytestmark = pytest.mark.usefixtures("one_thread")

B, H, W = 4, 16, 16


@pytest.fixture(scope="module")
def adv_lib_dag() -> Callable[..., Tensor]:
    module: types.ModuleType = load_adv_lib("attacks.segmentation.dense_adversary")
    return module.dag  # type: ignore[no-any-return]


def interior_images(dtype: torch.dtype = torch.float64, seed: int = 0) -> Tensor:
    """8-bit random images with every value in [64, 191] levels: 40 steps of 1.5 levels (60 levels) cannot leave
    [0, 255], so neither range clip acts."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(64, 192, (B, 3, H, W), generator=g).to(dtype) / 255).contiguous()


def labels_for(model: sa.PixelModel, x: Tensor, targeted: bool) -> Tensor:
    """Untargeted: the clean prediction; targeted: the clean second-best class in the left half, the third-best in
    the right half (so the targeted run does not follow the untargeted one). The first row's first 4 pixels are
    ignored (255) in every image."""
    with torch.no_grad():
        ranked = model(x).argsort(1, descending=True)
    if targeted:
        labels = torch.where(torch.arange(W) < W // 2, ranked[:, 1], ranked[:, 2])
    else:
        labels = ranked[:, 0].clone()
    labels[:, 0, :4] = 255
    return labels


class Seen:
    """A model wrapper that records every batch of images fed to the model (the attack's iterates)."""

    def __init__(self, model: sa.PixelModel) -> None:
        self.model = model
        self.images: list[Tensor] = []

    def __call__(self, images: Tensor) -> Tensor:
        self.images.append(images.detach().clone())
        return self.model(images)


def run_both(
    adv_lib_dag: Callable[..., Tensor], model: sa.PixelModel, x: Tensor, labels: Tensor, *, targeted: bool,
    gamma: float, max_iter: int, threshold: float, **ours: Any,
) -> tuple[Tensor, Tensor, Seen, Seen]:  # fmt: skip
    """adv_lib's DAG and this one with corresponding settings; returns both results and both recorders."""
    theirs_seen, ours_seen = Seen(model), Seen(model)
    theirs = adv_lib_dag(theirs_seen, x, labels, targeted=targeted, max_iter=max_iter, γ=gamma, adv_threshold=threshold)
    opts: dict[str, Any] = {"eps": 1.0, **ours}
    mine = sa.attacks.get("dag")(
        ours_seen, x, labels, targeted=targeted, steps=max_iter - 1, step_size=gamma, stop=threshold, **opts
    )
    return theirs, mine, theirs_seen, ours_seen


# (targeted, gamma, max_iter, threshold, eps): thresholds every image reaches, at different iterations; eps 1 (no
# budget) or exactly (max_iter - 1) * gamma = 19.5 levels, the farthest 39 steps of 0.5 levels can go (the clip cannot
# act)
CASES = [
    (False, 1.5 / 255, 40, 0.35, 1.0),
    (False, 0.5 / 255, 40, 0.1, 19.5 / 255),
    (True, 1.5 / 255, 40, 0.2, 1.0),
    (True, 0.5 / 255, 40, 0.03, 19.5 / 255),
]


@pytest.mark.parametrize(("targeted", "gamma", "max_iter", "threshold", "eps"), CASES)
def test_same_adversarial_images(
    adv_lib_dag: Callable[..., Tensor], tiny_model: sa.PixelModel, targeted: bool, gamma: float, max_iter: int,
    threshold: float, eps: float,
) -> None:  # fmt: skip
    """Every image reaches the threshold in both, at different iterations (adv_lib's batch of active images
    shrinks in more than one step), and the adversarial images are equal to 1e-6, with ``best`` on and off."""
    x = interior_images()
    labels = labels_for(tiny_model, x, targeted)
    theirs, mine, theirs_seen, _ = run_both(
        adv_lib_dag, tiny_model, x, labels, targeted=targeted, gamma=gamma, max_iter=max_iter, threshold=threshold,
        eps=eps,
    )  # fmt: skip
    reached = pixel_success(tiny_model.predict(theirs), labels, targeted=targeted)
    assert bool((reached >= threshold).all()), reached.tolist()
    sizes = [len(batch) for batch in theirs_seen.images]
    assert len(set(sizes)) >= 3 and sizes[-1] < B, sizes  # early stops at two or more different iterations
    assert torch.allclose(mine, theirs, rtol=0, atol=1e-6), (mine - theirs).abs().max().item()
    last = sa.attacks.get("dag")(
        tiny_model, x, labels, targeted=targeted, eps=eps, steps=max_iter - 1, step_size=gamma, stop=threshold,
        best=False,
    )  # fmt: skip
    assert torch.allclose(last, theirs, rtol=0, atol=1e-6)
    assert float((mine - x).abs().max()) <= (max_iter - 1) * gamma + 1e-12  # the budget could not act


@pytest.mark.parametrize("targeted", [False, True])
def test_same_iterates_when_the_threshold_is_not_reached(
    adv_lib_dag: Callable[..., Tensor], tiny_model: sa.PixelModel, targeted: bool
) -> None:
    """With a threshold of 1 no image stops: both feed the model the same m iterates (to 1e-6), adv_lib with m
    forward and m backward passes, this one with m forward and m - 1 backward (difference 1); adv_lib returns the
    clean images, this one its last iterate with ``best=False`` (difference 2)."""
    x = interior_images(seed=1)
    labels = labels_for(tiny_model, x, targeted)
    m, gamma = 12, 1.5 / 255
    with count_passes(tiny_model) as theirs_passes:
        theirs_seen = Seen(tiny_model)
        theirs = adv_lib_dag(theirs_seen, x, labels, targeted=targeted, max_iter=m, γ=gamma, adv_threshold=1.0)
    with count_passes(tiny_model) as ours_passes:
        ours_seen = Seen(tiny_model)
        last = sa.attacks.get("dag")(
            ours_seen, x, labels, targeted=targeted, eps=1.0, steps=m - 1, step_size=gamma, stop=1.0, best=False
        )
    assert (theirs_passes.forward, theirs_passes.backward) == (m, m)
    assert (ours_passes.forward, ours_passes.backward) == (m, m - 1)
    assert len(theirs_seen.images) == len(ours_seen.images) == m
    for t, (a, b) in enumerate(zip(theirs_seen.images, ours_seen.images, strict=True)):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), (t, (a - b).abs().max().item())
    assert torch.equal(theirs, x)  # adv_lib: no image reached the threshold, so the clean images
    assert torch.equal(last, ours_seen.images[-1])
    assert torch.allclose(last, theirs_seen.images[-1], rtol=0, atol=1e-6)
    assert float((last - x).abs().max()) > 10 / 255  # they went somewhere


def test_max_iter_is_steps_plus_one(adv_lib_dag: Callable[..., Tensor], tiny_model: sa.PixelModel) -> None:
    """The first iterate k at which an image reaches the threshold: adv_lib needs ``max_iter = k + 1`` (with
    ``max_iter = k`` it returns the clean image), this implementation ``steps = k`` (with ``k - 1`` it falls short)."""
    x = interior_images(seed=2)[:1]
    labels = labels_for(tiny_model, x, False)
    gamma, threshold = 1.5 / 255, 0.3
    seen = Seen(tiny_model)
    sa.attacks.get("dag")(seen, x, labels, targeted=False, eps=1.0, steps=60, step_size=gamma, stop=threshold)
    shares = [float(pixel_success(tiny_model.predict(a), labels, targeted=False)[0]) for a in seen.images]
    k = next(t for t, s in enumerate(shares) if s >= threshold)
    assert k >= 5, shares

    def ours(steps: int) -> float:
        adv = sa.attacks.get("dag")(
            tiny_model, x, labels, targeted=False, eps=1.0, steps=steps, step_size=gamma, stop=threshold
        )
        return float(pixel_success(tiny_model.predict(adv), labels, targeted=False)[0])

    assert ours(k) >= threshold > ours(k - 1)
    reached = adv_lib_dag(tiny_model, x, labels, max_iter=k + 1, γ=gamma, adv_threshold=threshold)
    short = adv_lib_dag(tiny_model, x, labels, max_iter=k, γ=gamma, adv_threshold=threshold)
    assert float(pixel_success(tiny_model.predict(reached), labels, targeted=False)[0]) >= threshold
    assert torch.equal(short, x)


def test_float32(adv_lib_dag: Callable[..., Tensor], tiny_model: sa.PixelModel) -> None:
    """The same network in float32 on float32 images: the same adversarial images to 1e-6 (measured: 1.2e-7, see the
    module docstring)."""
    net = TinyConvNet()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tiny_model.net.state_dict().items()})
    model = sa.PixelModel(net, mean=(0.4, 0.45, 0.5), std=(0.25, 0.25, 0.25))
    x = interior_images(torch.float32)
    labels = labels_for(model, x, False)
    theirs, mine, _, _ = run_both(
        adv_lib_dag, model, x, labels, targeted=False, gamma=1.5 / 255, max_iter=40, threshold=0.35
    )
    assert mine.dtype == theirs.dtype == torch.float32
    assert bool((pixel_success(model.predict(theirs), labels, targeted=False) >= 0.35).all())
    assert torch.allclose(mine, theirs, rtol=0, atol=1e-6), (mine - theirs).abs().max().item()


def test_they_part_where_the_range_clip_acts(adv_lib_dag: Callable[..., Tensor], tiny_model: sa.PixelModel) -> None:
    """On 8-bit random images with saturated pixels (0 and 255 levels), the first two iterates agree to 1e-6 and
    later ones do not: adv_lib clamps x + r in the forward pass (zero gradient past the range, r unbounded), this
    implementation clamps the perturbation (difference 3)."""
    x = random_images(2, H, W, seed=1)
    assert bool((x == 0).any()) and bool((x == 1).any())
    labels = tiny_model.predict(x)
    _, _, theirs_seen, ours_seen = run_both(
        adv_lib_dag, tiny_model, x, labels, targeted=False, gamma=2 / 255, max_iter=20, threshold=1.0
    )
    gaps = [float((a - b).abs().max()) for a, b in zip(theirs_seen.images, ours_seen.images, strict=True)]
    assert max(gaps[:2]) <= 1e-6, gaps
    assert gaps[-1] > 1e-3, gaps
    for a, b in zip(theirs_seen.images, ours_seen.images, strict=True):  # both stay in the image range
        assert float(a.min()) >= 0 and float(a.max()) <= 1 and float(b.min()) >= 0 and float(b.max()) <= 1
