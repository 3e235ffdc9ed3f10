"""Checks against gradient masking (Carlini et al. 2019) on a tiny model adversarially trained in the test
(segattack.robustness): accuracy falls far at a large budget, more iterations never raise robust accuracy, a transfer
attack from the clean model is weaker than the white-box attack, uniform noise of the same eps barely lowers accuracy.

The trained-model tests share one module-scoped fixture (two tiny trainings of 60 steps and one ``masking_checks``
call: about 20 s on an idle 2-core machine, minutes on a loaded one) and are marked slow; the fast tests run the same
checks' logic, exactness and refusals on an untrained tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from segattack.errors import InputError
from segattack.models import PixelModel
from segattack.robustness import MaskingChecks, masking_checks, noise_images, pixel_accuracy_of
from segattack.train import train
from segattack.zoo import ARCHITECTURES
from tests.test_adversarial_training import _held_out
from tests.test_train import EasyScenes, tiny_config


def _model(result_path: Path, net: torch.nn.Module) -> PixelModel:
    card = json.loads(result_path.read_text())
    return PixelModel(net, mean=card["mean"], std=card["std"], num_classes=19)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[MaskingChecks, MaskingChecks]:
    """The tiny model of test_adversarial_training trained 60 steps clean and adversarially (PGD-3 at eps 16/255,
    every image, seed 1), and the checks at eps 16/255 (the training eps) and 128/255 on 16 held-out scenes: on the
    robust model with the clean one as the transfer source, and on the clean model alone."""
    tmp = tmp_path_factory.mktemp("masking")
    data, val = EasyScenes(32), EasyScenes(4, seed=1)
    models = {}
    for name, extra in (("clean", {}), ("adv", {"adversarial": "pgd", "adv_eps": 16, "adv_steps": 3})):
        config = tiny_config(tmp / name, steps=60, dropout=0.0, log_every=10, seed=1, **extra)
        result = train(config, train_data=data, val_data=val)
        assert result.export_path is not None
        models[name] = _model(result.export_path, result.net)
    images, labels = _held_out(16)
    robust = masking_checks(models["adv"], images, labels, eps=16 / 255, large_eps=128 / 255, source=models["clean"])
    clean = masking_checks(models["clean"], images, labels, eps=16 / 255, large_eps=128 / 255)
    return robust, clean


# Measured here (seed 1; 2026-12-06, 2-core CPU): robust model clean 0.914, PGD at eps 16 with 5/20/50 steps
# 0.881/0.859/0.851, at 128/255 0.481, noise 0.914, transfer from the clean model 0.914; the clean model falls from
# 0.895 to 0.548 at eps 16.


@pytest.mark.slow
def test_accuracy_falls_far_at_a_large_budget(trained: tuple[MaskingChecks, MaskingChecks]) -> None:
    # Not to near 0: on these three-colour scenes PGD-50 leaves 0.48 of the pixels correct at 128/255 and APGD-CE-50
    # 0.20 even unbounded (255/255): the sign steps drive 42% of the pixels to 0 or 1, far from the three training
    # colours, where this tiny net still says the true class with a margin of about 3 logits (see the report of
    # issue 23). The bound asserts what holds reliably: well under the white-box accuracy and under 0.6 of clean.
    robust, _ = trained
    assert robust.large < 0.6 * robust.clean and robust.large < robust.white_box - 0.25, robust


@pytest.mark.slow
def test_more_iterations_never_raise_robust_accuracy(trained: tuple[MaskingChecks, MaskingChecks]) -> None:
    robust, clean = trained
    for checks in (robust, clean):
        # exact: one step size and the same seeds, so the 5-step run's iterates are the 20-step run's first ones, and
        # the best iterate keeps the lowest per-image accuracy seen
        assert list(checks.by_steps) == sorted(checks.by_steps, reverse=True), checks
    assert robust.by_steps[-1] < robust.by_steps[0]  # the later iterations do find more


@pytest.mark.slow
def test_a_transfer_attack_from_the_clean_model_is_weaker(trained: tuple[MaskingChecks, MaskingChecks]) -> None:
    robust, _ = trained
    assert robust.transfer is not None and robust.transfer > robust.white_box + 0.03, robust


@pytest.mark.slow
def test_uniform_noise_barely_lowers_accuracy(trained: tuple[MaskingChecks, MaskingChecks]) -> None:
    robust, clean = trained
    for checks in (robust, clean):
        assert checks.clean - checks.noise < 0.25 * (checks.clean - checks.white_box), checks
        assert checks.clean - checks.noise < 0.01, checks
    assert robust.failures(large_bound=0.6) == [], robust.failures(large_bound=0.6)


@pytest.mark.slow
def test_the_robust_model_is_more_robust_than_the_clean_one(trained: tuple[MaskingChecks, MaskingChecks]) -> None:
    robust, clean = trained
    assert robust.clean - robust.white_box < 0.5 * (clean.clean - clean.white_box), (robust, clean)


# --- fast: an untrained tiny model ---------------------------------------------------------------------------------


def _untrained() -> tuple[PixelModel, Tensor, Tensor]:
    torch.manual_seed(0)
    net = ARCHITECTURES["fcn8s"](19, width=1 / 16, batch_norm=True).eval()
    images, labels = _held_out(4)
    return PixelModel(net, num_classes=19), images, labels


def test_checks_on_an_untrained_model_are_exact_and_leave_the_inputs() -> None:
    model, images, labels = _untrained()
    before = images.clone(), labels.clone()
    checks = masking_checks(model, images, labels, eps=8 / 255, large_eps=64 / 255, steps=(1, 3, 6), source=model)
    assert torch.equal(images, before[0]) and torch.equal(labels, before[1])
    assert checks.steps == (1, 3, 6) and list(checks.by_steps) == sorted(checks.by_steps, reverse=True)
    # the transfer attack from the model itself is the white-box attack (same seeds, steps and step size)
    assert checks.transfer == checks.white_box
    assert any("transfer" in f for f in checks.failures(large_bound=1.0))
    again = masking_checks(model, images, labels, eps=8 / 255, large_eps=64 / 255, steps=(1, 3, 6))
    assert again.by_steps == checks.by_steps and again.noise == checks.noise and again.transfer is None


def test_noise_images_stay_in_the_ball_and_the_range() -> None:
    _, images, _ = _untrained()
    noisy = noise_images(images, eps=4 / 255, seed=3)
    assert (noisy - images).abs().max() <= 4 / 255 + 1e-6 and 0 <= noisy.min() and noisy.max() <= 1
    assert not torch.equal(noisy, images) and torch.equal(noisy, noise_images(images, eps=4 / 255, seed=3))


def test_pixel_accuracy_pools_counted_pixels() -> None:
    model, images, labels = _untrained()
    pred = model.predict(images)
    assert pixel_accuracy_of(model, images, pred) == 1.0
    other = torch.where(pred == 0, 1, 0)
    assert pixel_accuracy_of(model, images, other) == 0.0
    half = pred.clone()
    half[:2] = 255  # ignored: only the last two images count
    assert pixel_accuracy_of(model, images, half) == 1.0
    with pytest.raises(InputError, match="no counted pixel"):
        pixel_accuracy_of(model, images, torch.full_like(pred, 255))


def _checks(**kw: object) -> MaskingChecks:
    base: dict[str, object] = dict(
        eps=8 / 255, clean=0.9, steps=(5, 20, 50), by_steps=(0.6, 0.5, 0.5), large_eps=32 / 255, large=0.01,
        noise=0.89, transfer=0.8,
    )  # fmt: skip
    base.update(kw)
    return MaskingChecks(**base)  # type: ignore[arg-type]


def test_failures_name_each_check_that_fails() -> None:
    assert _checks().failures() == []
    assert _checks().white_box == 0.5
    (large,) = _checks(large=0.3).failures()
    assert "large budget 32/255" in large
    (rise,) = _checks(by_steps=(0.6, 0.5, 0.51)).failures()
    assert "rose from 0.5000 at 20 steps to 0.5100 at 50" in rise
    assert _checks(by_steps=(0.6, 0.5, 0.51)).failures(tolerance=0.02) == []
    (transfer,) = _checks(transfer=0.5).failures()
    assert "transfer" in transfer
    (noise,) = _checks(noise=0.7).failures()
    assert "noise" in noise
    assert len(_checks(large=0.3, transfer=0.4, noise=0.7).failures()) == 3


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"steps": (5, 5)}, "increasing"),
        ({"steps": (20, 5)}, "increasing"),
        ({"steps": (0, 5)}, "increasing"),
        ({"steps": ()}, "increasing"),
        ({"eps": 0.0}, "0 < eps < large_eps"),
        ({"large_eps": 4 / 255}, "0 < eps < large_eps"),
        ({"large_eps": 2.0}, "0 < eps < large_eps"),
    ],
)
def test_bad_arguments_are_refused(kw: dict[str, object], words: str) -> None:
    model, images, labels = _untrained()
    args: dict[str, object] = {"eps": 8 / 255, "large_eps": 64 / 255, "steps": (1, 2)}
    args.update(kw)
    with pytest.raises(InputError, match=words):
        masking_checks(model, images, labels, **args)  # type: ignore[arg-type]


def test_truth_of_the_wrong_shape_is_refused() -> None:
    model, images, labels = _untrained()
    with pytest.raises(InputError, match=r"truth must be \(B, H, W\)"):
        masking_checks(model, images, labels[:, :-1], eps=8 / 255, large_eps=64 / 255)
