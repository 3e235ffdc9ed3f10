"""Cityscapes label space: the 19 train ids with their official names and colours.

The table follows cityscapesscripts' ``labels.py`` (Cordts et al. 2016). ``IGNORE_INDEX`` (255) marks pixels that
take part in neither training nor evaluation.

>>> CLASS_NAMES[11], CLASS_NAMES[12], CLASS_NAMES[13]
('person', 'rider', 'car')
>>> class_ids("person,rider")
(11, 12)
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255
NUM_CLASSES = 19

CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

#: Official labelId (0..33, -1) -> trainId (0..18, 255), from cityscapesscripts' table.
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2, 12: 3, 13: 4,
    14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
    27: 14, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18, -1: 255,
}  # fmt: skip


def class_ids(
    spec: str | int | tuple[int | str, ...] | list[int | str], names: tuple[str, ...] = CLASS_NAMES
) -> tuple[int, ...]:
    """Parse class names or ids ("person", "11", "person,rider", 11, ("person", 12)) into a tuple of ids.

    Raises ValueError naming the valid classes when a name or id is unknown.
    """
    if isinstance(spec, int):
        items: list[int | str] = [spec]
    elif isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    if not items:
        raise ValueError("no class given; valid classes: " + _valid(names))
    out: list[int] = []
    lookup = {n.lower(): i for i, n in enumerate(names)}
    lookup.update({n.lower().replace(" ", "_"): i for i, n in enumerate(names)})
    for item in items:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            cid = int(item)
            if not 0 <= cid < len(names):
                raise ValueError(f"class id {cid} is out of range 0..{len(names) - 1}; valid classes: {_valid(names)}")
        else:
            key = str(item).lower()
            if key not in lookup:
                raise ValueError(f"unknown class {item!r}; valid classes: {_valid(names)}")
            cid = lookup[key]
        if cid not in out:
            out.append(cid)
    return tuple(out)


def _valid(names: tuple[str, ...]) -> str:
    return ", ".join(f"{i}={n}" for i, n in enumerate(names))


def colorize(label: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) uint8 Cityscapes colours; ignore (255) and unknown ids are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(CLASS_COLORS)] = np.asarray(CLASS_COLORS, dtype=np.uint8)
    return lut[np.asarray(label).astype(np.int64).clip(0, 255)]
