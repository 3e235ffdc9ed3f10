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
  ``torch.load(weights_only=True)``, never unpickling arbitrary objects). The current directory is importable;
- ``hf:ID_OR_DIR``: a Hugging Face semantic-segmentation model (``transformers.AutoModelForSemanticSegmentation``,
  the optional extra ``segattack[hf]``): a directory written by ``save_pretrained`` (read offline) or a hub id such
  as ``nvidia/segformer-b0-finetuned-cityscapes-512-1024`` (downloaded by transformers where you are online). The
  normalisation comes from its image processor (``AutoImageProcessor``: ``image_mean``/``image_std``,
  ``do_rescale``/``rescale_factor``, ``do_normalize``), the class names from ``config.id2label``. The processor's
  resize ``size`` is only reported: the data's size (``--size``) decides what the network sees.

A model may carry the names of its output classes (``PixelModel.class_names``): a zoo card's ``class_names``
field, an hf model's ``id2label``, or ``class_names=`` given here.

Mistakes raise ``SpecError`` (a ``ValueError``) with a message meant for the user.

>>> parse_data_spec("synthetic:5")
DataSpec(scheme='synthetic', path=None, split='val', count=5)
>>> parse_data_spec("imagenet:/data")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
segattack.specs.SpecError: unknown data scheme 'imagenet' in 'imagenet:/data'; valid: synthetic[:N], synthetic-train...
"""

from __future__ import annotations

import argparse
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

from . import zoo
from .data.cityscapes import Cityscapes
from .data.folder import ImageFolder
from .data.labels import label_names
from .data.synthetic import SyntheticStreets
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
    "load_model_info",
    "default_model_name",
    "model_fingerprint",
    "parse_size",
    "size_argument",
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


def first_line(err: BaseException, limit: int | None = 300) -> str:
    """The first line of an exception's message (its type's name where it has none), cut to ``limit`` characters
    (``None``: not cut), for a one-line ``SpecError`` about a failure in someone else's code."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


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


def size_argument(text: str) -> tuple[int, int]:
    """``parse_size`` as an argparse ``type=`` for your own scripts: a bad size ends the script with its message
    (argparse shows an ``ArgumentTypeError``'s text; a ``ValueError`` only as "invalid value").

    >>> import argparse
    >>> argparse.ArgumentParser().add_argument("--size", type=size_argument).type("64x128")
    (64, 128)
    """
    try:
        size = parse_size(text)
    except SpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    assert size is not None
    return size


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
        kwargs: dict[str, Any] = {"split": ds.split, "length": ds.count, "seed": 0}
        if size is not None:
            kwargs["size"] = size
        return SyntheticStreets(**kwargs)
    assert ds.path is not None
    root = str(Path(ds.path).expanduser())
    try:
        if ds.scheme == "cityscapes":
            data: Any = Cityscapes(root, split=ds.split, size=size)
        else:
            data = ImageFolder(root, size=size, labels=labels)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise SpecError(f"cannot read {ds}: {err}") from err
    if len(data) == 0:
        raise SpecError(f"{ds} holds no images")
    return data


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model`` value: ``zoo:NAME`` (``kind='zoo'``), ``hf:ID_OR_DIR`` (``kind='hf'``) or
    ``module:callable`` (``kind='callable'``)."""

    kind: str
    target: str
    module: str | None = None
    attr: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.kind in ("zoo", "hf") else self.target


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``zoo:NAME``, ``hf:ID_OR_DIR`` or ``module.path:callable`` (``zoo`` and ``hf`` are reserved: a module
    of that name is not taken as a callable's).

    >>> parse_model_spec("zoo:fcn8s")
    ModelSpec(kind='zoo', target='fcn8s', module=None, attr=None)
    >>> parse_model_spec("hf:nvidia/segformer-b0-finetuned-cityscapes-512-1024").kind
    'hf'
    >>> parse_model_spec("mypkg.nets:build").attr
    'build'
    """
    spec = spec.strip()
    head, sep, tail = spec.partition(":")
    if head == "hf" and sep:
        if not tail.strip():
            raise SpecError(
                "--model hf: names no model; give hf:ORG/NAME (a Hugging Face hub id) or hf:DIR (a directory written "
                "by save_pretrained)"
            )
        return ModelSpec("hf", tail.strip())
    if not sep or not head or not tail:
        raise SpecError(
            f"model spec {spec!r} is neither zoo:NAME, hf:ID_OR_DIR nor module.path:callable "
            "(e.g. --model zoo:NAME or --model mypkg.nets:build_model)"
        )
    if head == "zoo":
        return ModelSpec("zoo", tail)
    if not all(part.isidentifier() for part in head.split(".")) or not all(
        part.isidentifier() for part in tail.split(".")
    ):
        raise SpecError(
            f"model spec {spec!r}: expected zoo:NAME, hf:ID_OR_DIR or module.path:callable with Python identifiers "
            "on both sides"
        )
    return ModelSpec("callable", spec, module=head, attr=tail)


def default_model_name() -> str:
    """The shipped default model's name: ``zoo.DEFAULT_MODEL`` if set, else the first available model."""
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
    bgr: bool = False,
    class_names: Sequence[str] | None = None,
) -> PixelModel:
    """Build the ``PixelModel`` a spec names (see the module docstring).

    For ``module:callable`` specs ``mean``/``std`` default to ImageNet's (in [0, 1] units) and ``num_classes`` to
    None (not checked; ``len(class_names)`` where those are given); ``weights`` is a state dict file. For ``zoo:``
    specs the model card provides all three; a given ``num_classes`` that disagrees with it is an error. For ``hf:``
    specs the image processor gives ``mean``/``std`` (given ones replace them) and the config the number of classes
    and their names. ``bgr``: flip RGB to BGR before the normalisation (``PixelModel(bgr=True)``; not for zoo
    models, whose card has its own). ``class_names``: the names of the model's output classes, one per class (they
    replace the names the model carries); the result's ``class_names`` holds them.

    >>> load_model("zoo:no-such-model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    segattack.specs.SpecError: unknown model 'no-such-model' in ...
    """
    return load_model_info(
        spec, weights=weights, mean=mean, std=std, num_classes=num_classes, device=device, bgr=bgr,
        class_names=class_names,
    )[0]  # fmt: skip


def load_model_info(
    spec: str | ModelSpec,
    *,
    weights: str | os.PathLike[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    bgr: bool = False,
    class_names: Sequence[str] | None = None,
) -> tuple[PixelModel, dict[str, Any]]:
    """``load_model``, and what a run records about where the model's preprocessing came from: for ``hf:`` models
    the image processor's class, its resize ``size`` (reported, not applied) and the normalisation in [0, 1] units;
    ``{}`` for the others."""
    ms = parse_model_spec(spec) if isinstance(spec, str) else spec
    info: dict[str, Any] = {}
    if ms.kind == "zoo":
        if weights is not None or mean is not None or std is not None or bgr:
            raise SpecError("--weights, --mean, --std and --bgr apply to module:callable and hf: models; a zoo model "
                            "has its own")  # fmt: skip
        model = _load_zoo(ms.target, device)
        if num_classes is not None and model.num_classes is not None and model.num_classes != num_classes:
            raise SpecError(f"model zoo:{ms.target} has {model.num_classes} classes, not {num_classes}")
    elif ms.kind == "hf":
        if weights is not None:
            raise SpecError(f"--weights applies to module:callable models; {ms} loads its own weights")
        from .hf import load_hf  # here, not at the top: segattack.hf imports SpecError from this module

        loaded = load_hf(ms.target, mean=mean, std=std, num_classes=num_classes)
        model = PixelModel(loaded.net, mean=loaded.mean, std=loaded.std, num_classes=loaded.num_classes, bgr=bgr,
                           class_names=loaded.class_names)  # fmt: skip
        info = loaded.info
    else:
        model = _load_callable(ms, weights=weights, mean=mean, std=std, bgr=bgr,
                               num_classes=num_classes if num_classes is not None or class_names is None
                               else len(class_names))  # fmt: skip
    if class_names is not None:
        try:
            model.class_names = label_names(model.num_classes, class_names)
        except ValueError as err:
            raise SpecError(f"model {ms}: {err}") from None
    model.net.eval()
    return model.to(device), info


def _load_callable(
    ms: ModelSpec,
    *,
    weights: str | os.PathLike[str] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    num_classes: int | None,
    bgr: bool,
) -> PixelModel:
    assert ms.module is not None and ms.attr is not None
    factory = _import_callable(ms.module, ms.attr, str(ms))
    try:
        obj = factory()
    except SegattackError:
        raise
    except Exception as err:  # the user's factory failed: one line naming it (the traceback with --verbose)
        raise ModelError(f"calling {ms}() failed: {type(err).__name__}: {err}", spec=str(ms)) from err
    if isinstance(obj, PixelModel):
        if mean is not None or std is not None or bgr:
            raise SpecError(f"{ms} returns a PixelModel with its own normalisation; drop --mean/--std/--bgr")
        model = obj
        if num_classes is not None:
            model.num_classes = num_classes
    elif isinstance(obj, nn.Module):
        model = PixelModel(
            obj,
            mean=tuple(mean) if mean is not None else IMAGENET_MEAN,
            std=tuple(std) if std is not None else IMAGENET_STD,
            num_classes=num_classes,
            bgr=bgr,
        )
    else:
        raise SpecError(f"{ms} returned {type(obj).__name__}, not a torch.nn.Module")
    if weights is not None:
        _load_weights(model.net, Path(weights))
    return model


def _load_zoo(name: str, device: str | torch.device) -> PixelModel:
    """The model of ``zoo:NAME`` / ``zoo:PATH/NAME.json``: the zoo reads and checks the card and the weights (with
    the card's class names); its refusals become this layer's ``SpecError``, one line naming the file."""
    try:
        return zoo.load_card(zoo.find_card(name), device=device)
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
            state: Any = zoo.read_safetensors(path)  # the zoo's reader: a corrupt file is one line naming it
        elif suffix in (".pt", ".pth", ".bin"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's advice on weights_only is replaced by ours below
                state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise SpecError(f"weights file {str(path)!r}: expected .safetensors, .pt or .pth")
    except SpecError:
        raise
    except ModelError as err:
        raise SpecError(str(err)) from err
    except pickle.UnpicklingError as err:
        raise SpecError(
            f"weights file {str(path)!r} holds pickled objects, which segattack never unpickles (weights_only=True): "
            "save a plain state dict (torch.save(net.state_dict(), FILE)) or a .safetensors file"
        ) from err
    except Exception as err:  # noqa: BLE001 - any decoding failure is the file's fault; say which file
        raise SpecError(f"cannot read weights file {str(path)!r}: {first_line(err, limit=None)}") from err
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
