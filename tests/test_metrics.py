from __future__ import annotations

import math

import pytest
import torch

import segattack as sa


def test_hand_computed_case() -> None:
    clean = torch.tensor([[[11, 11, 11, 11], [0, 0, 1, 1]]])
    adv = torch.tensor([[[11, 0, 12, 1], [0, 2, 1, 1]]])
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    m = sa.hiding_metrics(clean, adv, class_id=11, target=target)
    assert m.fooled.tolist() == [0.75]  # 3 of 4 person pixels no longer person (rider counts as fooled)
    assert m.preserved.tolist() == [0.75]  # 3 of 4 background pixels unchanged
    assert m.target_hit.tolist() == [5 / 8]  # matches: (0,1), (0,3), (1,0), (1,2), (1,3)
    assert m.class_pixels.tolist() == [4]
    # hiding person and rider together: the pixel turned rider is not fooled
    m2 = sa.hiding_metrics(clean, adv, class_id=(11, 12), target=target)
    assert m2.fooled.tolist() == [0.5]


def test_absent_class_is_nan_and_counted_apart() -> None:
    clean = torch.tensor([[[0, 1], [1, 0]], [[11, 1], [1, 0]]])
    adv = torch.tensor([[[0, 1], [1, 1]], [[1, 1], [1, 0]]])
    m = sa.hiding_metrics(clean, adv, class_id=11)
    assert math.isnan(m.fooled[0]) and m.fooled[1] == 1.0
    assert m.preserved.tolist() == [0.75, 1.0]
    s = sa.summarize(m.fooled)
    assert (s.mean, s.count, s.missing) == (1.0, 1, 1)
    assert m.rows()[1] == {"fooled": 1.0, "preserved": 1.0, "target_hit": 1.0, "class_pixels": 1}


def test_default_target_and_all_hidden_image() -> None:
    clean = torch.tensor([[[11, 11], [11, 11]], [[11, 2], [2, 2]]])
    adv = torch.tensor([[[2, 2], [2, 2]], [[2, 2], [2, 2]]])
    m = sa.hiding_metrics(clean, adv, class_id=11)
    assert math.isnan(m.target_hit[0]) and math.isnan(m.preserved[0]) and m.fooled[0] == 1.0
    assert m.target_hit[1] == 1.0


def test_summary_population_std() -> None:
    s = sa.summarize(torch.tensor([0.2, 0.4, 0.6, float("nan")]))
    assert s.mean == pytest.approx(0.4) and s.std == pytest.approx(math.sqrt(0.08 / 3)) and s.missing == 1
    empty = sa.summarize([float("nan")])
    assert math.isnan(empty.mean) and empty.count == 0 and empty.missing == 1


def test_norms_and_psnr() -> None:
    x = torch.zeros(2, 3, 4, 4)
    adv = x.clone()
    adv[0, 0, 0, 0] = 10 / 255
    adv[0, 1, 1, 1] = 2 / 255
    n = sa.perturbation_norms(adv, x)
    assert n["linf"][0].item() == pytest.approx(10) and n["linf"][1] == 0
    assert n["l2"][0].item() == pytest.approx(math.sqrt(104))
    assert n["mean_abs"][0].item() == pytest.approx(12 / 48)
    p = sa.psnr(adv, x)
    assert p[0].item() == pytest.approx(10 * math.log10(48 / (104 / 255**2)))
    assert math.isinf(p[1])
    assert torch.equal(n["psnr"], p)  # the same PSNR from the norms' own difference


def test_confusion_matrix_and_iou() -> None:
    truth = torch.tensor([[0, 0, 1, 255], [2, 2, 2, 1]])
    pred = torch.tensor([[0, 1, 1, 2], [2, 2, 0, 1]])
    cm = sa.confusion_matrix(pred, truth, num_classes=4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    iou = sa.iou(cm)
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3]) and math.isnan(iou[3])
    assert iou.nanmean().item() == pytest.approx(5 / 9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: sa.hiding_metrics(
                torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long), class_id=1
            ),
            "differ in shape",
        ),
        (lambda: sa.hiding_metrics(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), class_id=1), "integer"),
        (
            lambda: sa.hiding_metrics(
                torch.zeros(1, 2, 2, dtype=torch.long),
                torch.zeros(1, 2, 2, dtype=torch.long),
                class_id=1,
                target=torch.zeros(1, 3, 2, dtype=torch.long),
            ),
            "target",
        ),
        (
            lambda: sa.confusion_matrix(torch.zeros(2, 2), torch.full((2, 2), 7), num_classes=4),
            "ground truth",
        ),
        (lambda: sa.confusion_matrix(torch.full((2, 2), 9), torch.zeros(2, 2), num_classes=4), "prediction"),
        (lambda: sa.confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), num_classes=4), "differ in shape"),
        (lambda: sa.perturbation_norms(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 3)), "differ in shape"),
        (lambda: sa.psnr(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 3)), "differ in shape"),
    ],
)
def test_validation(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError), match=message):
        call()
