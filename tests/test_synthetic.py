"""Tests for the procedural street scenes (segattack.data.synthetic)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from scipy import ndimage

from segattack.data.base import SegDataset
from segattack.data.labels import CLASS_NAMES, NUM_CLASSES
from segattack.data.synthetic import SyntheticStreets, _Canvas, render_scene, scene_rng

PERSON, RIDER = CLASS_NAMES.index("person"), CLASS_NAMES.index("rider")
EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity: thin limbs touch diagonally


@pytest.fixture(scope="module")
def val20() -> list[tuple[np.ndarray, np.ndarray]]:
    ds = SyntheticStreets("val", size=(256, 512), length=20)
    return [ds.render(i) for i in range(20)]


def _digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.numpy().tobytes()).hexdigest()


def test_items_are_deterministic() -> None:
    a = SyntheticStreets("train", size=(96, 192), length=5, seed=3)
    b = SyntheticStreets("train", size=(96, 192), length=5, seed=3)
    for i in (0, 4):
        (ia, la), (ib, lb) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(la, lb)
    again_image, again_label = a[0]  # the same item twice from one data set
    assert torch.equal(again_image, a[0][0]) and torch.equal(again_label, a[0][1])


def test_splits_and_seeds_give_different_scenes() -> None:
    n = 8
    train = {_digest(SyntheticStreets("train", size=(64, 128), length=n)[i][0]) for i in range(n)}
    val = {_digest(SyntheticStreets("val", size=(64, 128), length=n)[i][0]) for i in range(n)}
    other_seed = {_digest(SyntheticStreets("val", size=(64, 128), length=n, seed=1)[i][0]) for i in range(n)}
    assert len(train) == n and len(val) == n  # no repeated scene within a split
    assert train.isdisjoint(val)
    assert val.isdisjoint(other_seed)


def test_item_types_shapes_and_label_values() -> None:
    ds = SyntheticStreets("val", size=(128, 256), length=4)
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 128, 256)
        assert label.dtype == torch.int64 and tuple(label.shape) == (128, 256)
        assert int(label.min()) >= 0 and int(label.max()) < NUM_CLASSES  # no ignore pixels at all
        assert image.float().std() > 10  # a real picture, not a flat fill


def test_common_classes_appear(val20: list[tuple[np.ndarray, np.ndarray]]) -> None:
    seen = set()
    for _, label in val20[:8]:
        seen.update(np.unique(label).tolist())
    for name in ("road", "sidewalk", "building", "vegetation", "sky", "person", "car", "pole"):
        assert CLASS_NAMES.index(name) in seen, name


def test_persons_in_most_scenes_at_many_sizes(val20: list[tuple[np.ndarray, np.ndarray]]) -> None:
    heights = []
    with_person = 0
    for _, label in val20:
        comps, n = ndimage.label(label == PERSON, structure=EIGHT)
        with_person += n > 0
        heights += [sl[0].stop - sl[0].start for sl in ndimage.find_objects(comps)]
    assert with_person >= 17  # of 20
    h = np.asarray(heights)
    assert ((h >= 8) & (h <= 20)).sum() >= 3  # far away (and partly hidden) pedestrians
    assert ((h > 20) & (h < 60)).sum() >= 3
    assert (h >= 60).sum() >= 3  # near ones, a quarter of the image height and more


def test_person_colours_vary_widely(val20: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """No single colour cue: mean colours of well-visible pedestrians spread over the colour space."""
    means = []
    for image, label in val20:
        comps, _ = ndimage.label(label == PERSON, structure=EIGHT)
        for k, sl in enumerate(ndimage.find_objects(comps), start=1):
            if sl[0].stop - sl[0].start >= 25:
                means.append(image[comps == k].mean(axis=0))
    assert len(means) >= 10
    assert np.asarray(means).std(axis=0).min() > 15


def test_riders_sit_on_bikes() -> None:
    ds = SyntheticStreets("val", size=(128, 256), length=40)
    bike_ids = {CLASS_NAMES.index("bicycle"), CLASS_NAMES.index("motorcycle")}
    with_rider = with_bike_at_rider = 0
    for i in range(len(ds)):
        _, label = ds.render(i)
        if (label == RIDER).sum() >= 20:
            with_rider += 1
            grown = ndimage.binary_dilation(label == RIDER, iterations=2)
            with_bike_at_rider += bool(bike_ids & set(np.unique(label[grown]).tolist()))
    assert with_rider >= 5
    assert with_bike_at_rider >= 0.8 * with_rider  # the rest: bike hidden behind a car


@pytest.mark.parametrize("size", [(64, 128), (100, 150), (37, 61)])
def test_any_resolution(size: tuple[int, int]) -> None:
    image, label = SyntheticStreets("val", size=size, length=2)[1]
    assert tuple(image.shape) == (3, *size) and tuple(label.shape) == size
    assert int(label.max()) < NUM_CLASSES
    assert CLASS_NAMES.index("road") in label.unique().tolist()


def test_resolution_changes_only_the_pixel_grid() -> None:
    """Item i is the same scene at every resolution of one aspect ratio (geometry in metres, scaled by height)."""
    for i in range(3):
        _, small = render_scene(scene_rng(0, "val", i), (128, 256))
        _, large = render_scene(scene_rng(0, "val", i), (256, 512))
        assert (large[1::2, 1::2] == small).mean() > 0.93


def test_render_scene_takes_seed_or_generator() -> None:
    img_a, lab_a = render_scene(5, (48, 96))
    img_b, lab_b = render_scene(np.random.default_rng(5), (48, 96))
    assert img_a.shape == (48, 96, 3) and img_a.dtype == np.uint8 and lab_a.dtype == np.int64
    assert np.array_equal(img_a, img_b) and np.array_equal(lab_a, lab_b)


def test_canvas_paints_image_and_label_with_the_same_mask() -> None:
    """The label is exactly what is drawn: each labelled primitive changes image and label on the same pixels."""
    draws = [
        lambda cv: cv.poly([(3.2, 4.7), (40.5, 9.1), (22.3, 35.8)], (200, 10, 10), 11),
        lambda cv: cv.ellipse(30.3, 20.6, 9.7, 4.2, (200, 10, 10), 11),
        lambda cv: cv.chord(30.3, 20.6, 9.7, 6.2, (200, 10, 10), 11),
        lambda cv: cv.ring(25.5, 22.5, 3.3, 12.1, 2.4, (200, 10, 10), 11),
        lambda cv: cv.line([(2.5, 3.5), (30.2, 20.7), (45.9, 5.1)], 3.6, (200, 10, 10), 11),
    ]
    for draw in draws:
        cv = _Canvas(40, 50, (0, 0, 0))
        draw(cv)
        painted = np.asarray(cv.img)[..., 0] == 200
        labelled = np.asarray(cv.lab) == 11
        assert labelled.sum() > 10
        assert np.array_equal(painted, labelled)


def test_ids_and_indexing() -> None:
    ds = SyntheticStreets("val", size=(32, 64), length=13)
    assert len(ds) == 13
    assert ds.image_id(12) == "val_000012"
    assert ds.ids[:2] == ["val_000000", "val_000001"] and len(ds.ids) == 13
    assert ds.image_id(-1) == "val_000012"
    assert torch.equal(ds[-1][0], ds[12][0])
    assert SyntheticStreets("train", length=3).image_id(2) == "train_000002"
    assert isinstance(ds, SegDataset) and ds.has_labels


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="unknown split 'test'"):
        SyntheticStreets("test")
    with pytest.raises(ValueError, match="size must be positive"):
        SyntheticStreets(size=(0, 64))
    with pytest.raises(ValueError, match="size must be positive"):
        SyntheticStreets(size=(64, -1))
    with pytest.raises(ValueError, match="two ints"):
        SyntheticStreets(size=(64,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two ints"):
        SyntheticStreets(size=(64.0, 128))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length must be a positive int"):
        SyntheticStreets(length=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        SyntheticStreets(seed=-1)
    with pytest.raises(ValueError, match="size must be positive"):
        render_scene(0, (10, 0))
    with pytest.raises(ValueError, match="unknown split"):
        scene_rng(0, "testing", 0)
    ds = SyntheticStreets(size=(32, 64), length=3)
    with pytest.raises(IndexError, match="index 3 out of range for 3 items"):
        ds[3]
    with pytest.raises(IndexError, match="out of range"):
        ds.image_id(-4)
    with pytest.raises(TypeError, match="index must be an int"):
        ds[1.0]  # type: ignore[index]
