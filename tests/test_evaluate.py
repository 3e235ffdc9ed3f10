from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segattack as sa
from segattack.cli import main
from segattack.evaluation import evaluate

from .models_for_cli import ListDataset, street_image, tiny_fcn, write_street_pngs


class Labelled(ListDataset):
    has_labels = True

    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray], bad: tuple[int, ...] = ()) -> None:
        super().__init__(images, bad)
        self.labels = labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, _ = super().__getitem__(index)
        return image, torch.from_numpy(self.labels[index])


def _data(n: int = 4, bad: tuple[int, ...] = ()) -> tuple[Labelled, sa.PixelModel, torch.Tensor]:
    model = tiny_fcn()
    images = [street_image(i) for i in range(n)]
    preds = model.predict(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255)
    labels = [p.numpy().copy() for p in preds]
    labels[0][:4] = 13  # some wrong ground truth (car where the model says sky)
    labels[1][:2] = 255  # and some ignored pixels
    return Labelled(images, labels, bad), model, preds


def test_matches_confusion_matrix_over_the_data_set() -> None:
    data, model, preds = _data()
    result = evaluate(model, data, num_classes=19, batch_size=3)
    truth = torch.stack([torch.from_numpy(lb) for lb in data.labels])
    expected = sa.confusion_matrix(preds, truth, num_classes=19)
    assert torch.equal(result.confusion, expected)
    assert result.images == 4 and result.skipped == []
    assert result.iou[13] == 0.0 and result.iou[8] == 1.0  # car only in (wrong) ground truth; vegetation exact
    assert result.miou == pytest.approx(float(sa.iou(expected).nanmean()))
    assert 0.9 < result.pixel_accuracy < 1.0


def test_batch_size_does_not_matter_and_unreadable_skipped() -> None:
    data, model, _ = _data(bad=(2,))
    one = evaluate(model, data, num_classes=19, batch_size=1)
    many = evaluate(model, data, num_classes=19, batch_size=4)
    assert torch.equal(one.confusion, many.confusion)
    assert one.skipped == ["img_2"] and one.images == 3


def test_errors() -> None:
    data, model, _ = _data()
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, data, num_classes=19, batch_size=0)
    unlabelled = ListDataset([street_image(0)])
    with pytest.raises(ValueError, match="no ground-truth"):
        evaluate(model, unlabelled, num_classes=19)


def test_cli_eval_on_folder_with_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = write_street_pngs(tmp_path / "images", n=3)
    labels = tmp_path / "labels"
    labels.mkdir()
    model = tiny_fcn()
    for i in range(3):
        x = torch.from_numpy(street_image(i)).permute(2, 0, 1)[None].float() / 255
        Image.fromarray(model.predict(x)[0].numpy().astype(np.uint8)).save(labels / f"img_{i}.png")
    out = tmp_path / "eval.json"
    code = main(
        ["eval", "--data", f"folder:{images}", "--labels", str(labels), "--model", "tests.models_for_cli:tiny_fcn",
         "--json", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0
    assert "mIoU 100.00%" in text and "person" in text
    result = json.loads(out.read_text())
    assert result["miou"] == 1.0 and result["images"] == 3 and result["iou"]["person"] == 1.0


def test_cli_eval_without_labels_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = write_street_pngs(tmp_path / "images", n=2)
    code = main(["eval", "--data", f"folder:{images}", "--model", "tests.models_for_cli:tiny_fcn"])
    assert code == 2
    assert "no ground-truth labels" in capsys.readouterr().err


def test_bf16_autocast_on_cpu_stays_close_to_float32() -> None:
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    data = sa.data.SyntheticStreets(split="val", size=(64, 128), length=4, seed=0)
    full = evaluate(model, data, num_classes=19, batch_size=2)
    half = evaluate(model, data, num_classes=19, batch_size=2, amp="bf16")
    assert half.images == full.images == 4
    assert half.confusion.sum() == full.confusion.sum()  # the same pixels counted
    assert abs(half.miou - full.miou) <= 0.02


def test_amp_values_are_checked() -> None:
    data, model, _ = _data()
    with pytest.raises(ValueError, match=r"fp16.*CUDA.*bf16"):
        evaluate(model, data, num_classes=19, amp="fp16")
    with pytest.raises(ValueError, match="amp must be"):
        evaluate(model, data, num_classes=19, amp="float8")


def test_autocast_runs_the_forward_in_the_chosen_dtype() -> None:
    data, model, _ = _data(n=2)
    seen: list[torch.dtype] = []
    model.net.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    evaluate(model, data, num_classes=19, amp="bf16")
    evaluate(model, data, num_classes=19)
    assert seen == [torch.bfloat16, torch.float32]


def test_void_output_is_left_out_of_the_mean_iou_but_counts_as_a_miss() -> None:
    """A 19+void model: void predictions are misses of the true class, and the void class's own IoU (always 0, as
    ground truth never holds it) does not pull the mean down (the Cityscapes rule: 19 classes evaluated)."""
    from segattack.evaluation import EvalResult

    cm = torch.zeros(3, 3, dtype=torch.int64)
    cm[0, 0], cm[0, 2] = 6, 2  # class 0: 6 right, 2 predicted void
    cm[1, 1] = 4  # class 1: all right
    with_void = EvalResult(confusion=cm, images=1)
    without = EvalResult(confusion=cm, images=1, void_classes=(2,))
    assert with_void.miou == pytest.approx((6 / 8 + 1 + 0) / 3)
    assert without.miou == pytest.approx((6 / 8 + 1) / 2)
    assert without.iou[0] == pytest.approx(6 / 8)  # the void pixels stay misses of class 0
    assert without.as_dict()["void_classes"] == [2]
