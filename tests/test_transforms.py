"""Survival transforms (``segattack.transforms``): values against Pillow and against their definitions, the 8-bit
grid, reproducible noise, gradients of ``differentiable`` (BPDA for JPEG) and the spec parser's errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from segattack.transforms import SPEC_HELP, Transform, parse_transforms

from .conftest import random_images

ALL = ["identity", "jpeg:75", "jpeg:10", "resize:0.5", "resize:0.3", "blur:1", "blur:0.6", "noise:2"]


def smooth_images(b: int = 2, h: int = 20, w: int = 28, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """8-bit images with gradients and edges (JPEG and blur do something visible, nothing saturates everywhere)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(b, 3, 1, 1, generator=g) * 6
    x = 0.5 + 0.4 * torch.sin(8 * xx + 5 * yy + phase) + 0.05 * torch.randn(b, 3, h, w, generator=g)
    return ((x.clamp(0, 1) * 255).round() / 255).to(dtype)


def on_grid(x: Tensor) -> bool:
    levels = x.double() * 255
    return bool(((levels - levels.round()).abs() < 1e-4).all())


def one(spec: str) -> Transform:
    (t,) = parse_transforms(spec)
    return t


def test_identity_is_exact_even_off_the_8bit_grid() -> None:
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(3))  # not 8-bit representable
    y = Transform("identity")(x)
    assert torch.equal(y, x)
    assert y.data_ptr() != x.data_ptr()  # a copy: writing into the result cannot touch the input


@pytest.mark.parametrize("spec", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_range_grid_and_input_untouched(spec: str, dtype: torch.dtype) -> None:
    x = smooth_images(dtype=dtype)
    before = x.clone()
    y = one(spec)(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert not y.requires_grad
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert on_grid(y)
    assert torch.equal(x, before)
    if spec != "identity":
        assert not torch.equal(y, x), f"{spec} left the images unchanged"


@pytest.mark.parametrize("quality", [95, 75, 10])
def test_jpeg_equals_pillows_own_round_trip(quality: int) -> None:
    x = smooth_images(b=3)
    y = Transform("jpeg", quality)(x)
    for i in range(x.shape[0]):
        array = (x[i] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="JPEG", quality=quality)
        expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        got = (y[i] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(got, expected)


def test_lower_jpeg_quality_moves_the_image_further() -> None:
    x = smooth_images()
    err = {q: float((Transform("jpeg", q)(x) - x).abs().mean()) for q in (95, 50, 5)}
    assert err[95] < err[50] < err[5]


def test_resize_one_is_identity_up_to_quantisation() -> None:
    x8 = random_images(2, 10, 13, dtype=torch.float32)
    assert torch.equal(Transform("resize", 1.0)(x8), x8)
    off = torch.rand(2, 3, 10, 13, generator=torch.Generator().manual_seed(1))
    assert torch.equal(Transform("resize", 1.0)(off), (off * 255).round() / 255)


def test_resize_loses_detail_and_keeps_size() -> None:
    x = random_images(1, 16, 24, dtype=torch.float32)
    y = Transform("resize", 0.25)(x)
    assert y.shape == x.shape
    # down by 4 and back up: neighbouring pixels become similar (a random image's neighbours are not)
    assert float((y[..., 1:] - y[..., :-1]).abs().mean()) < 0.5 * float((x[..., 1:] - x[..., :-1]).abs().mean())


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_blur_of_a_constant_image_is_constant(sigma: float) -> None:
    x = torch.full((2, 3, 15, 17), 77 / 255)
    assert torch.equal(Transform("blur", sigma)(x), x)


def test_blur_matches_a_direct_gaussian_at_an_interior_pixel() -> None:
    x = random_images(1, 21, 21, dtype=torch.float64)
    sigma, r = 1.5, 5  # ceil(3 * 1.5) = 5
    y = Transform("blur", sigma)(x)
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (d / sigma) ** 2)
    k2 = torch.outer(k, k) / k.sum() ** 2
    patch = x[0, :, 10 - r : 10 + r + 1, 10 - r : 10 + r + 1]
    direct = (patch * k2).sum((-2, -1))
    assert torch.equal(y[0, :, 10, 10], (direct * 255).round() / 255)


def test_blur_too_wide_for_the_image_says_so() -> None:
    with pytest.raises(ValueError, match="kernel radius of 9 pixels"):
        Transform("blur", 3.0)(torch.zeros(1, 3, 8, 8))


def test_noise_is_reproducible_from_the_generator_and_has_the_stated_std() -> None:
    grey = torch.full((4, 3, 32, 32), 128 / 255)
    t = Transform("noise", 4.0)
    a = t(grey, generator=torch.Generator().manual_seed(7))
    b = t(grey, generator=torch.Generator().manual_seed(7))
    c = t(grey, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    std_levels = float((a - grey).std() * 255)
    assert 3.8 < std_levels < 4.2  # 12288 samples of N(0, 4^2) rounded to whole levels: std ~ sqrt(16 + 1/12)


def test_noise_same_draw_for_clean_and_adversarial_images() -> None:
    clean = smooth_images()
    adv = ((clean * 255 + 3).clamp(0, 255)) / 255
    t = Transform("noise", 2.0)
    nc = t(clean, generator=torch.Generator().manual_seed(5)) - clean
    na = t(adv, generator=torch.Generator().manual_seed(5)) - adv
    inside = ((clean > 0.05) & (clean < 0.95) & (adv < 0.95)).expand_as(nc)  # where no clip acts
    assert torch.allclose(nc[inside], na[inside], atol=1.01 / 255)  # the same draw, up to each one's rounding


def test_noise_uses_the_global_rng_without_a_generator() -> None:
    grey = torch.full((1, 3, 8, 8), 0.5)
    torch.manual_seed(11)
    a = Transform("noise", 2.0)(grey)
    torch.manual_seed(11)
    b = Transform("noise", 2.0)(grey)
    assert torch.equal(a, b)


@pytest.mark.parametrize("spec", ALL)
def test_differentiable_equals_call_and_has_a_gradient(spec: str) -> None:
    x = smooth_images(b=2, dtype=torch.float64)
    t = one(spec)
    y = t(x, generator=torch.Generator().manual_seed(0))
    xr = x.clone().requires_grad_(True)
    z = t.differentiable(xr, generator=torch.Generator().manual_seed(0))
    assert z.requires_grad
    assert torch.equal(z.detach(), y)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    (grad,) = torch.autograd.grad((z * w).sum(), xr)
    assert grad.shape == x.shape and bool(grad.abs().sum() > 0)
    if t.kind in ("identity", "jpeg"):  # jpeg by BPDA: the backward pass is the identity
        assert torch.equal(grad, w)


def test_blur_gradient_is_the_blur_adjoint() -> None:
    """Straight-through rounding: the gradient is that of the unrounded blur (a linear map, so <Ax, w> = <x, A*w>)."""
    x = smooth_images(b=1, h=12, w=12, dtype=torch.float64).requires_grad_(True)
    t = Transform("blur", 1.0)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    (grad,) = torch.autograd.grad((t.differentiable(x) * w).sum(), x)
    # the gradient of a blur is (up to the reflect border) a blur of w: it must be smoother than w itself
    assert float((grad[..., 1:] - grad[..., :-1]).abs().mean()) < 0.5 * float((w[..., 1:] - w[..., :-1]).abs().mean())
    assert torch.allclose(grad.sum(), w.sum(), rtol=1e-9)  # a normalised kernel with reflect padding keeps the mass


def test_noise_gradient_is_zero_where_the_clip_acts() -> None:
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    z = Transform("noise", 3.0).differentiable(x, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(z.sum(), x)
    drawn = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)  # the same draw
    clipped = drawn < 0  # 0 + negative noise: clipped to 0
    assert bool(clipped.any()) and bool((~clipped).any())
    assert bool((grad[clipped] == 0).all()) and bool((grad[~clipped] == 1).all())


def test_parse_transforms_canonical_names_and_round_trip() -> None:
    ts = parse_transforms(" jpeg:75 ,jpeg:50,resize:0.5,blur:1.0,noise:2,identity")
    assert [t.name for t in ts] == ["jpeg:75", "jpeg:50", "resize:0.5", "blur:1", "noise:2", "identity"]
    assert parse_transforms(",".join(t.name for t in ts)) == ts
    assert Transform("resize", 1 / 3).name == "resize:0.3333333333333333"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("", "empty transform"),
        ("jpeg:75,", "empty transform"),
        ("gamma:2", "unknown transform 'gamma:2'"),
        ("jpeg", r"needs a parameter \(jpeg:VALUE\)"),
        ("jpeg:high", "'high' is not a number"),
        ("jpeg:0", "integer from 1 to 100"),
        ("jpeg:101", "integer from 1 to 100"),
        ("jpeg:75.5", "integer from 1 to 100"),
        ("resize:0", r"resize factor must be in \(0, 1\]"),
        ("resize:2", r"resize factor must be in \(0, 1\]"),
        ("blur:0", "blur sigma must be a positive number"),
        ("blur:nan", "must be a finite number"),
        ("noise:-1", "noise std must be a positive number"),
        ("noise:inf", "must be a finite number"),
        ("identity:1", "unknown transform 'identity:1'"),
        ("jpeg:75,blur:1,jpeg:75.0", "lists jpeg:75 twice"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_transforms(spec)


def test_unknown_kind_lists_the_allowed_forms() -> None:
    with pytest.raises(ValueError) as err:
        parse_transforms("gamma:2")
    assert SPEC_HELP in str(err.value)


def test_bad_constructor_values_and_inputs() -> None:
    with pytest.raises(ValueError, match="identity takes no parameter"):
        Transform("identity", 3)
    with pytest.raises(ValueError, match="unknown transform 'crop'"):
        Transform("crop", 1)
    with pytest.raises(TypeError, match="a string such as"):
        parse_transforms(["jpeg:75"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Transform("blur", 1.0)(torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        Transform("jpeg", 75)(torch.zeros(1, 4, 8, 8))


def test_grey_jpeg() -> None:
    x = smooth_images()[:, :1]
    y = Transform("jpeg", 50)(x)
    assert y.shape == x.shape and on_grid(y) and not torch.equal(x, y)
