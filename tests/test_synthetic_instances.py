"""Ground-truth person instances of the synthetic street scenes (SyntheticStreets.instance_ids, the canvas layer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import segattack as sa
from segattack.data.labels import CLASS_NAMES
from segattack.data.synthetic import SyntheticStreets, _Canvas, render_scene, render_scene_instances, scene_rng
from segattack.experiment import ExperimentConfig
from segattack.instances import instance_fields
from segattack.rundir import ROW_FIELDS, read_config, read_rows
from segattack.specs import load_data

PERSON, RIDER, CAR = CLASS_NAMES.index("person"), CLASS_NAMES.index("rider"), CLASS_NAMES.index("car")
BICYCLE = CLASS_NAMES.index("bicycle")
EIGHT = np.ones((3, 3), dtype=bool)
SIZE = (128, 256)


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    ds = SyntheticStreets("val", size=SIZE, length=12)
    return [(*ds.render(i), ds.instance_ids(i)) for i in range(len(ds))]


def rect(x0: int, y0: int, x1: int, y1: int) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def test_canvas_paints_instances_in_painters_order() -> None:
    """A person, a car in front of it, a second person in front of both (riding a bike, with a face detail):
    each pixel holds the id of what was painted last there, and no id where a non-instance class was."""
    cv = _Canvas(40, 60, (0, 0, 0), instances=True)
    cv.poly(rect(0, 30, 59, 39), (90, 90, 90), 0)  # road: before any instance
    with cv.instance(PERSON) as far:
        cv.poly(rect(5, 5, 25, 35), (200, 0, 0), PERSON)
    cv.poly(rect(20, 10, 40, 30), (0, 0, 200), CAR)  # the car hides the far person's right part
    with cv.instance(RIDER) as near:
        cv.poly(rect(10, 15, 30, 20), (0, 200, 0), RIDER)
        cv.ellipse(12, 17, 2, 2, (255, 220, 200))  # a face: image only
        cv.line([(8.0, 25.0), (32.0, 25.0)], 2, (30, 30, 30), BICYCLE)  # the bike, inside the rider's strokes
    with cv.instance(PERSON) as hidden:  # painted, then covered entirely
        cv.poly(rect(50, 2, 55, 8), (200, 0, 0), PERSON)
    cv.poly(rect(49, 1, 56, 9), (0, 0, 200), CAR)
    assert far == PERSON * 1000 and hidden == PERSON * 1000 + 1 and near == RIDER * 1000  # k counts per class
    label, ids = np.asarray(cv.label).astype(np.int64), cv.instance_ids()
    assert ids.dtype == np.int64 and ids.shape == (40, 60)
    expected = np.full((40, 60), -1, np.int64)
    expected[5:36, 5:26] = far
    expected[10:31, 20:41] = -1
    expected[15:21, 10:31] = near
    expected[label == BICYCLE] = -1
    np.testing.assert_array_equal(ids, expected)
    car = label[10:31, 20:41]
    assert (label[ids == far] == PERSON).all() and (car[~np.isin(car, [RIDER, BICYCLE])] == CAR).all()
    assert not (ids == hidden).any() and (label == BICYCLE).sum() > 0


def test_canvas_without_instances_and_its_checks() -> None:
    cv = _Canvas(8, 8, (0, 0, 0))
    with cv.instance(PERSON) as ident:
        cv.poly(rect(1, 1, 5, 5), (200, 0, 0), PERSON)
    assert ident == -1 and (cv.instance_ids() == -1).all() and (np.asarray(cv.label) == PERSON).sum() == 25
    cv = _Canvas(8, 8, (0, 0, 0), instances=True)
    assert (cv.instance_ids() == -1).all() and cv.instance_ids().shape == (8, 8)
    with cv.instance(PERSON), pytest.raises(RuntimeError, match="do not nest"), cv.instance(PERSON):
        pass
    for _ in range(999):  # one more was opened above
        with cv.instance(PERSON):
            pass
    with pytest.raises(ValueError, match="more than 1000 instances"), cv.instance(PERSON):
        pass


def test_instance_layer_changes_no_pixel() -> None:
    for i in range(4):
        image, label = render_scene(scene_rng(0, "val", i), SIZE)
        image_i, label_i, _ = render_scene_instances(scene_rng(0, "val", i), SIZE)
        assert np.array_equal(image, image_i) and np.array_equal(label, label_i)


def test_instances_agree_with_the_label(scenes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    persons = riders = 0
    for _, label, ids in scenes:
        assert ids.dtype == np.int64 and ids.shape == label.shape
        on = ids >= 0
        assert ((ids == -1) | on).all()
        assert (label[on] == ids[on] // 1000).all()  # an id's pixels are labelled with its class
        np.testing.assert_array_equal(on, np.isin(label, [PERSON, RIDER]))  # every person and rider pixel has one
        found = np.unique(ids[on])
        assert (found % 1000 < 1000).all()
        persons += int((found // 1000 == PERSON).sum())
        riders += int((found // 1000 == RIDER).sum())
    assert persons >= 30 and riders >= 1


def test_instances_are_distinct_per_person(scenes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Persons that touch or overlap in the label (groups, one behind another) are separate instances, and a person
    cut in two by an occluder (a pole, a sign) stays one: instances are persons, not connected blobs of pixels."""
    split = joined = 0
    for _, label, ids in scenes:
        comps, n = ndimage.label(label == PERSON, structure=EIGHT)
        split += sum(len(np.unique(ids[comps == k])) >= 2 for k in range(1, n + 1))
        for ident in np.unique(ids[label == PERSON]):
            joined += len(np.unique(comps[ids == ident])) >= 2
    assert split >= 2 and joined >= 1


def test_instance_ids_are_deterministic() -> None:
    a = SyntheticStreets("val", size=(64, 128), length=5, seed=1)
    b = SyntheticStreets("val", size=(64, 128), length=5, seed=1)
    np.testing.assert_array_equal(a.instance_ids(3), b.instance_ids(3))
    np.testing.assert_array_equal(a.instance_ids(3), a.instance_ids(-2))
    np.testing.assert_array_equal(a.instance_ids(3), render_scene_instances(scene_rng(1, "val", 3), (64, 128))[2])
    assert a.has_instances and not np.array_equal(a.instance_ids(0), a.instance_ids(1))
    with pytest.raises(IndexError):
        a.instance_ids(5)


def test_the_command_lines_data_has_instances_at_its_size() -> None:
    data = load_data("synthetic:2", size=(96, 160))
    assert data.has_instances and data.instance_ids(1).shape == (96, 160)
    image, label = data[1]
    ids = data.instance_ids(1)
    assert (label.numpy()[ids >= 0] == ids[ids >= 0] // 1000).all()


def test_a_run_on_synthetic_data_counts_ground_truth_instances(tmp_path: Path) -> None:
    data = SyntheticStreets("val", size=SIZE, length=3)
    model = sa.zoo.load(sa.zoo.DEFAULT_MODEL)
    out = sa.run_experiment(model, data, ExperimentConfig(classes=PERSON, eps=[2], figure1=0), tmp_path / "run")
    assert read_config(out)["experiment"]["gt_instances"] is True
    rows = read_rows(out)
    assert len(rows) == 3 * 2  # images x modes
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok
    for r in rows:
        assert tuple(r) == (*ROW_FIELDS, *instance_fields("gt_instances"))
    for r in ok:
        ids = data.instance_ids(r["index"])
        persons = len(np.unique(ids[ids // 1000 == PERSON]))
        assert r["gt_instances"] + r["gt_instances_missed"] == persons
        assert 0 <= r["gt_instances_hidden"] <= r["gt_instances"]
        bins = [f for f in instance_fields("gt_instances") if f.endswith(("_small", "_medium", "_large"))]
        assert sum(r[f] for f in bins) == r["gt_instances"]
