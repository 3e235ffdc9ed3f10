"""The train package's seams: check_start says what train will do, every refusal is a SegattackError, and a training
step takes its images from loop.training_images alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

import segattack.train.loop as train_loop
from segattack.errors import ConfigError, SegattackError
from segattack.train import ConfigMismatchError, TrainConfig, check_start, train
from tests.test_train import EasyScenes, tiny_config


def test_check_start_says_resume_or_discard(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, steps=4, stop_at=2)
    assert check_start(config).resume_step is None
    train(config, train_data=EasyScenes(4), val_data=EasyScenes(2, seed=1))
    assert check_start(tiny_config(tmp_path, steps=4)) == train_loop.Start(resume_step=2)
    with pytest.raises(ConfigMismatchError, match=r"lr: 0.05 -> 0.1.*--overwrite"):
        check_start(tiny_config(tmp_path, steps=4, lr=0.1))
    start = check_start(tiny_config(tmp_path, steps=4, lr=0.1), overwrite=True)
    assert start.resume_step is None and start.discarded == ("lr: 0.05 -> 0.1",)


def test_config_refusals_are_segattack_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(out_dir=str(tmp_path), steps=2, warmup_steps=2)
    if not torch.cuda.is_available():
        with pytest.raises(SegattackError, match="CUDA is not available"):
            check_start(tiny_config(tmp_path, device="cuda"))


def test_a_step_trains_on_what_training_images_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, val = EasyScenes(8), EasyScenes(2, seed=1)
    seen: list[int] = []

    def grey(run: object, images: Tensor, labels: Tensor, step: int) -> Tensor:
        seen.append(step)
        assert images.min() >= 0 and images.max() <= 1 and labels.shape == (images.shape[0], *images.shape[2:])
        return torch.full_like(images, 0.5)

    clean = train(tiny_config(tmp_path / "clean", steps=3), train_data=data, val_data=val)
    monkeypatch.setattr(train_loop, "training_images", grey)
    other = train(tiny_config(tmp_path / "grey", steps=3), train_data=data, val_data=val)
    assert seen == [0, 1, 2]
    a, b = clean.net.state_dict(), other.net.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
