"""Cityscapes label space: the 19 train ids with their official names and colours; class names of other models.

The table follows cityscapesscripts' ``labels.py`` (Cordts et al. 2016). ``IGNORE_INDEX`` (255) marks pixels that
take part in neither training nor evaluation. Models with other outputs bring their own names: ``class_ids(text,
names)`` parses ``--hide`` by them, ``label_names(K, names)`` gives the names of all K output classes (the defaults
without names: Cityscapes for 19, Cityscapes and ``void`` for 20, indices otherwise) and ``is_void`` tells a void
output class (``void``, ``unlabeled``, ``unlabelled``, ``ignore``) by its name.

>>> CLASS_NAMES[11], CLASS_NAMES[12], CLASS_NAMES[13]
('person', 'rider', 'car')
>>> class_ids("person,rider")
(11, 12)
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError

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
    spec: str | int | tuple[int | str, ...] | list[int | str], names: Sequence[str] | None = None
) -> tuple[int, ...]:
    """Parse class names or ids ("person", "11", "person,rider", 11, ("person", 12)) into a tuple of ids.

    ``names``: the model's class names, one per output class (default: the 19 Cityscapes train ids). Names match
    case-insensitively, with ``_`` for a space (``traffic_light``); ids are checked against ``len(names)``. A text
    of digits that is also the name of another class (a class named "7" that is not class 7) is ambiguous and
    refused; ``id:7`` then picks the id and ``name:7`` the name. Raises ``ConfigError`` (a ValueError) naming the
    valid classes when a name or id is unknown, or a name that several classes share.

    >>> class_ids("cat", names=("background", "cat", "dog"))
    (1,)
    >>> class_ids("id:1,name:1", names=("1", "0"))
    (1, 0)
    """
    names = CLASS_NAMES if names is None else tuple(str(n) for n in names)
    if isinstance(spec, int):
        items: list[int | str] = [spec]
    elif isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    if not items:
        raise ConfigError("no class given; valid classes: " + _valid(names))
    out: list[int] = []
    lookup: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        for key in dict.fromkeys((n.strip().lower(), n.strip().lower().replace(" ", "_"))):
            lookup.setdefault(key, []).append(i)
    for item in items:
        cid = _class_id(item, names, lookup)
        if cid not in out:
            out.append(cid)
    return tuple(out)


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _class_id(item: int | str, names: tuple[str, ...], lookup: dict[str, list[int]]) -> int:
    """One item of ``class_ids``: an int, a text of digits, ``id:N``, ``name:NAME`` or a name."""
    if not isinstance(item, str):
        number: int | None = None
        try:
            number = operator.index(item) if not isinstance(item, bool) else None  # numpy integers too
        except TypeError:
            pass
        if number is None:
            raise ConfigError(f"a class is a name or an integer id, got {item!r}; valid classes: {_valid(names)}")
        item = number
    text = item.strip() if isinstance(item, str) else ""
    key = text.lower()
    as_name = key in lookup and not _is_id(text)  # an exact name that is not all digits: as before
    if not as_name and key.startswith("id:") and _is_id(text[3:].strip()):
        return _in_range(int(text[3:].strip()), names)
    if not as_name and key.startswith("name:"):
        key, text = key[5:].strip(), text[5:].strip()
        if key not in lookup:
            raise ConfigError(f"unknown class name {text!r}; valid classes: {_valid(names)}")
        return _by_name(text, lookup[key])
    if isinstance(item, int) or _is_id(text):
        cid = _in_range(int(item), names)
        others = [i for i in lookup.get(key, []) if i != cid] if isinstance(item, str) else []
        if others:
            named = ", ".join(map(str, others))
            raise ConfigError(
                f"class {text!r} is ambiguous: class id {cid} ({names[cid]}) or the class named {text!r} (id {named}); "
                f"write id:{text} for the id or name:{text} for the name"
            )
        return cid
    if key not in lookup:
        raise ConfigError(f"unknown class {item!r}; valid classes: {_valid(names)}")
    return _by_name(text, lookup[key])


def _in_range(cid: int, names: tuple[str, ...]) -> int:
    if not 0 <= cid < len(names):
        raise ConfigError(f"class id {cid} is out of range 0..{len(names) - 1}; valid classes: {_valid(names)}")
    return cid


def _by_name(text: str, found: list[int]) -> int:
    if len(found) > 1:
        raise ConfigError(
            f"class name {text!r} is ambiguous: classes {', '.join(map(str, found))} share it; give the id"
        )
    return found[0]


def _valid(names: Sequence[str]) -> str:
    return ", ".join(f"{i}={n}" for i, n in enumerate(names))


#: Names that mark an output class as void (no real class: unlabelled pixels), compared case-insensitively.
VOID_NAMES = frozenset({"void", "unlabeled", "unlabelled", "ignore"})


def is_void(name: str) -> bool:
    """Whether a class name marks a void output class (``void``, ``unlabeled``, ``unlabelled``, ``ignore``; any
    case). ``background`` is a real class (Pascal VOC's 0), not void.

    >>> is_void("Unlabeled"), is_void("background")
    (True, False)
    """
    return str(name).strip().lower() in VOID_NAMES


def label_names(num_classes: int | None, names: Sequence[str] | None = None) -> tuple[str, ...]:
    """The names of all ``num_classes`` output classes of a model.

    With ``names`` (a file's, or the model's own): those, whose number must equal ``num_classes`` (ConfigError naming
    both counts otherwise). Without: the Cityscapes names for 19 classes; for 20 the 19 Cityscapes names and
    ``"void"`` (the common 19 + void layout); otherwise the plain indices ``"0"``, ``"1"``, ... ``num_classes=None``
    (not known) takes ``len(names)``, or the 19 Cityscapes classes.

    >>> label_names(20)[-1], label_names(3)
    ('void', ('0', '1', '2'))
    """
    if names is not None:
        out = tuple(str(n) for n in names)
        if not out:
            raise ConfigError("the list of class names is empty")
        if any(not n.strip() for n in out):
            raise ConfigError(f"class {[n.strip() for n in out].index('')} has an empty name")
        if num_classes is not None and len(out) != num_classes:
            raise ConfigError(
                f"{len(out)} class names given but the model has {num_classes} classes; give one name per output "
                "class, in the order of the model's outputs"
            )
        return out
    if num_classes is None or num_classes == NUM_CLASSES:
        return CLASS_NAMES
    if num_classes == NUM_CLASSES + 1:
        return (*CLASS_NAMES, "void")
    return tuple(str(i) for i in range(num_classes))


def colorize(label: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) uint8 Cityscapes colours; ignore (255) and unknown ids are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(CLASS_COLORS)] = np.asarray(CLASS_COLORS, dtype=np.uint8)
    return lut[np.asarray(label).astype(np.int64).clip(0, 255)]
