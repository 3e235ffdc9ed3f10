"""The model card: what a shipped or exported model is, read and checked in one place.

A model ``NAME`` is a JSON card ``NAME.json`` next to its weights (``NAME.safetensors``, in the same folder). The
card gives the architecture (``arch``, ``arch_kwargs``), ``num_classes``, the normalisation ``mean``/``std`` (per
channel, in [0, 1] units), the weights' file name and SHA-256, optionally ``class_names`` (one per output class),
and what the producer adds: ``training`` (the record ``segattack train`` writes), validation results and so on.

``ModelCard.read(path)`` checks every field's type and value and raises ``ModelError`` with one line naming the
card, the field and what it should be. Every module that needs a card (``zoo.load``, ``segattack train --init``,
the command line's ``zoo:`` specs, ``scripts/ship_model.py``) reads it through this class.

>>> import json, tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp) / "m.json"
...     _ = path.write_text(json.dumps({"arch": "fcn8s", "num_classes": None, "mean": [0.5], "std": [0.2],
...                                     "sha256": 64 * "0"}))
...     ModelCard.read(path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
segattack.errors.ModelError: model card .../m.json: num_classes must be a positive integer (...), got null; ...
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from torch import nn

from ..data.labels import label_names
from ..errors import ConfigError, ModelError
from .architectures import ARCHITECTURES

__all__ = ["CARD_FORMAT", "ModelCard", "check_model_name"]

#: The card format this version writes and reads.
CARD_FORMAT = 1

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_FIX = "fix the card or re-export the model with zoo.save_model"

#: The fields a card's producer may not set through ``extra`` (``save_model``): the card's own.
CORE_FIELDS = ("format", "name", "description", "arch", "arch_kwargs", "num_classes", "mean", "std", "weights",
               "sha256", "parameters")  # fmt: skip


def check_model_name(name: object, *, what: str = "model name") -> str:
    """``name`` if it is a plain model name (the stem of ``NAME.json`` / ``NAME.safetensors``: letters, digits,
    ``_``, ``-`` and ``.``, starting with a letter or digit; no folder, no ``..``, no extension); ``ConfigError``
    naming ``what`` otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith((".json", ".safetensors")):
        raise ConfigError(
            f"{what} must be a plain file name: letters, digits, '_', '-' or '.', starting with a letter or digit, "
            f"without a folder or a file extension, got {name!r}"
        )
    return name


def _shown(value: object, limit: int = 80) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_pair(value: object) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(_is_int(v) and v >= 1 for v in value)


def _is_plain_file_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and value not in ("", ".", "..")
        and Path(value).name == value
        and not any(c in value for c in "/\\\0")
    )


#: Fields of the ``training`` record that code reads (``segattack train --init``, ``scripts/ship_model.py``): what
#: each must be, and the test. Other fields of the record are kept as they are.
_TRAINING_FIELDS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "steps": ("a positive integer", lambda v: _is_int(v) and v >= 1),
    "seed": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "batch_size": ("a positive integer", lambda v: _is_int(v) and v >= 1),
    "train_images": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "val_images": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "crop": ("[height, width] in pixels or null", lambda v: v is None or _is_pair(v)),
    "image_size": ("[height, width] in pixels", _is_pair),
    "lr": ("a positive number", lambda v: _is_number(v) and v > 0),
    "weight_decay": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "elapsed_s": ("a number of seconds >= 0", lambda v: _is_number(v) and v >= 0),
    "final_train_loss": ("a number or null", lambda v: v is None or _is_number(v)),
    "optimizer": ("a string", lambda v: isinstance(v, str)),
    "schedule": ("a string", lambda v: isinstance(v, str)),
    "device": ("a string", lambda v: isinstance(v, str)),
    "torch": ("a string", lambda v: isinstance(v, str)),
    "train_data": ("a string", lambda v: isinstance(v, str)),
    "init": ("a model spec such as zoo:NAME", lambda v: isinstance(v, str) and v.startswith("zoo:")),
    "init_sha256": (
        "the init weights' SHA-256 as 64 hex digits",
        lambda v: isinstance(v, str) and bool(_SHA256_RE.match(v)),
    ),  # fmt: skip
    "config": ("a JSON object (the training configuration)", lambda v: isinstance(v, Mapping)),
}


@dataclass(frozen=True)
class ModelCard:
    """A model card, checked (build one with ``ModelCard.read`` or ``ModelCard.from_json``).

    ``path``: the card file; ``weights``: the weights' file name, in the card's folder (``weights_path``);
    ``sha256``: their digest (lower-case hex); ``mean``/``std``: per-channel normalisation in [0, 1] units;
    ``class_names``: one name per output class, or None; ``training``: the record of ``segattack train``, or None;
    ``extra``: every other field, as read (validation results, the training command, ...). The mappings are the
    card's own: treat them as read-only.
    """

    path: Path
    name: str
    arch: str
    arch_kwargs: dict[str, Any]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: str
    sha256: str
    description: str = ""
    format: int = CARD_FORMAT
    parameters: int | None = None
    class_names: tuple[str, ...] | None = None
    training: dict[str, Any] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        """The weights file: ``weights`` in the card's folder."""
        return self.path.parent / self.weights

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        """Read and check the card at ``path``; ``ModelError`` naming the card and the field otherwise."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"model card {path} does not exist", spec=str(path)) from None
        except UnicodeDecodeError:
            raise ModelError(f"model card {path} is not UTF-8 text (JSON); {_FIX}", spec=str(path)) from None
        except OSError as err:
            raise ModelError(f"cannot read model card {path}: {err.strerror or err}", spec=str(path)) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelError(f"model card {path} is not valid JSON: {err}", spec=str(path)) from None
        except RecursionError:
            raise ModelError(f"model card {path} is nested too deeply to be a model card", spec=str(path)) from None
        if not isinstance(data, dict):
            raise ModelError(f"model card {path} must hold a JSON object, got {type(data).__name__}", spec=str(path))
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str | Path, *, fix: str = _FIX) -> ModelCard:
        """The card that the JSON object ``data`` (as read from ``path``) describes, every field checked;
        ``ModelError`` ending in ``fix`` otherwise."""
        path = Path(path)

        def bad(field: str, should: str) -> ModelError:
            return ModelError(
                f"model card {path}: {field} must be {should}, got {_shown(data[field])}; {fix}", spec=str(path)
            )

        def required(field: str) -> Any:
            if field not in data:
                raise ModelError(f"model card {path} lacks the field {field!r}; {fix}", spec=str(path))
            return data[field]

        fmt = data.get("format", CARD_FORMAT)
        if not _is_int(fmt) or fmt < 1:
            raise bad("format", f"the card format, an integer such as {CARD_FORMAT}")
        if fmt > CARD_FORMAT:
            raise ModelError(
                f"model card {path} has format {fmt}, newer than this segattack reads ({CARD_FORMAT}); upgrade "
                "segattack",
                spec=str(path),
            )
        name = data.get("name", path.stem)
        if not isinstance(name, str):
            raise bad("name", "a string (the model's name)")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise bad("description", "a string (one line describing the model)")

        arch = required("arch")
        if not isinstance(arch, str) or arch not in ARCHITECTURES:
            raise ModelError(
                f"model card {path} names architecture {_shown(arch)}; known architectures: "
                f"{', '.join(sorted(ARCHITECTURES))}; {fix}",
                spec=str(path),
            )
        arch_kwargs = data.get("arch_kwargs", {})
        if not isinstance(arch_kwargs, Mapping):
            raise bad("arch_kwargs", 'a JSON object of the architecture\'s keyword arguments, such as {"width": 0.125}')
        accepted = inspect.signature(ARCHITECTURES[arch]).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            takes = sorted(k for k in accepted if k != "num_classes")
            unknown = sorted(set(arch_kwargs) - set(takes))
            if unknown:
                raise ModelError(
                    f"model card {path} gives {arch} the unknown arch_kwargs {unknown}; {arch} takes {takes}: {fix}",
                    spec=str(path),
                )

        num_classes = required("num_classes")
        if not _is_int(num_classes) or num_classes < 1:
            raise bad("num_classes", "a positive integer (the number of output classes)")
        mean, std = required("mean"), required("std")
        if not (isinstance(mean, list | tuple) and mean and all(_is_number(v) and 0 <= v <= 1 for v in mean)):
            raise bad("mean", "a list of per-channel means in [0, 1] units, such as [0.485, 0.456, 0.406]")
        if not (isinstance(std, list | tuple) and std and all(_is_number(v) and v > 0 for v in std)):
            raise bad("std", "a list of positive per-channel standard deviations in [0, 1] units, such as "
                             "[0.229, 0.224, 0.225]")  # fmt: skip
        if len(mean) != len(std):
            raise ModelError(
                f"model card {path}: mean has {len(mean)} values but std {len(std)}; give one of each per channel; "
                f"{fix}",
                spec=str(path),
            )

        weights = data.get("weights", f"{path.stem}.safetensors")
        if not (_is_plain_file_name(weights) and str(weights).endswith(".safetensors")):
            raise bad("weights", f"the file name of the weights in the card's folder, such as {path.stem}.safetensors "
                                 "(no folder, no '..')")  # fmt: skip
        sha256 = required("sha256")
        if not (isinstance(sha256, str) and _SHA256_RE.match(sha256)):
            raise bad("sha256", "the SHA-256 of the weights file as 64 hex digits")
        parameters = data.get("parameters")
        if parameters is not None and not (_is_int(parameters) and parameters >= 0):
            raise bad("parameters", "the number of parameters, an integer >= 0")

        names = data.get("class_names")
        class_names: tuple[str, ...] | None = None
        if names is not None:
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                raise ModelError(
                    f"model card {path}: class_names must be a list of strings, one per class; {fix}", spec=str(path)
                )
            try:
                class_names = label_names(num_classes, names)
            except ValueError as err:
                raise ModelError(f"model card {path}: class_names: {err}", spec=str(path)) from None

        training = data.get("training")
        if training is not None:
            if not isinstance(training, Mapping):
                raise bad("training", "a JSON object (the record of segattack train)")
            for key, (should, ok) in _TRAINING_FIELDS.items():
                if key in training and not ok(training[key]):
                    raise ModelError(
                        f"model card {path}: training.{key} must be {should}, got {_shown(training[key])}; {fix}",
                        spec=str(path),
                    )
            training = dict(training)

        return cls(
            path=path, name=name, arch=arch, arch_kwargs=dict(arch_kwargs), num_classes=num_classes,
            mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), weights=weights,
            sha256=sha256.lower(), description=description, format=fmt, parameters=parameters,
            class_names=class_names, training=training,
            extra={k: v for k, v in data.items() if k not in (*CORE_FIELDS, "class_names", "training")},
        )  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        """The card as the JSON object it is written as: its own fields first, then ``class_names``, ``training``
        and the others in their order."""
        out: dict[str, Any] = {
            "format": self.format, "name": self.name, "description": self.description, "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs), "num_classes": self.num_classes, "mean": list(self.mean),
            "std": list(self.std), "weights": self.weights, "sha256": self.sha256,
        }  # fmt: skip
        if self.parameters is not None:
            out["parameters"] = self.parameters
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        if self.training is not None:
            out["training"] = dict(self.training)
        out.update(self.extra)
        return out

    def build(self) -> nn.Module:
        """A fresh network of the card's architecture (random weights); ``ModelError`` if the arguments do not
        build it."""
        try:
            return ARCHITECTURES[self.arch](self.num_classes, **self.arch_kwargs)
        except (TypeError, ValueError) as err:
            raise ModelError(
                f"model card {self.path}: cannot build {self.arch}({self.arch_kwargs}): {err}; {_FIX}",
                spec=str(self.path),
            ) from None
