"""The fast path of ``PixelModel`` (``set_fast_path``: autocast, channels-last, torch.compile) and what it must not
change: the science (hidden and kept within 1 percentage point of float32 with bf16 on the shipped model), the 8-bit
exactness of the adversarial images, the dtypes a loss sees, and the model's state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import segattack as sa
from segattack.cli import main
from segattack.models import model_fingerprint
from segattack.pipeline import AttackSpec, HideGoal, attack_batch, measure

PERSON = 11


@pytest.fixture(scope="module")
def shipped() -> sa.PixelModel:
    return sa.zoo.load(sa.zoo.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def scenes() -> torch.Tensor:
    data = sa.data.SyntheticStreets(split="val", size=(256, 512), length=3, seed=0)
    return torch.stack([data[i][0] for i in range(3)]).float() / 255


def _hide_at_eps10(model: sa.PixelModel, images: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, float]]]:
    goal = HideGoal((PERSON,))
    out = attack_batch(model, images, attack=AttackSpec("illm"), goal=goal, eps=[10 / 255], modes=("full",))
    return out.advs["full"][0], measure(goal, out, "full", 0, num_classes=19)


def test_bf16_keeps_hidden_and_kept_within_one_point(shipped: sa.PixelModel, scenes: torch.Tensor) -> None:
    """The issue's tolerance: on CPU with bf16, hidden and kept at eps 10 within 1 percentage point of float32.

    Measured on the default ``fcn2s-synth-w8-r32`` on 2026-12-06 (this test's attack, these 3 scenes): with one
    thread, hidden 98.82% in float32 against 98.86% in bf16 and kept 98.76% against 98.44%; with two threads 98.83%
    against 99.73% and 98.51% against 98.45%, the per-scene figures moving by up to 2.8 points (a single image
    flipping, which docs/performance.md states). bf16 sums in another order with another number of threads, so the
    test runs on one, where the margin is widest. (Until 2026-12-06 it ran on ``fcn4s-synth-w8``, retired from the
    package.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32 = shipped
        bf16 = sa.zoo.load(sa.zoo.DEFAULT_MODEL).set_fast_path(amp="bf16")
        adv32, rows32 = _hide_at_eps10(fp32, scenes)
        adv16, rows16 = _hide_at_eps10(bf16, scenes)
    finally:
        torch.set_num_threads(threads)
    assert all(r["class_pixels"] > 0 for r in rows32)  # every scene has persons to hide
    for key in ("fooled", "preserved"):
        m32 = sum(r[key] for r in rows32) / len(rows32)
        m16 = sum(r[key] for r in rows16) / len(rows16)
        assert abs(m32 - m16) <= 0.01, (key, m32, m16)
    # Mixed precision changes the gradients (so some pixels' signs), not the arithmetic of the perturbation.
    assert not torch.equal(adv32, adv16)
    for adv in (adv32, adv16):
        levels = adv * 255  # the scenes are 8-bit images, so whole-level steps keep the images on the 8-bit grid
        assert torch.equal(levels, levels.round()) and torch.equal(adv, levels.round() / 255)
        assert ((levels - scenes * 255).round().abs().max()) <= 10
        assert adv.min() >= 0 and adv.max() <= 1


def test_amp_returns_float32_logits_and_gradients(shipped: sa.PixelModel) -> None:
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL).set_fast_path(amp="bf16")
    x = torch.rand(1, 3, 64, 128, requires_grad=True)
    logits = model(x)
    assert logits.dtype == torch.float32
    logits.logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0
    with torch.no_grad():
        ref = shipped(x)
    assert not torch.equal(logits.detach(), ref)  # autocast really ran in bf16
    torch.testing.assert_close(logits.detach(), ref, atol=0.5, rtol=0.1)
    assert "amp=bf16" in repr(model)


def test_channels_last_changes_layout_not_values_or_state(shipped: sa.PixelModel) -> None:
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    before = model_fingerprint(model)
    model.set_fast_path(channels_last=True)
    assert model_fingerprint(model) == before
    weight = next(p for p in model.net.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), shipped(x), atol=1e-4, rtol=1e-4)


def test_bad_amp_is_refused() -> None:
    with pytest.raises(ValueError, match="amp must be None, 'bf16' or 'fp16'"):
        sa.zoo.load(sa.zoo.DEFAULT_MODEL).set_fast_path(amp="fp32")


def test_fast_path_off_again_is_the_plain_model(shipped: sa.PixelModel) -> None:
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL).set_fast_path(amp="bf16").set_fast_path()
    x = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(model(x), shipped(x))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile needs cc")
def test_compile_gives_the_same_logits_and_state(shipped: sa.PixelModel) -> None:
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    before = model_fingerprint(model)
    model.set_fast_path(compile=True)
    assert model_fingerprint(model) == before and set(model.state_dict()) == set(shipped.state_dict())
    x = torch.rand(1, 3, 64, 128, requires_grad=True)
    out = model(x)
    with torch.no_grad():
        torch.testing.assert_close(out.detach(), shipped(x), atol=1e-4, rtol=1e-4)
    out.logsumexp(1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_cli_amp_is_recorded_and_a_resume_in_another_precision_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    common = ["run", "--data", "synthetic:2", "--size", "64x128", "--eps", "2", "--figure1", "0",
              "--out", str(out)]  # fmt: skip
    assert main([*common, "--amp", "bf16", "--channels-last"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert '"amp": "bf16"' in json.dumps(config)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["attack"] == "illm" for r in rows)
    capsys.readouterr()
    assert main(common) == 2  # float32 now: the gradients differ, so the finished rows are not this run's
    err = capsys.readouterr().err
    assert "amp" in err and len(err.strip().splitlines()) == 1
    assert main([*common, "--amp", "bf16"]) == 0  # channels-last alone changes no result: resumes
