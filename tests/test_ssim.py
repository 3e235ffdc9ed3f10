"""SSIM (segattack.metrics.ssim, on pytorch-msssim): 1 for an image with itself, lower with more noise, equal to the
package's whole-image value (the crop to the changed pixels is exact), 8-bit rounding, checks; and in the rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ssim as reference_ssim

from segattack.experiment import ExperimentConfig, read_rows, run_experiment
from segattack.metrics import SSIM_SIGMA, SSIM_WINDOW, ssim

from .models_for_cli import ListDataset, street_image, tiny_fcn


def images(seed: int = 0, shape: tuple[int, ...] = (2, 3, 48, 64)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(shape, generator=g), 5, 1, 2)  # some structure to keep
    return (smooth * 255).round() / 255


def noisy(x: torch.Tensor, levels: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ((x + levels / 255 * torch.randn(x.shape, generator=g)).clamp(0, 1) * 255).round() / 255


def test_identical_is_one() -> None:
    x = images()
    assert ssim(x, x).tolist() == [1.0, 1.0]
    assert ssim(x, x.clone()).dtype == torch.float64


def test_more_noise_lower_ssim() -> None:
    x = images()
    values = [ssim(noisy(x, s), x) for s in (1, 2, 4, 8, 16)]
    for a, b in zip(values, values[1:], strict=False):
        assert bool((b < a).all())
    assert bool((values[0] < 1).all()) and bool((values[-1] > 0).all())


def test_equals_the_package_on_the_whole_image() -> None:
    x = images(shape=(3, 3, 40, 56))
    full = noisy(x, 6)
    local = x.clone()
    local[:, :, 10:18, 20:30] = full[:, :, 10:18, 20:30]  # a perturbation on a patch only (as restricted modes)
    local[1] = x[1]  # and one image left unchanged
    for adv in (full, local):
        want = reference_ssim(adv, x, data_range=1.0, size_average=False, win_size=SSIM_WINDOW, win_sigma=SSIM_SIGMA)
        assert ssim(adv, x).tolist() == pytest.approx(want.double().tolist(), abs=2e-6)
    assert float(ssim(local, x)[1]) == 1.0


def test_rounds_to_8_bit_and_small_images() -> None:
    x = images(shape=(1, 3, 16, 16))
    assert float(ssim(x + 0.3 / 255, x)[0]) == 1.0  # under half a level: the same 8-bit image
    tiny = images(shape=(1, 3, 6, 9))  # smaller than the 11-pixel window: the largest odd window that fits (5)
    assert float(ssim(tiny, tiny)[0]) == 1.0 and float(ssim(noisy(tiny, 8), tiny)[0]) < 1.0


def test_checks() -> None:
    x = images()
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(x[:1], x)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ssim(x[0], x[0])


def test_rows_carry_ssim(tmp_path: Path) -> None:
    data = ListDataset([street_image(i) for i in range(2)])
    rows = read_rows(
        run_experiment(
            tiny_fcn(), data, ExperimentConfig(classes=11, eps=[1, 4], figure1=0, save_images=True), tmp_path
        )
    )
    for r in rows:
        assert 0 < r["ssim"] < 1
    by = {(r["index"], r["eps"], r["mode"]): r["ssim"] for r in rows}
    for i in range(2):
        assert by[i, 4, "full"] < by[i, 1, "full"]  # more budget, less similar
        assert by[i, 4, "full"] < by[i, 4, "posthoc"]  # the perturbation restricted to the person: more similar
    for r in rows:  # the row's value is that of the saved 8-bit PNG against the original
        png = Image.open(tmp_path / "images" / f"eps{r['eps']}" / r["mode"] / f"{r['image_id']}.png")
        adv = torch.from_numpy(np.asarray(png).copy()).permute(2, 0, 1)[None].float() / 255
        x = torch.from_numpy(street_image(r["index"])).permute(2, 0, 1)[None].float() / 255
        assert r["ssim"] == pytest.approx(float(ssim(adv, x)[0]), abs=1e-6)
