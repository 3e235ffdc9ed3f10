"""ImageFolder: recursive discovery, stable ids, mode conversion, labels, resizing, and every error it raises."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segattack.data.base import SegDataset, UnreadableImageError
from segattack.data.folder import ImageFolder, check_size


def _rgb(h: int = 16, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Nested folders with an RGB PNG, a grey PNG, an RGBA PNG, a JPEG (upper-case extension), a corrupt PNG and
    files that are not images."""
    root = tmp_path / "imgs"
    (root / "city" / "b").mkdir(parents=True)
    (root / "z").mkdir()
    Image.fromarray(_rgb(seed=1)).save(root / "city" / "b" / "rgb.png")
    Image.fromarray(_rgb(seed=2)[..., 0]).save(root / "city" / "grey.png")
    rgba = np.concatenate([_rgb(seed=3), np.full((16, 32, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(root / "a_rgba.png")
    Image.fromarray(_rgb(seed=4)).save(root / "z" / "photo.JPG", format="JPEG")
    (root / "z" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"")
    return root


def test_discovery_ids_and_order(folder: Path) -> None:
    ds = ImageFolder(folder)
    assert isinstance(ds, SegDataset)
    ids = [ds.image_id(i) for i in range(len(ds))]
    assert ids == ["a_rgba", "city__b__rgb", "city__grey", "z__broken", "z__photo"]
    assert ImageFolder(folder).files == ds.files  # stable
    assert not ds.has_labels


def test_items_follow_the_contract_and_convert_modes(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = ImageFolder(folder)
    ids = [ds.image_id(i) for i in range(len(ds))]
    with caplog.at_level(logging.INFO, logger="segattack.data.folder"):
        items = {ids[i]: ds[i] for i in range(len(ds)) if ids[i] != "z__broken"}
    notes = [r for r in caplog.records if "converting to RGB" in r.getMessage()]
    assert len(notes) == 1  # once per data set, though grey and RGBA both need it
    for image, label in items.values():
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 16, 32)
        assert label.dtype == torch.int64 and tuple(label.shape) == (16, 32)
        assert bool((label == 255).all())
    assert torch.equal(items["city__b__rgb"][0], torch.from_numpy(_rgb(seed=1)).permute(2, 0, 1))
    grey = items["city__grey"][0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[0], torch.from_numpy(_rgb(seed=2)[..., 0]))
    assert torch.equal(items["a_rgba"][0], torch.from_numpy(_rgb(seed=3)).permute(2, 0, 1))  # alpha dropped
    jpeg = items["z__photo"][0].to(torch.int16)
    ref = torch.from_numpy(_rgb(seed=4)).permute(2, 0, 1).to(torch.int16)
    assert float((jpeg - ref).abs().float().mean()) < 60  # lossy, but the same picture


def test_unreadable_file_raises_from_getitem(folder: Path) -> None:
    ds = ImageFolder(folder)  # construction does not decode
    i = [ds.image_id(k) for k in range(len(ds))].index("z__broken")
    with pytest.raises(UnreadableImageError, match="broken.png"):
        ds[i]


def test_labels_matched_by_relative_name(tmp_path: Path) -> None:
    root, labels = tmp_path / "img", tmp_path / "lab"
    (root / "s").mkdir(parents=True)
    (labels / "s").mkdir(parents=True)
    Image.fromarray(_rgb()).save(root / "s" / "one.jpg")
    Image.fromarray(_rgb(seed=5)).save(root / "two.png")
    lab = np.zeros((16, 32), np.uint8)
    lab[:, 16:] = 11
    lab[0] = 255
    Image.fromarray(lab).save(labels / "s" / "one.png")
    Image.fromarray(np.full((16, 32), 13, np.uint8)).save(labels / "two.png")
    ds = ImageFolder(root, labels=labels)
    assert ds.has_labels
    assert [ds.image_id(i) for i in range(2)] == ["s__one", "two"]
    assert torch.equal(ds[0][1], torch.from_numpy(lab.astype(np.int64)))
    assert bool((ds[1][1] == 13).all())


def test_missing_label_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root, labels = tmp_path / "img", tmp_path / "lab"
    root.mkdir()
    labels.mkdir()
    Image.fromarray(_rgb()).save(root / "a.png")
    Image.fromarray(_rgb()).save(root / "b.png")
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(labels / "a.png")
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images have no label.*b\.png"):
        ImageFolder(root, labels=labels)


def test_bad_label_contents(tmp_path: Path) -> None:
    root, labels = tmp_path / "img", tmp_path / "lab"
    root.mkdir()
    labels.mkdir()
    for name in ("ids", "colour", "size", "corrupt"):
        Image.fromarray(_rgb()).save(root / f"{name}.png")
    Image.fromarray(np.full((16, 32), 24, np.uint8)).save(labels / "ids.png")  # a labelId, not a train id
    Image.fromarray(_rgb()).save(labels / "colour.png")
    Image.fromarray(np.zeros((8, 32), np.uint8)).save(labels / "size.png")
    (labels / "corrupt.png").write_bytes(b"nope")
    ds = ImageFolder(root, labels=labels)
    with pytest.raises(ValueError, match=r"holds ids \[24\].*train ids 0..18"):
        ds[[ds.image_id(i) for i in range(4)].index("ids")]
    with pytest.raises(ValueError, match="3 channels"):
        ds[[ds.image_id(i) for i in range(4)].index("colour")]
    with pytest.raises(ValueError, match=r"is 32x8 but image .* is 32x16"):
        ds[[ds.image_id(i) for i in range(4)].index("size")]
    with pytest.raises(UnreadableImageError, match="corrupt.png"):
        ds[[ds.image_id(i) for i in range(4)].index("corrupt")]


def test_resize_bilinear_images_nearest_labels(tmp_path: Path) -> None:
    root, labels = tmp_path / "img", tmp_path / "lab"
    root.mkdir()
    labels.mkdir()
    Image.fromarray(_rgb()).save(root / "a.png")
    lab = np.zeros((16, 32), np.uint8)
    lab[:, 8:] = 11
    lab[:, 24:] = 255
    Image.fromarray(lab).save(labels / "a.png")
    image, label = ImageFolder(root, labels=labels, size=(8, 16))[0]
    assert tuple(image.shape) == (3, 8, 16) and tuple(label.shape) == (8, 16)
    assert set(label.unique().tolist()) == {0, 11, 255}  # no blended ids
    assert label[:, :4].eq(0).all() and label[:, 4:12].eq(11).all() and label[:, 12:].eq(255).all()
    up_img, up_lab = ImageFolder(root, labels=labels, size=(32, 64))[0]
    assert tuple(up_img.shape) == (3, 32, 64) and set(up_lab.unique().tolist()) == {0, 11, 255}
    # antialiased downscaling of constant colour gives the same colour
    Image.fromarray(np.full((16, 32, 3), 77, np.uint8)).save(root / "a.png")
    assert bool((ImageFolder(root, size=(5, 7))[0][0] == 77).all())


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        ImageFolder(tmp_path / "file.png")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "x.bmp").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no images found under .*empty.*\.png, \.jpg, \.jpeg"):
        ImageFolder(empty)
    Image.fromarray(_rgb()).save(empty / "sub" / "x.png")
    Image.fromarray(_rgb()).save(empty / "sub" / "x.jpg")
    with pytest.raises(ValueError, match=r"unique.*sub__x"):
        ImageFolder(empty)
    (empty / "sub" / "x.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="label folder .* does not exist"):
        ImageFolder(empty, labels=tmp_path / "nolabels")
    for bad in ((0, 4), (4,), "4x4", (4.0, 4), (True, 4)):
        with pytest.raises(ValueError, match="size must be"):
            ImageFolder(empty, size=bad)  # type: ignore[arg-type]
    assert check_size([512, 1024]) == (512, 1024) and check_size(None) is None


def test_label_folder_inside_image_folder_is_not_read_as_images(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.full((16, 32), 2, np.uint8)).save(tmp_path / "labels" / "a.png")
    assert len(ImageFolder(tmp_path)) == 2  # without labels=, every PNG is an image
    ds = ImageFolder(tmp_path, labels=tmp_path / "labels")
    assert len(ds) == 1 and ds.image_id(0) == "a" and bool((ds[0][1] == 2).all())
