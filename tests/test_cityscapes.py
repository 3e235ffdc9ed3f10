"""Cityscapes in the official layout: discovery, labelId -> trainId mapping, resizing, errors; and agreement with
cityscapesscripts (the official label table and the official pixel-level evaluation) where it is installed."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segattack.data.base import SegDataset, UnreadableImageError
from segattack.data.cityscapes import LABEL_ID_LUT, Cityscapes, label_ids_to_train_ids
from segattack.data.labels import CLASS_COLORS, CLASS_NAMES, LABEL_ID_TO_TRAIN_ID, NUM_CLASSES
from segattack.metrics import confusion_matrix, iou

H, W = 16, 32
FRAMES = {"aachen": ["000000_000019", "000001_000019"], "bochum": ["000000_000313", "000000_001097", "000002_000019"]}


def make_cityscapes(
    root: Path, split: str = "val", *, with_gt: bool = True, seed: int = 0, frames: dict[str, list[str]] = FRAMES
) -> dict[str, np.ndarray]:
    """Write tiny images and labelIds PNGs in the official layout; return the labelIds by image id."""
    rng = np.random.default_rng(seed)
    out = {}
    for city, names in frames.items():
        (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
        if with_gt:
            (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        for name in names:
            iid = f"{city}_{name}"
            image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / "leftImg8bit" / split / city / f"{iid}_leftImg8bit.png")
            ids = rng.integers(0, 34, (H, W), dtype=np.uint8)  # every labelId, ignored ones included
            if with_gt:
                Image.fromarray(ids).save(root / "gtFine" / split / city / f"{iid}_gtFine_labelIds.png")
                # the other official ground-truth files lie beside it and must be left alone
                Image.fromarray(ids).save(root / "gtFine" / split / city / f"{iid}_gtFine_color.png")
            out[iid] = ids
    return out


@pytest.fixture
def cs_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "cityscapes"
    return root, make_cityscapes(root)


def test_discovery_and_items(cs_root: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, truth = cs_root
    ds = Cityscapes(root)
    assert isinstance(ds, SegDataset) and ds.has_labels and len(ds) == 5
    ids = [ds.image_id(i) for i in range(len(ds))]
    assert ids == sorted(truth) and ids[0] == "aachen_000000_000019"
    for i, iid in enumerate(ids):
        image, label = ds[i]
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, H, W)
        assert label.dtype == torch.int64 and tuple(label.shape) == (H, W)
        expected = np.vectorize(LABEL_ID_TO_TRAIN_ID.__getitem__)(truth[iid].astype(np.int64))
        assert np.array_equal(label.numpy(), expected)
        city = iid.split("_")[0]
        png = np.array(Image.open(root / "leftImg8bit" / "val" / city / f"{iid}_leftImg8bit.png"))
        assert torch.equal(image, torch.from_numpy(png).permute(2, 0, 1))


def test_label_mapping() -> None:
    ids = np.arange(34).reshape(2, 17)
    train = label_ids_to_train_ids(ids)
    assert train.dtype == np.int64 and train.shape == (2, 17)
    flat = train.ravel().tolist()
    assert flat[24] == 11 and flat[25] == 12 and flat[26] == 13 and flat[7] == 0 and flat[33] == 18
    assert flat[0] == 255 and flat[1] == 255 and flat[29] == 255 and flat[30] == 255
    assert sorted(set(flat) - {255}) == list(range(NUM_CLASSES))  # each train id exactly once
    assert sum(t != 255 for t in flat) == NUM_CLASSES
    assert (LABEL_ID_LUT[34:] == -1).all()
    for bad in (np.array([34]), np.array([255]), np.array([-1])):
        with pytest.raises(ValueError, match="no Cityscapes labelIds"):
            label_ids_to_train_ids(bad)


def test_resize(cs_root: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = cs_root
    full = Cityscapes(root)
    small = Cityscapes(root, size=(8, 16))
    big = Cityscapes(root, split="val", size=(32, 64))
    image, label = small[0]
    assert tuple(image.shape) == (3, 8, 16) and image.dtype == torch.uint8 and tuple(label.shape) == (8, 16)
    # nearest neighbour: every label is one of the source pixels (2x decimation picks rows/cols 1, 3, 5, ...)
    assert torch.equal(label, full[0][1][1::2, 1::2])
    image, label = big[0]
    assert tuple(image.shape) == (3, 32, 64) and torch.equal(
        label, full[0][1].repeat_interleave(2, 0).repeat_interleave(2, 1)
    )


def write_instances(root: Path, split: str = "val") -> dict[str, np.ndarray]:
    """Write a ``*_gtFine_instanceIds.png`` (16-bit, official encoding) beside every labelIds file: two persons
    (labelId 24), one car (26), a crowd region of persons without instance ids (plain 24) and road (7)."""
    out = {}
    for lab in sorted((root / "gtFine" / split).glob("*/*_gtFine_labelIds.png")):
        ids = np.full((H, W), 7, dtype=np.uint16)
        ids[2:10, 3:6] = 24000
        ids[4:14, 20:24] = 24001
        ids[0:3, 10:16] = 26000
        ids[12:16, 0:4] = 24  # a group of persons: no instance
        Image.fromarray(ids).save(lab.with_name(lab.name.replace("_labelIds", "_instanceIds")))
        out[lab.name.removesuffix("_gtFine_labelIds.png")] = ids
    return out


def test_instances(cs_root: tuple[Path, dict[str, np.ndarray]]) -> None:
    from segattack.data.cityscapes import instance_ids_to_train_ids
    from segattack.instances import gt_components

    root, _ = cs_root
    assert not Cityscapes(root).has_instances  # no instanceIds files: no instances, no error
    with pytest.raises(FileNotFoundError, match="instances=True but 5 of 5 images"):
        Cityscapes(root, instances=True)
    raw = write_instances(root)
    ds = Cityscapes(root)
    assert ds.has_instances and "instances" in repr(ds)
    ids = ds.instance_ids(0)
    assert ids.dtype == np.int64 and ids.shape == (H, W)
    assert np.array_equal(ids, instance_ids_to_train_ids(raw[ds.image_id(0)]))
    assert set(np.unique(ids).tolist()) == {-1, 11000, 11001, 13000}  # crowd, road: -1; persons 11xxx; car 13000
    persons = gt_components(ids, 11)
    assert persons.n == 2 and sorted(persons.heights.tolist()) == [8, 10]
    small = Cityscapes(root, size=(8, 16)).instance_ids(0)
    assert np.array_equal(small, ids[1::2, 1::2])  # nearest neighbour, as the labels
    assert not Cityscapes(root, instances=False).has_instances
    (root / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_instanceIds.png").unlink()
    assert not Cityscapes(root).has_instances  # only where every image has them
    with pytest.raises(FileNotFoundError, match="aachen_000000_000019_gtFine_instanceIds.png"):
        Cityscapes(root, instances=True)


def test_without_ground_truth(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, "test", with_gt=False)
    ds = Cityscapes(tmp_path, "test")
    assert not ds.has_labels
    assert bool((ds[0][1] == 255).all()) and tuple(ds[0][1].shape) == (H, W)
    with pytest.raises(FileNotFoundError, match=r"labels=True but the ground truth folder .*gtFine.test"):
        Cityscapes(tmp_path, "test", labels=True)


def test_labels_false_ignores_ground_truth(cs_root: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = cs_root
    ds = Cityscapes(root, labels=False)
    assert not ds.has_labels and bool((ds[0][1] == 255).all())
    assert Cityscapes(root, labels=True).has_labels


def test_missing_label_names_image_and_expected_path(cs_root: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = cs_root
    (root / "gtFine" / "val" / "bochum" / "bochum_000000_001097_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError) as info:
        Cityscapes(root)
    msg = str(info.value)
    assert "1 of 5 images" in msg
    assert "bochum_000000_001097_leftImg8bit.png" in msg
    assert str(root / "gtFine" / "val" / "bochum" / "bochum_000000_001097_gtFine_labelIds.png") in msg


def test_root_and_split_errors(tmp_path: Path, cs_root: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = cs_root
    with pytest.raises(FileNotFoundError, match="root .*nowhere does not exist"):
        Cityscapes(tmp_path / "nowhere")
    with pytest.raises(
        FileNotFoundError, match=r"is not a Cityscapes root: expected the folder .*elsewhere.leftImg8bit.val"
    ):
        (tmp_path / "elsewhere").mkdir()
        Cityscapes(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="seems to point inside the data set"):
        Cityscapes(root / "leftImg8bit")
    (root / "leftImg8bit" / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit.test does not exist; splits found in .*: train, val"):
        Cityscapes(root, "test")
    with pytest.raises(ValueError, match=r"split 'train' is empty: no <city>/\*_leftImg8bit.png"):
        (root / "leftImg8bit" / "train" / "ulm").mkdir()
        Cityscapes(root, "train")
    with pytest.raises(ValueError, match="size must be"):
        Cityscapes(root, size=(512,))  # type: ignore[arg-type]


def test_bad_files(cs_root: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = cs_root
    Image.fromarray(np.full((H, W), 200, np.uint8)).save(
        root / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    )
    (root / "leftImg8bit" / "val" / "aachen" / "aachen_000001_000019_leftImg8bit.png").write_bytes(b"\x89PNG broken")
    Image.fromarray(np.zeros((H, 8), np.uint8)).save(
        root / "gtFine" / "val" / "bochum" / "bochum_000000_000313_gtFine_labelIds.png"
    )
    ds = Cityscapes(root)
    with pytest.raises(ValueError, match=r"aachen_000000_000019_gtFine_labelIds.png: values \[200\]"):
        ds[0]
    with pytest.raises(UnreadableImageError, match="aachen_000001_000019_leftImg8bit.png"):
        ds[1]
    with pytest.raises(ValueError, match="is 8x16 but image"):
        ds[2]


# ---- agreement with the official cityscapesscripts -------------------------------------------------------------


def test_label_table_matches_cityscapesscripts() -> None:
    cs_labels = pytest.importorskip("cityscapesscripts.helpers.labels", reason="cityscapesscripts not installed")
    official = {lab.id: (255 if lab.trainId in (255, -1) else lab.trainId) for lab in cs_labels.labels}
    assert LABEL_ID_TO_TRAIN_ID == official
    for lab in cs_labels.labels:  # ignoreInEval is exactly "no train id": the two evaluations skip the same pixels
        assert lab.ignoreInEval == (official[lab.id] == 255), lab.name
    for t in range(NUM_CLASSES):
        assert CLASS_NAMES[t] == cs_labels.trainId2label[t].name
        assert CLASS_COLORS[t] == tuple(cs_labels.trainId2label[t].color)


def test_mean_iou_matches_official_evaluation(tmp_path: Path) -> None:
    cs_eval = pytest.importorskip(
        "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling", reason="cityscapesscripts not installed"
    )
    cs_labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    root = tmp_path / "cs"
    make_cityscapes(root, seed=3)
    ds = Cityscapes(root)
    rng = np.random.default_rng(7)
    results = tmp_path / "results"
    results.mkdir()
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64)
    pred_files, gt_files = [], []
    for i in range(len(ds)):
        _, truth = ds[i]
        # a plausible prediction: the truth on 60% of the pixels, a random class elsewhere (and on ignored pixels)
        noise = torch.from_numpy(rng.integers(0, NUM_CLASSES, truth.shape))
        keep = torch.from_numpy(rng.random(truth.shape) < 0.6) & (truth != 255)
        pred = torch.where(keep, truth, noise)
        cm += confusion_matrix(pred[None], truth[None], num_classes=NUM_CLASSES)
        as_label_ids = np.vectorize(lambda t: cs_labels.trainId2label[t].id)(pred.numpy()).astype(np.uint8)
        pred_files.append(str(results / f"{ds.image_id(i)}_pred.png"))
        Image.fromarray(as_label_ids).save(pred_files[-1])
        city = ds.image_id(i).split("_")[0]
        gt_files.append(str(root / "gtFine" / "val" / city / f"{ds.image_id(i)}_gtFine_labelIds.png"))
    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore = False  # instance-level scores need instanceIds PNGs; not what segattack reports
    args.JSONOutput = False
    args.quiet = True
    result = cs_eval.evaluateImgLists(pred_files, gt_files, args)
    ours = iou(cm)
    for t in range(NUM_CLASSES):
        theirs = result["classScores"][CLASS_NAMES[t]]
        assert math.isclose(float(ours[t]), theirs, rel_tol=1e-12), (CLASS_NAMES[t], float(ours[t]), theirs)
    assert not math.isnan(result["averageScoreClasses"])
    assert math.isclose(float(ours.nanmean()), result["averageScoreClasses"], rel_tol=1e-12)
