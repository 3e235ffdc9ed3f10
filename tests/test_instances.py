"""Instances (segattack.instances): connected components by hand on small masks, the hidden rule at its threshold,
size bins by bounding-box height, ground-truth instances, and the counts in an experiment's rows and report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segattack.experiment import ExperimentConfig, ExperimentError, read_rows, run_experiment
from segattack.instances import (
    InstanceCounts,
    components,
    gt_components,
    instance_fields,
    instance_rows,
    size_bin,
)
from segattack.report import summarize_results

from .models_for_cli import ListDataset, one_line_error, street_image, tiny_fcn, write_street_pngs

P = 11  # person


def blank(h: int = 12, w: int = 12) -> np.ndarray:
    return np.zeros((h, w), dtype=np.int64)


def test_two_separate_blobs_are_two_instances() -> None:
    pred = blank()
    pred[1:4, 1:3] = P  # 6 px
    pred[7:11, 6:10] = P  # 16 px
    c = components(pred, P)
    assert c.n == 2
    assert sorted(c.sizes.tolist()) == [6, 16] and sorted(c.heights.tolist()) == [3, 4]
    assert set(np.unique(c.labels).tolist()) == {0, 1, 2} and int((c.labels > 0).sum()) == 22


def test_diagonal_touch_joins_under_8_connectivity() -> None:
    pred = blank(4, 4)
    pred[0, 0] = pred[1, 1] = pred[2, 2] = P  # touching at corners only: one instance
    pred[0, 3] = P  # apart from them (no shared edge or corner)
    c = components(pred, P)
    assert c.n == 2 and sorted(c.sizes.tolist()) == [1, 3]
    pred[1, 2] = P  # now the single pixel at (0, 3) touches (1, 2) at a corner: all one
    assert components(pred, P).n == 1


def test_several_classes_are_taken_together() -> None:
    pred = blank(3, 6)
    pred[1, 1], pred[1, 2], pred[1, 4] = P, 12, 12  # person next to rider: one; a lone rider: another
    assert components(pred, (P, 12)).n == 2
    assert components(pred, P).n == 1 and components(pred, 12).n == 2


@pytest.mark.parametrize(("gone", "hidden"), [(94, False), (95, True), (96, True), (100, True)])
def test_hidden_at_the_threshold(gone: int, hidden: bool) -> None:
    """A blob of 100 pixels vanishes at 95% (0.95 * 100 in integers: no rounding error decides it)."""
    clean = blank(20, 20)
    clean[2:12, 5:15] = P
    adv = clean.copy()
    rows, cols = np.nonzero(clean == P)
    adv[rows[:gone], cols[:gone]] = 0
    counts = InstanceCounts.count(components(clean, P), adv, class_id=P)
    assert (counts.instances, counts.hidden) == (1, int(hidden))
    assert InstanceCounts.count(components(clean, P), adv, class_id=P, threshold=0.9).hidden == int(gone >= 90)


def test_hidden_counts_instances_not_pixels() -> None:
    clean = blank(10, 20)
    clean[1:3, 1:3] = P  # small, 4 px: vanishes
    clean[1:9, 10:19] = P  # 72 px: 36 hidden, stays
    adv = clean.copy()
    adv[1:3, 1:3] = 0
    adv[1:5, 10:19] = 0
    c = InstanceCounts.count(components(clean, P), adv, class_id=P)
    assert (c.instances, c.hidden) == (2, 1)  # half the pixels hidden, one of two persons gone
    assert adv[clean == P].tolist().count(P) == 36


def test_size_bins_by_bounding_box_height() -> None:
    assert [size_bin(h) for h in (1, 31, 32, 95, 96, 500)] == ["small", "small", "medium", "medium", "large", "large"]
    pred = np.zeros((130, 40), dtype=np.int64)
    pred[0:31, 0] = P  # a 1-px wide line 31 tall: small
    pred[0:32, 5] = P  # 32 tall: medium
    pred[0:95, 10] = P  # 95: medium
    pred[0:96, 15:40] = P  # 96 tall, wide: large
    pred[120:130, 0:40] = P  # 10 tall but 400 px: small (height decides, not area)
    c = InstanceCounts.count(components(pred, P), np.zeros_like(pred), class_id=P)
    assert c.by_size == {"small": (2, 2), "medium": (2, 2), "large": (1, 1)}
    row = c.row()
    assert tuple(row) == instance_fields()
    assert row["instances"] == 5 and row["instances_small"] == 2 and row["instances_large_hidden"] == 1


def test_ground_truth_instances() -> None:
    ids = np.full((6, 8), -1, dtype=np.int64)
    ids[0:4, 0] = 11000  # person 0, split by an occluder into two pieces: still one instance
    ids[5, 0] = 11000
    ids[0:2, 4:6] = 11001  # person 1
    ids[3:5, 4:6] = 13000  # a car: another class
    c = gt_components(ids, P)
    assert c.n == 2 and sorted(c.sizes.tolist()) == [4, 5] and sorted(c.heights.tolist()) == [2, 6]
    clean = blank(6, 8)
    clean[0:4, 0] = P  # the model sees person 0 (4 of its 5 pixels), and misses person 1
    counts = InstanceCounts.count(c, blank(6, 8), class_id=P, clean_pred=clean)
    assert (counts.instances, counts.hidden, counts.missed) == (1, 1, 1)
    row = counts.row("gt_instances")
    assert row["gt_instances_missed"] == 1 and tuple(row) == instance_fields("gt_instances")


def test_instance_rows_per_image_and_checks() -> None:
    clean = torch.zeros(2, 8, 8, dtype=torch.int64)
    clean[0, 0:2, 0:2] = P
    clean[0, 5:7, 5:7] = P
    clean[1, 3:5, 3:5] = P
    adv = clean.clone()
    adv[0, 0:2, 0:2] = 0
    rows = instance_rows(clean, adv, class_id=P)
    assert [(r["instances"], r["instances_hidden"]) for r in rows] == [(2, 1), (1, 0)]
    with pytest.raises(ValueError, match="share of an instance's pixels"):
        instance_rows(clean, adv, class_id=P, threshold=0.0)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        instance_rows(clean[0], adv[0], class_id=P)


class InstanceList(ListDataset):
    """Street images with their persons as ground-truth instances (each image's person: id 11000)."""

    has_instances = True

    def instance_ids(self, index: int) -> np.ndarray:
        img = self.images[index].astype(np.int64)
        person = (img[..., 0] > img[..., 2] + 60) & (img[..., 0] > img[..., 1] + 40)  # the reddish figure
        return np.where(person, 11000, -1)


def test_rows_and_summary_of_a_run(tmp_path: Path) -> None:
    data = InstanceList([street_image(i) for i in range(3)])
    run_experiment(tiny_fcn(), data, ExperimentConfig(classes=P, eps=[2, 8], figure1=0), tmp_path)
    rows = read_rows(tmp_path)
    model = tiny_fcn()
    for r in rows:
        x = torch.from_numpy(street_image(r["index"])).permute(2, 0, 1)[None].float() / 255
        pred = model.predict(x)
        assert r["instances"] == components(pred[0], P).n >= 1
        assert 0 <= r["instances_hidden"] <= r["instances"]
        assert sum(r[f"instances_{b}"] for b in ("small", "medium", "large")) == r["instances"]
        assert r["gt_instances"] + r["gt_instances_missed"] == 1  # one person per image in the ground truth
    # more budget hides more whole persons on this model (eps 8 hides nearly every person pixel)
    hidden = {e: sum(r["instances_hidden"] for r in rows if r["eps"] == e and r["mode"] == "full") for e in (2, 8)}
    assert hidden[2] <= hidden[8] and hidden[8] >= 1
    summary = summarize_results(tmp_path)
    for s in summary:
        mine = [r for r in rows if r["eps"] == s["eps"] and r["mode"] == s["mode"]]
        assert s["instances"] == sum(r["instances"] for r in mine)
        assert s["instances_vanished"] == pytest.approx(sum(r["instances_hidden"] for r in mine) / s["instances"])
        assert s["gt_instances"] == sum(r["gt_instances"] for r in mine)


def test_threshold_changes_the_count_and_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ListDataset([street_image(i) for i in range(2)])
    config = ExperimentConfig(classes=P, eps=[4], figure1=0, instance_threshold=1.0)
    strict = read_rows(run_experiment(tiny_fcn(), data, config, tmp_path / "a"))
    loose = read_rows(
        run_experiment(
            tiny_fcn(), data, ExperimentConfig(classes=P, eps=[4], figure1=0, instance_threshold=0.5), tmp_path / "b"
        )
    )
    for s, lo in zip(strict, loose, strict=True):
        assert s["fooled"] == lo["fooled"] and s["instances_hidden"] <= lo["instances_hidden"]
        assert lo["instances_hidden"] == int(lo["fooled"] >= 0.5)  # one person per image
    with pytest.raises(ExperimentError, match="instance_threshold"):
        run_experiment(tiny_fcn(), data, ExperimentConfig(classes=P, eps=[4], instance_threshold=2), tmp_path / "c")
    pngs = write_street_pngs(tmp_path / "pngs", n=1)
    err = one_line_error(["run", "--data", f"folder:{pngs}", "--model", "tests.models_for_cli:tiny_fcn", "--eps", "2",
                          "--out", str(tmp_path / "d"), "--instance-threshold", "1.5"], capsys)  # fmt: skip
    assert "--instance-threshold" in err and "(0, 1]" in err
