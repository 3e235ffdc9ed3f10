"""Any folder of images as a segattack data set, with optional ground truth in a parallel folder.

Images are found recursively (PNG and JPEG, any case of the extension), sorted by their path relative to the root,
and named by that path without its extension, with ``/`` replaced by ``__``: ``street/a/b.png`` -> ``street__a__b``.
Pixels are taken as stored: an EXIF orientation tag is not applied (labels are usually drawn on the stored pixels).

Every image becomes (H, W, 3) uint8 RGB, by its Pillow mode (``decode_rgb``, ``read_rgb``):

- ``1``, ``L``, ``LA``, ``P``, ``PA``, ``RGB``, ``RGBA``, ``RGBX``, ``CMYK``, ``YCbCr``: converted by Pillow; grey is
  copied to R, G and B, palettes are applied, alpha is dropped (not blended), CMYK uses Pillow's formula (no profile).
- 16 bits per channel (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``; 16-bit RGB, RGBA and grey+alpha PNGs): ``v >> 8``,
  the high byte (Pillow itself reduces 16-bit colour PNGs this way, so grey and colour agree).
- ``I`` (32-bit integers): values all in 0..255 are taken as 8-bit levels, otherwise all in 0..65535 as 16-bit
  (``v >> 8``; always so for a 16-bit PNG); anything else (negative, above 65535) is refused.
- ``F`` (32-bit floats): values all in [0, 1] become ``round(v * 255)``, otherwise all in [0, 255] ``round(v)``;
  anything else (negative, above 255, NaN, infinite) is refused.
- Any other mode (``LAB``, ``HSV``, ``La``, ``RGBa``, ...) is refused.

A refused image raises ``UnreadableImageError`` naming the file, its mode, the values found and the fix (convert it to
an 8-bit RGB PNG). An image that is not stored as 8-bit RGB is logged once per data set (the first such file, its
mode and the rule applied; logged at INFO), and once more for the first file deeper than 8 bits (16-bit, ``I``, ``F``;
logged as a WARNING, since a rule chose its 8-bit values).

Ground truth (optional): a folder of single-channel PNGs holding Cityscapes train ids (0..18, 255 = ignore), found by
the image's relative path with the extension ``.png``: image ``street/a/b.jpg`` -> label ``<labels>/street/a/b.png``.
Ids are read exactly as stored, never scaled: 8-bit, 16-bit (``I;16``) and 32-bit PNGs alike, palette PNGs by index.
A colour-coded label (RGB, RGBA, grey+alpha, ...) is refused with a ``ValueError``: label files hold class ids.
Every image must then have its label: a missing one is an error at construction, listing the missing files, because
a partly labelled folder would silently change mIoU. (An attack needs no ground truth: leave ``labels`` out.)

A file that cannot be decoded raises ``UnreadableImageError`` from ``__getitem__``; the experiment skips and counts it.

>>> import tempfile, numpy as np
>>> from PIL import Image
>>> with tempfile.TemporaryDirectory() as root:
...     Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(f"{root}/a.png")
...     ds = ImageFolder(root, size=(8, 12))
...     image, label = ds[0]
>>> len(ds), ds.image_id(0), ds.has_labels, tuple(image.shape), image.dtype, label.unique().tolist()
(1, 'a', False, (3, 8, 12), torch.uint8, [255])
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DataError, DataNotFoundError, UnreadableImageError
from ..rundir import outputs_under
from .labels import IGNORE_INDEX, NUM_CLASSES

__all__ = [
    "ImageFolder",
    "IMAGE_EXTENSIONS",
    "DecodedImage",
    "check_size",
    "decode_rgb",
    "read_rgb",
    "read_label_ids",
    "resize_pair",
    "image_size_of",
    "ImageFiles",
]

log = logging.getLogger(__name__)

#: File name endings read as images (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")

# What Pillow raises for files it cannot decode: unknown format (UnidentifiedImageError is an OSError), truncated or
# corrupt data (OSError, SyntaxError from the PNG plugin, ValueError), images too large (DecompressionBombError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    """Validate an output size ``(H, W)`` in pixels (e.g. the paper's ``(512, 1024)``); None keeps the file's size."""
    if size is None:
        return None
    if (
        isinstance(size, str)
        or not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size)
    ):
        raise DataError(f"size must be a pair of integers (H, W), e.g. (512, 1024), got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise DataError(f"size must be positive (H, W), got {(h, w)}")
    return h, w


#: Modes Pillow converts to 8-bit RGB without loss of meaning (grey copied, palette applied, alpha dropped).
_PILLOW_MODES: dict[str, str] = {
    "1": "black and white to 0 and 255",
    "L": "grey copied to R, G and B",
    "LA": "grey copied to R, G and B, alpha dropped (not blended)",
    "P": "palette colours applied",
    "PA": "palette colours applied, alpha dropped (not blended)",
    "RGB": "taken as stored",
    "RGBA": "alpha dropped (not blended)",
    "RGBX": "padding channel dropped",
    "CMYK": "Pillow's CMYK to RGB formula (no colour profile)",
    "YCbCr": "Pillow's YCbCr to RGB formula",
}
#: 16-bit greyscale modes (byte orders); reduced to 8 bits as ``v >> 8``.
_GREY16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FIX = "convert it to an 8-bit RGB PNG"


class DecodedImage(NamedTuple):
    """What ``decode_rgb`` read: the pixels and how they were obtained from the file."""

    pixels: np.ndarray  #: (H, W, 3) uint8 RGB
    mode: str  #: the file's Pillow mode ('L', 'I;16', 'RGBA', ...)
    note: str | None  #: how the pixels were made 8-bit RGB, naming the mode; None: stored as 8-bit RGB
    deep: bool  #: the file holds more than 8 bits per channel (16-bit, ``I``, ``F``): a rule chose the 8-bit values


def _png_bit_depth(head: bytes) -> int | None:
    """Bits per channel from a PNG's IHDR chunk (bytes 0..25 of the file), None for other files."""
    if len(head) >= 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        return head[24]
    return None


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(values.astype(np.uint8)[..., None], 3, axis=2)


def _refuse(path: Path, what: str) -> UnreadableImageError:
    return UnreadableImageError(f"cannot use image {path}: {what}; {_FIX}")


def _convert(im: Image.Image, path: Path, bit_depth: int | None) -> DecodedImage:
    """A loaded Pillow image -> 8-bit RGB by the rules in the module docstring (refusals raise)."""
    mode = im.mode
    if mode in _PILLOW_MODES:
        if mode in ("P", "PA"):
            # via RGBA, so that a palette's transparency is kept out of the way (and Pillow does not warn about it)
            pixels = np.asarray(im.convert("RGBA"), dtype=np.uint8)[..., :3]
        else:
            pixels = np.asarray(im if mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
        pixels = np.ascontiguousarray(pixels)
        if bit_depth == 16:  # a 16-bit colour PNG: Pillow keeps the high byte of each channel
            note = f"mode {mode} with 16 bits per channel, reduced to 8 bits as v >> 8 (the high byte)"
            if mode != "RGB":
                note += f"; {_PILLOW_MODES[mode]}"
            return DecodedImage(pixels, mode, note, True)
        if mode == "RGB":
            return DecodedImage(pixels, mode, None, False)
        return DecodedImage(pixels, mode, f"mode {mode}: {_PILLOW_MODES[mode]}", False)
    if mode in _GREY16_MODES:
        values = np.asarray(im).astype(np.uint16)
        return DecodedImage(_grey(values >> 8), mode, f"mode {mode} (16-bit grey), reduced to 8 bits as v >> 8", True)
    if mode == "I":
        values = np.asarray(im).astype(np.int64)
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if 0 <= lo and hi <= 65535 and (bit_depth == 16 or hi > 255):
            note = f"mode I (32-bit integer grey) with values {lo}..{hi}, taken as 16-bit and reduced as v >> 8"
            return DecodedImage(_grey(values >> 8), mode, note, True)
        if 0 <= lo and hi <= 255:
            note = f"mode I (32-bit integer grey) with values {lo}..{hi}, taken as 8-bit levels"
            return DecodedImage(_grey(values), mode, note, True)
        raise _refuse(
            path,
            f"mode I (32-bit integer grey) holds values {lo}..{hi}, outside both 0..255 (8-bit) and 0..65535 "
            "(16-bit), so their brightness is unknown",
        )
    if mode == "F":
        values = np.asarray(im).astype(np.float64)
        if not bool(np.isfinite(values).all()):
            raise _refuse(path, "mode F (32-bit float grey) holds NaN or infinite values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if 0 <= low and high <= 1:
            note = f"mode F (32-bit float grey) with values {low:g}..{high:g} in [0, 1], scaled as round(v * 255)"
            return DecodedImage(_grey(np.rint(values * 255)), mode, note, True)
        if 0 <= low and high <= 255:
            note = f"mode F (32-bit float grey) with values {low:g}..{high:g}, taken as 8-bit levels, rounded"
            return DecodedImage(_grey(np.rint(values)), mode, note, True)
        raise _refuse(
            path,
            f"mode F (32-bit float grey) holds values {low:g}..{high:g}, outside both [0, 1] and [0, 255], so their "
            "brightness is unknown",
        )
    supported = ", ".join([*_PILLOW_MODES, *sorted(_GREY16_MODES), "I", "F"])
    raise _refuse(path, f"Pillow mode {mode!r} is not supported (supported: {supported})")


def decode_rgb(path: Path) -> DecodedImage:
    """Decode an image file into (H, W, 3) uint8 RGB by the per-mode rules of the module docstring, with the file's
    Pillow mode and a note of the conversion applied (None for a file stored as 8-bit RGB).

    Raises ``UnreadableImageError`` naming the file when Pillow cannot decode it, and naming the mode, the values
    found and the fix when its values have no known 8-bit meaning (mode ``I`` or ``F`` out of range, an unsupported
    mode).

    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as root:
    ...     Image.fromarray(np.full((2, 2), 0x1234, np.uint16)).save(f"{root}/grey16.png")
    ...     image = decode_rgb(Path(root) / "grey16.png")
    >>> image.mode, image.pixels[0, 0].tolist(), image.note
    ('I;16', [18, 18, 18], 'mode I;16 (16-bit grey), reduced to 8 bits as v >> 8')
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            bit_depth = _png_bit_depth(f.read(26))
            f.seek(0)
            with Image.open(f) as im:
                im.load()
                return _convert(im, path, bit_depth)
    except _DECODE_ERRORS as e:
        if isinstance(e, UnreadableImageError):
            raise
        raise UnreadableImageError(f"cannot read image {path}: {e}") from e


def read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """Decode an image file into (H, W, 3) uint8 RGB; also return the file's original Pillow mode ('L', 'RGBA', ...).

    The rules per mode are those of the module docstring (``decode_rgb``, which also says what was converted).
    Raises ``UnreadableImageError`` naming the file when Pillow cannot decode it or its values are refused.
    """
    image = decode_rgb(path)
    return image.pixels, image.mode


def read_label_ids(path: Path) -> np.ndarray:
    """Decode a single-channel label PNG into (H, W) int64 ids, exactly as stored: no palette colours applied, no
    scaling (a 16-bit ``I;16`` PNG holding id 7 reads 7).

    Raises ``UnreadableImageError`` when the file cannot be decoded, ``ValueError`` when it has colour channels
    (a colour rendering of the labels, RGB or with alpha) or holds values that are not integers (mode ``F``).
    """
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except _DECODE_ERRORS as e:
        raise UnreadableImageError(f"cannot read label {path}: {e}") from e
    if arr.ndim != 2:
        raise DataError(
            f"label {path} has mode {mode} with {arr.shape[2]} channels; label files must hold class ids in one "
            "channel (a grey, 16-bit grey or palette PNG of ids), not colours: save the id array itself, e.g. "
            "Image.fromarray(ids.astype(np.uint8)).save(path), not a colour rendering of the labels"
        )
    if arr.dtype.kind == "f":
        if not bool(np.isfinite(arr).all()) or not bool((arr == np.round(arr)).all()):
            raise DataError(
                f"label {path} has mode {mode} holding values that are not whole numbers; label files must hold "
                "integer class ids: save them as an 8-bit grey PNG"
            )
    return arr.astype(np.int64)


def resize_pair(
    image: np.ndarray, label: np.ndarray | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize (H, W, 3) uint8 to ``size`` = (H', W') with Pillow's antialiased bilinear filter and an (H, W) label
    with nearest neighbour (ids are never blended). Unchanged when ``size`` is None or already the size."""
    if size is None or image.shape[:2] == size:
        return image, label
    h, w = size
    out = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
    if label is not None:
        # Pillow's nearest filter on 32-bit ints keeps every id exactly.
        lab = Image.fromarray(label.astype(np.int32)).resize((w, h), Image.Resampling.NEAREST)
        label = np.asarray(lab).astype(np.int64)
    return out, label


def to_item(image: np.ndarray, label: np.ndarray | None) -> tuple[Tensor, Tensor]:
    """(H, W, 3) uint8 and (H, W) int64 train ids (or None: all ``IGNORE_INDEX``) -> the contract's tensors."""
    img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    if label is None:
        lab = torch.full(image.shape[:2], IGNORE_INDEX, dtype=torch.int64)
    else:
        lab = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
    return img, lab


def _is_output(p: Path, outputs: set[Path]) -> bool:
    """Whether ``p`` is (or lies in) one of ``outputs`` (resolved paths)."""
    if not outputs:
        return False
    r = p.resolve()
    return r in outputs or any(parent in outputs for parent in r.parents)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


class ImageFiles:
    """What the data sets read from image files share: one file per item (``files``), resized to ``size`` (H, W)
    or kept at the file's size (None); their length and each item's size, from the file's header."""

    files: list[Path]
    size: tuple[int, int] | None

    def __len__(self) -> int:
        return len(self.files)

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of item ``index`` as ``__getitem__`` returns it, read from the file's header (no decoding):
        memory is estimated before anything is decoded."""
        if self.size is not None:
            return self.size
        return image_size_of(self.files[index])


class ImageFolder(ImageFiles, Dataset[tuple[Tensor, Tensor]]):
    """Images found recursively under ``root``; optional train-id label PNGs under ``labels``.

    Args:
        root: folder of PNG/JPEG images (searched recursively; hidden files skipped).
        labels: optional folder of label PNGs with the same relative names (extension ``.png``) holding train ids.
        size: optional output size (H, W) in pixels; images are resized bilinearly (antialiased), labels with
            nearest neighbour.

    Items: ``(image, label)``: uint8 (3, H, W) RGB and int64 (H, W) train ids, all 255 without ``labels``.

    Raises:
        FileNotFoundError: ``root`` or ``labels`` is not a folder; an image has no label file.
        ValueError: no image found under ``root`` (the message lists the accepted extensions); a bad ``size``;
            ``labels`` is ``root`` or a folder above it (a ``DataError``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        labels: str | os.PathLike[str] | None = None,
        size: Sequence[int] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.size = check_size(size)
        if not self.root.is_dir():
            what = "is a file, not a folder" if self.root.exists() else "does not exist"
            raise DataNotFoundError(f"image folder {self.root} {what}")
        label_root = None if labels is None else Path(labels).expanduser()
        # a label folder inside the image folder holds PNGs too: they are labels, not images
        skip = label_root.resolve() if label_root is not None and label_root.is_dir() else None
        if skip is not None and self.root.resolve().is_relative_to(skip):
            same = "is the image folder" if self.root.resolve() == skip else "holds the image folder"
            raise DataError(
                f"the label folder {label_root} {same} {self.root}: its files would all be read as labels, "
                "leaving no image; point labels (--labels) at the folder of label PNGs named like the images"
            )
        # what a segattack run wrote into (or above, or below) this folder is output, never input: the same images
        # are read before and after `run --data folder:X --out X --save-images`
        outputs = set(outputs_under(self.root))
        found = sorted(
            (
                p
                for p in self.root.rglob("*")
                if _is_image(p) and p.is_file() and (skip is None or not p.resolve().is_relative_to(skip))
            ),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        files = [p for p in found if not _is_output(p, outputs)]
        if len(files) < len(found):
            log.info("%s: leaving out %d image(s) that segattack runs wrote there (their outputs, not inputs)",
                     self.root, len(found) - len(files))  # fmt: skip
        if not files:
            also = f" ({len(found)} images there were written by segattack runs: outputs, not inputs)" if found else ""
            raise DataError(
                f"no images found under {self.root} (searched recursively for {', '.join(IMAGE_EXTENSIONS)}, any "
                f"case){also}"
            )
        self.files: list[Path] = files
        rel = [p.relative_to(self.root).with_suffix("") for p in files]
        self._ids = [r.as_posix().replace("/", "__") for r in rel]
        dupes = sorted(i for i, n in Counter(self._ids).items() if n > 1)
        if dupes:
            raise DataError(
                f"image ids must be unique, but several files share the name without extension: {dupes[:5]} "
                "(e.g. a.png and a.jpg); keep one of each"
            )
        self.label_root: Path | None = None
        self.label_files: list[Path] | None = None
        if label_root is not None:
            self.label_root = label_root
            if not self.label_root.is_dir():
                what = "is a file, not a folder" if self.label_root.exists() else "does not exist"
                raise DataNotFoundError(f"label folder {self.label_root} {what}")
            self.label_files = [self.label_root / r.with_suffix(".png") for r in rel]
            missing = [(f, lf) for f, lf in zip(files, self.label_files, strict=True) if not lf.is_file()]
            if missing:
                shown = "; ".join(f"{f} -> {lf}" for f, lf in missing[:5])
                raise DataNotFoundError(
                    f"{len(missing)} of {len(files)} images have no label PNG in {self.label_root} "
                    f"(expected the image's relative path with .png): {shown}" + (" ..." if len(missing) > 5 else "")
                )
        self.has_labels = self.label_files is not None
        self._noted: set[str] = set()

    def image_id(self, index: int) -> str:
        """Relative path without extension, '/' -> '__' (stable across runs and machines)."""
        return self._ids[index]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path = self.files[index]
        decoded = decode_rgb(path)
        image = decoded.pixels
        if decoded.note is not None:
            # once per data set for 8-bit conversions (info), once more for the first file deeper than 8 bits
            # (warning: a rule chose its 8-bit values), so that grey JPEGs noted first cannot hide a 16-bit rule
            kind = "deep" if decoded.deep else "convert"
            if kind not in self._noted:
                self._noted.add(kind)
                log.log(
                    logging.WARNING if decoded.deep else logging.INFO,
                    "%s: image %s: %s; converting to RGB (noted once per data set)",
                    self.root,
                    path,
                    decoded.note,
                )
        label = None
        if self.label_files is not None:
            lpath = self.label_files[index]
            label = read_label_ids(lpath)
            if label.shape != image.shape[:2]:
                raise DataError(
                    f"label {lpath} is {label.shape[1]}x{label.shape[0]} but image {path} is "
                    f"{image.shape[1]}x{image.shape[0]} (W x H)"
                )
            bad = (label != IGNORE_INDEX) & ((label < 0) | (label >= NUM_CLASSES))
            if bool(bad.any()):
                vals = np.unique(label[bad])[:5].tolist()
                raise DataError(
                    f"label {lpath} holds ids {vals}; expected train ids 0..{NUM_CLASSES - 1} or {IGNORE_INDEX} "
                    "(map official Cityscapes labelIds to train ids first, or use the Cityscapes data set)"
                )
        image, label = resize_pair(image, label, self.size)
        return to_item(image, label)

    def __repr__(self) -> str:
        lab = f", labels={str(self.label_root)!r}" if self.label_root is not None else ""
        return f"ImageFolder({str(self.root)!r}{lab}, size={self.size}) with {len(self)} images"


# -- image sizes, without decoding ---------------------------------------------------------------------------------

_BOMB_LOCK = threading.Lock()


def _open_size(path: Path) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:  # lazy: reads the header, decodes nothing
            return im.height, im.width


def image_size_of(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding its pixels.

    Pillow's decompression-bomb guard (a warning above ``Image.MAX_IMAGE_PIXELS``, an error above twice that) does
    not apply here: the size is what is asked for, and the memory estimate made from it decides. A missing file
    raises ``FileNotFoundError``; a file Pillow cannot identify or whose header is broken raises
    ``UnreadableImageError``.
    """
    p = Path(path)
    try:
        try:
            return _open_size(p)
        except Image.DecompressionBombError:
            with _BOMB_LOCK:  # the limit is a module global: lift it for this one header, then restore it
                saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None
                try:
                    return _open_size(p)
                finally:
                    Image.MAX_IMAGE_PIXELS = saved
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise UnreadableImageError(f"cannot read the size of image {p}: {err}") from err
