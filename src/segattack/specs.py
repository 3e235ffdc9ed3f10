"""Text specifications of data sets and models, as the ``segattack`` command takes them.

Data (``--data``):

- ``synthetic[:N]``: the embedded synthetic street scenes, validation split, N images (default 20);
- ``synthetic-train[:N]``: the same generator's training split (scenes the validation split never shows), e.g. to
  fit a universal perturbation on images other than those it is measured on;
- ``cityscapes:PATH[:SPLIT]``: Cityscapes in its official layout under PATH (``leftImg8bit/``, ``gtFine/``),
  split ``val`` by default;
- ``folder:PATH``: every image file in a folder (no ground truth needed: targets come from the prediction).

Models (``--model``):

- ``zoo:NAME``: a shipped model (``segattack.zoo.available()``), or ``zoo:PATH/NAME.json`` for a model card written by
  ``segattack train`` / ``zoo.save_model`` elsewhere;
- ``module.path:callable``: a function (or class) returning an ``nn.Module`` (or a ready ``PixelModel``); with
  ``weights=`` a state dict is loaded into it (``.safetensors`` via safetensors, ``.pt``/``.pth`` via
  ``torch.load(weights_only=True)``, never unpickling arbitrary objects). The current directory is importable.

Mistakes raise ``SpecError`` (a ``ValueError``) with a message meant for the user.

>>> parse_data_spec("synthetic:5")
DataSpec(scheme='synthetic', path=None, split='val', count=5)
>>> parse_data_spec("imagenet:/data")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
segattack.specs.SpecError: unknown data scheme 'imagenet' in 'imagenet:/data'; valid: synthetic[:N], synthetic-train...
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ModelError, SegattackError, UserError
from .models import PixelModel, model_fingerprint

__all__ = [
    "SpecError",
    "DataSpec",
    "ModelSpec",
    "parse_data_spec",
    "parse_model_spec",
    "load_data",
    "load_model",
    "default_model_name",
    "model_fingerprint",
    "parse_size",
    "DATA_SCHEMES",
    "DEFAULT_SYNTHETIC_IMAGES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

DATA_SCHEMES = ("synthetic[:N]", "synthetic-train[:N]", "cityscapes:PATH[:SPLIT]", "folder:PATH")
DEFAULT_SYNTHETIC_IMAGES = 20
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SpecError(UserError):
    """A data or model specification that cannot be honoured; the message is meant for the user."""


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value."""

    scheme: str
    path: str | None = None
    split: str = "val"
    count: int | None = None

    def __str__(self) -> str:
        if self.scheme == "synthetic":
            return f"synthetic:{self.count}" if self.split == "val" else f"synthetic-{self.split}:{self.count}"
        if self.scheme == "cityscapes":
            return f"cityscapes:{self.path}:{self.split}"
        return f"{self.scheme}:{self.path}"


def parse_data_spec(spec: str) -> DataSpec:
    """Parse ``synthetic[:N]``, ``synthetic-train[:N]``, ``cityscapes:PATH[:SPLIT]`` or ``folder:PATH`` (see the
    module docstring).

    >>> parse_data_spec("synthetic-train:40")
    DataSpec(scheme='synthetic', path=None, split='train', count=40)
    """
    spec = spec.strip()
    scheme, _, rest = spec.partition(":")
    scheme = scheme.lower()
    if scheme in ("synthetic", "synthetic-train"):
        split = "train" if scheme == "synthetic-train" else "val"
        if not rest:
            return DataSpec("synthetic", split=split, count=DEFAULT_SYNTHETIC_IMAGES)
        if not rest.isdigit() or int(rest) < 1:
            raise SpecError(f"{scheme}:N needs a positive whole number of images, got {spec!r}")
        return DataSpec("synthetic", split=split, count=int(rest))
    if scheme == "cityscapes":
        path, split = rest, "val"
        head, sep, tail = rest.rpartition(":")
        if sep and tail in ("train", "val", "test") and head:
            path, split = head, tail
        _check_dir(path, spec, "cityscapes:PATH[:SPLIT], PATH holding leftImg8bit/ and gtFine/")
        return DataSpec("cityscapes", path=path, split=split)
    if scheme == "folder":
        _check_dir(rest, spec, "folder:PATH, a folder of images")
        return DataSpec("folder", path=rest)
    raise SpecError(f"unknown data scheme {scheme!r} in {spec!r}; valid: {', '.join(DATA_SCHEMES)}")


def _check_dir(path: str, spec: str, form: str) -> None:
    if not path:
        raise SpecError(f"{spec!r} names no path; the form is {form}")
    p = Path(path).expanduser()
    if not p.exists():
        raise SpecError(f"data path {path!r} does not exist")
    if not p.is_dir():
        raise SpecError(f"data path {path!r} is not a directory")
    if not any(p.iterdir()):
        raise SpecError(f"data path {path!r} is empty")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"256x512"`` -> (256, 512) (height x width, pixels); None stays None.

    >>> parse_size("32x64")
    (32, 64)
    """
    if text is None:
        return None
    h, sep, w = text.lower().partition("x")
    if not sep or not h.strip().isdigit() or not w.strip().isdigit() or int(h) < 1 or int(w) < 1:
        raise SpecError(f"size must be HEIGHTxWIDTH in pixels, e.g. 256x512, got {text!r}")
    return int(h), int(w)


def load_data(spec: str | DataSpec, *, size: tuple[int, int] | None = None, labels: str | Path | None = None) -> Any:
    """Build the data set a spec names (a ``segattack.data`` data set; items are (uint8 image, int64 label)).

    ``size``: (H, W) in pixels to resize to; None keeps each data set's default (synthetic: its own default size,
    Cityscapes and folders: the files' size). ``labels``: a folder of train-id label PNGs matching a ``folder:``
    data set's images by relative name (other data sets bring their own ground truth).
    """
    ds = parse_data_spec(spec) if isinstance(spec, str) else spec
    if labels is not None and ds.scheme != "folder":
        raise SpecError(f"a labels folder goes with folder:PATH data only; {ds} brings its own ground truth")
    if ds.scheme == "synthetic":
        from .data.synthetic import SyntheticStreets

        kwargs: dict[str, Any] = {"split": ds.split, "length": ds.count, "seed": 0}
        if size is not None:
            kwargs["size"] = size
        return SyntheticStreets(**kwargs)
    assert ds.path is not None
    root = str(Path(ds.path).expanduser())
    try:
        if ds.scheme == "cityscapes":
            from .data.cityscapes import Cityscapes

            data: Any = Cityscapes(root, split=ds.split, size=size)
        else:
            from .data.folder import ImageFolder

            data = ImageFolder(root, size=size, labels=labels)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise SpecError(f"cannot read {ds}: {err}") from err
    if len(data) == 0:
        raise SpecError(f"{ds} holds no images")
    return data


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model`` value: ``zoo:NAME`` (``kind='zoo'``) or ``module:callable`` (``kind='callable'``)."""

    kind: str
    target: str
    module: str | None = None
    attr: str | None = None

    def __str__(self) -> str:
        return f"zoo:{self.target}" if self.kind == "zoo" else self.target


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``zoo:NAME`` or ``module.path:callable``.

    >>> parse_model_spec("zoo:fcn8s")
    ModelSpec(kind='zoo', target='fcn8s', module=None, attr=None)
    >>> parse_model_spec("mypkg.nets:build").attr
    'build'
    """
    spec = spec.strip()
    head, sep, tail = spec.partition(":")
    if not sep or not head or not tail:
        raise SpecError(
            f"model spec {spec!r} is neither zoo:NAME nor module.path:callable "
            "(e.g. --model zoo:NAME or --model mypkg.nets:build_model)"
        )
    if head == "zoo":
        return ModelSpec("zoo", tail)
    if not all(part.isidentifier() for part in head.split(".")) or not all(
        part.isidentifier() for part in tail.split(".")
    ):
        raise SpecError(
            f"model spec {spec!r}: expected zoo:NAME or module.path:callable with Python identifiers on both sides"
        )
    return ModelSpec("callable", spec, module=head, attr=tail)


def default_model_name() -> str:
    """The shipped default model's name: ``zoo.DEFAULT_MODEL`` if set, else the first available model."""
    from . import zoo

    names = zoo.available()
    default = getattr(zoo, "DEFAULT_MODEL", None)
    if default:
        if default not in names:
            raise SpecError(
                f"the shipped default model {default!r} is missing from {zoo.WEIGHTS_DIR} (no weights or model card); "
                "reinstall segattack, or pass --model zoo:PATH/NAME.json or --model module.path:callable"
            )
        return str(default)
    if not names:
        raise SpecError(
            f"no shipped model found in {zoo.WEIGHTS_DIR}: the default model is missing; reinstall segattack, or pass "
            "--model zoo:PATH/NAME.json or --model module.path:callable"
        )
    return sorted(names)[0]


def load_model(
    spec: str | ModelSpec,
    *,
    weights: str | os.PathLike[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> PixelModel:
    """Build the ``PixelModel`` a spec names (see the module docstring).

    For ``module:callable`` specs ``mean``/``std`` default to ImageNet's (in [0, 1] units) and ``num_classes`` to
    None (not checked); ``weights`` is a state dict file. For ``zoo:`` specs the model card provides all three; a
    given ``num_classes`` that disagrees with it is an error.
    """
    ms = parse_model_spec(spec) if isinstance(spec, str) else spec
    if ms.kind == "zoo":
        if weights is not None or mean is not None or std is not None:
            raise SpecError("--weights, --mean and --std apply to module:callable models; a zoo model has its own")
        model = _load_zoo(ms.target, device)
        if num_classes is not None and model.num_classes is not None and model.num_classes != num_classes:
            raise SpecError(f"model zoo:{ms.target} has {model.num_classes} classes, not {num_classes}")
        return model
    assert ms.module is not None and ms.attr is not None
    factory = _import_callable(ms.module, ms.attr, str(ms))
    try:
        obj = factory()
    except SegattackError:
        raise
    except Exception as err:  # the user's factory failed: one line naming it (the traceback with --verbose)
        raise ModelError(f"calling {ms}() failed: {type(err).__name__}: {err}", spec=str(ms)) from err
    if isinstance(obj, PixelModel):
        if mean is not None or std is not None:
            raise SpecError(f"{ms} returns a PixelModel with its own normalisation; drop --mean/--std")
        model = obj
        if num_classes is not None:
            model.num_classes = num_classes
    elif isinstance(obj, nn.Module):
        model = PixelModel(
            obj,
            mean=tuple(mean) if mean is not None else IMAGENET_MEAN,
            std=tuple(std) if std is not None else IMAGENET_STD,
            num_classes=num_classes,
        )
    else:
        raise SpecError(f"{ms} returned {type(obj).__name__}, not a torch.nn.Module")
    if weights is not None:
        _load_weights(model.net, Path(weights))
    model.net.eval()
    return model.to(device)


def _load_zoo(name: str, device: str | torch.device) -> PixelModel:
    from . import zoo

    if name.endswith(".json"):
        card = Path(name).expanduser()
        if not card.is_file():
            raise SpecError(f"model card {name!r} does not exist")
        root: Path | None = card.parent
        stem = card.stem
    else:
        root, stem = None, name  # the shipped weights
    try:
        return zoo.load(stem, device=device, weights_dir=root)
    except ValueError as err:
        raise SpecError(str(err)) from err


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """The current directory on ``sys.path`` for the ``with`` block only (as ``python -m`` would have it)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import_callable(module: str, attr: str, spec: str) -> Any:
    try:
        with _cwd_importable():
            mod = importlib.import_module(module)
    except ImportError as err:
        raise SpecError(f"cannot import module {module!r} (from --model {spec}): {err}") from err
    except SyntaxError as err:
        where = f"{err.filename}, line {err.lineno}" if err.filename else f"module {module!r}"
        raise ModelError(f"{where}: SyntaxError: {err.msg} (from --model {spec})", spec=spec) from err
    except Exception as err:  # the module raised while being imported
        raise ModelError(f"importing {module!r} failed: {type(err).__name__}: {err}", spec=spec) from err
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"module {module!r} has no attribute {attr!r} (from --model {spec})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"{spec} is not callable")
    return obj


def _load_weights(net: nn.Module, path: Path) -> None:
    path = path.expanduser()
    if not path.is_file():
        raise SpecError(f"weights file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        elif suffix in (".pt", ".pth", ".bin"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's advice on weights_only is replaced by ours below
                state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise SpecError(f"weights file {str(path)!r}: expected .safetensors, .pt or .pth")
    except SpecError:
        raise
    except pickle.UnpicklingError as err:
        raise SpecError(
            f"weights file {str(path)!r} holds pickled objects, which segattack never unpickles (weights_only=True): "
            "save a plain state dict (torch.save(net.state_dict(), FILE)) or a .safetensors file"
        ) from err
    except Exception as err:  # noqa: BLE001 - any decoding failure is the file's fault; say which file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"cannot read weights file {str(path)!r}: {first}") from err
    if isinstance(state, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in state and isinstance(state[key], Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpecError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    own = net.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if wrong:
        raise SpecError(
            f"weights {str(path)!r} do not fit the model: {len(wrong)} tensors have other shapes, e.g. {wrong[0]}; "
            "are these the weights of this architecture and number of classes (--num-classes)?"
        )
    missing, unexpected = net.load_state_dict(dict(state), strict=False)
    if missing or unexpected:
        raise SpecError(
            f"weights {str(path)!r} do not fit the model: missing keys {sorted(missing)[:5]}, "
            f"unexpected keys {sorted(unexpected)[:5]}"
        )
