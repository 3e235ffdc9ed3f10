"""Hugging Face semantic-segmentation models, as ``--model hf:ID_OR_DIR`` names them.

``load_hf`` reads a model with ``transformers.AutoModelForSemanticSegmentation`` (the optional extra
``segattack[hf]``) from a directory written by ``save_pretrained`` (offline) or a hub id such as
``nvidia/segformer-b0-finetuned-cityscapes-512-1024`` (downloaded by transformers where you are online), and says
how to feed it: the normalisation its image processor applies (``AutoImageProcessor``: ``image_mean``/``image_std``,
``do_rescale``/``rescale_factor``, ``do_normalize``) in [0, 1] units, the number of classes and their names from its
config (``num_labels``, ``id2label``), and what a run records about the processor (its class and resize ``size``,
reported only: the data's size decides what the network sees). ``segattack.specs.load_model`` wraps the result in
a ``PixelModel``.

Mistakes raise ``segattack.specs.SpecError`` with a message meant for the user.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .specs import SpecError, first_line

__all__ = ["HfModel", "load_hf", "normalisation"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass
class HfModel:
    """A loaded Hugging Face model and how to feed it: ``PixelModel(net, mean=, std=, num_classes=, class_names=)``
    takes these as they are. ``class_names``: None where the config holds only transformers' placeholders.
    ``info``: what a run records about the preprocessing (``load_model_info``'s second value)."""

    net: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    class_names: tuple[str, ...] | None
    info: dict[str, Any] = field(default_factory=dict)


def _source(target: str) -> tuple[str, bool]:
    """(what ``from_pretrained`` gets, whether it is a local directory); SpecError for a path that is not one."""
    path = Path(target).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SpecError(
                f"--model hf:{target}: {target!r} is a file; give the directory that save_pretrained wrote "
                "(config.json, the weights, preprocessor_config.json)"
            )
        if not (path / "config.json").is_file():
            raise SpecError(
                f"--model hf:{target}: directory {target!r} holds no config.json; save the model there with "
                "model.save_pretrained(DIR) and its image processor with processor.save_pretrained(DIR)"
            )
        return str(path), True
    looks_local = (
        target.startswith((".", "/", "~", os.sep))
        or target.endswith(("/", os.sep))
        or (os.sep != "/" and os.sep in target)
    )
    if looks_local or not _HUB_ID.match(target):
        raise SpecError(
            f"--model hf:{target}: directory {target!r} does not exist (and it is no Hugging Face hub id, ORG/NAME)"
        )
    return target, False


def _triple(value: Any, channels: int, what: str, spec: str) -> tuple[float, ...]:
    values = [float(value)] * channels if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != channels:
        raise SpecError(f"{spec}: the image processor's {what} has {len(values)} values for {channels} channels")
    return tuple(values)


def normalisation(proc: Any, channels: int, spec: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The image processor's preprocessing as ``PixelModel``'s mean/std in [0, 1] units.

    The processor feeds the network ``(x255 * r - m) / s`` (r = ``rescale_factor`` if ``do_rescale``, else 1; m, s
    = ``image_mean``/``image_std`` if ``do_normalize``, else 0 and 1). With x255 = 255 x and c = 255 r that is
    ``(x - m / c) / (s / c)``: mean m / c, std s / c (for the usual r = 1/255, the processor's own values)."""
    factor = float(getattr(proc, "rescale_factor", 1 / 255)) if getattr(proc, "do_rescale", True) else 1.0
    scale = 255.0 * factor
    if not scale > 0:
        raise SpecError(f"{spec}: the image processor's rescale_factor {factor} is not positive")
    if getattr(proc, "do_normalize", False):
        m = getattr(proc, "image_mean", None)
        sd = getattr(proc, "image_std", None)
        if m is None or sd is None:
            raise SpecError(f"{spec}: the image processor normalises but gives no image_mean/image_std; pass --mean "
                            "and --std (in [0, 1] units)")  # fmt: skip
        m3, s3 = _triple(m, channels, "image_mean", spec), _triple(sd, channels, "image_std", spec)
    else:
        m3, s3 = (0.0,) * channels, (1.0,) * channels
    mean = tuple(v / scale for v in m3)
    std = tuple(v / scale for v in s3)
    if any(not 0 <= v <= 1 for v in mean) or any(not v > 0 for v in std):
        raise SpecError(
            f"{spec}: the image processor's normalisation is mean {tuple(round(v, 4) for v in mean)}, std "
            f"{tuple(round(v, 4) for v in std)} in [0, 1] units, which PixelModel cannot take (a mean in [0, 1], a "
            "positive std); pass --mean and --std"
        )
    return mean, std


def _processor_size(proc: Any) -> str | None:
    """The processor's resize size as text (``512x1024``, ``shortest_edge 512``), or ``None`` without one."""
    if getattr(proc, "do_resize", True) is False:
        return "none (the processor does not resize)"
    size = getattr(proc, "size", None)
    if size is None:
        return None
    if isinstance(size, int | float):
        return str(size)
    try:
        items = {str(k): v for k, v in dict(size).items() if v is not None}
    except (TypeError, ValueError):
        keys = ("height", "width", "shortest_edge", "longest_edge")
        items = {k: getattr(size, k) for k in keys if getattr(size, k, None) is not None}
    if "height" in items and "width" in items:
        return f"{items['height']}x{items['width']}"
    return ", ".join(f"{k} {v}" for k, v in items.items()) or None


def _class_names(config: Any, k: int) -> tuple[str, ...] | None:
    """``config.id2label`` as one name per class, or None where it holds transformers' placeholders (LABEL_0...)."""
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label.get(i, id2label.get(str(i))) for i in range(k)]
    if any(not isinstance(n, str) or not n.strip() for n in names):
        return None
    if all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None
    return tuple(str(n) for n in names)


def _not_segmentation(spec: str, model_type: str | None) -> str:
    return (
        f"--model {spec} is a {model_type or '?'!r} model, which AutoModelForSemanticSegmentation cannot load (it is "
        "not a semantic-segmentation model, as SegFormer, BEiT, DPT, MobileViT or UperNet are)"
    )


def load_hf(
    target: str,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_classes: int | None = None,
) -> HfModel:
    """The model of ``hf:TARGET`` (a directory written by ``save_pretrained``, or a hub id), in float32, and how to
    feed it. ``mean``/``std`` (in [0, 1] units) replace the image processor's; with both given no processor is
    needed. ``num_classes``: checked against ``config.num_labels`` where given."""
    spec = f"hf:{target}"
    try:
        import transformers
    except ImportError as err:
        raise SpecError(f"--model {spec} needs transformers: pip install 'segattack[hf]'") from err
    source, local = _source(target)
    kw: dict[str, Any] = {"local_files_only": True} if local else {}
    where = f"directory {target!r}" if local else "the Hugging Face hub (where you are online)"
    try:
        config = transformers.AutoConfig.from_pretrained(source, **kw)
    except Exception as err:  # noqa: BLE001 - a missing or malformed config, a hub id that does not exist, offline
        extra = "" if local else f"; no directory {target!r} exists here either"
        raise SpecError(f"cannot load --model {spec} from {where}: {first_line(err).rstrip('.')}{extra}") from err
    known: Mapping[str, Any] | None
    try:  # before the weights are read: the same refusal from_pretrained would give
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES as known
    except ImportError:
        known = None
    model_type = getattr(config, "model_type", None)
    if known is not None and model_type not in known:
        raise SpecError(_not_segmentation(spec, model_type))
    k = int(getattr(config, "num_labels", 0) or 0)
    if k < 1:
        raise SpecError(f"--model {spec}: its config gives no number of classes (num_labels)")
    if num_classes is not None and num_classes != k:
        raise SpecError(f"--model {spec} has {k} classes (config.num_labels), not {num_classes}")
    channels = int(getattr(config, "num_channels", 3) or 3)
    info: dict[str, Any] = {"processor": None, "processor_size": None}
    proc: Any = None
    proc_error = ""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # only its attributes are read: no advice on processing backends
    try:
        proc = transformers.AutoImageProcessor.from_pretrained(source, **kw)
    except Exception as err:  # noqa: BLE001 - no preprocessor_config.json
        proc_error = first_line(err)
    finally:
        transformers.logging.set_verbosity(verbosity)
    if proc is not None:
        info["processor"] = type(proc).__name__
        info["processor_size"] = _processor_size(proc)
    if mean is not None and std is not None:
        mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    elif proc is None:
        raise SpecError(
            f"--model {spec} has no image processor ({proc_error}); save it next to the model with "
            "processor.save_pretrained(DIR), or pass --mean and --std (in [0, 1] units)"
        )
    else:
        own_mean, own_std = normalisation(proc, channels, spec)
        mean_t = tuple(float(v) for v in mean) if mean is not None else own_mean
        std_t = tuple(float(v) for v in std) if std is not None else own_std
    progress = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a bar for reading weights from disk, on every run
    try:
        net = transformers.AutoModelForSemanticSegmentation.from_pretrained(source, **kw)
    except ValueError as err:
        if "Unrecognized configuration class" in str(err):
            raise SpecError(_not_segmentation(spec, model_type)) from err
        raise SpecError(f"cannot load --model {spec}: {first_line(err)}") from err
    except Exception as err:  # noqa: BLE001 - missing or corrupt weights, a failed download
        raise SpecError(f"cannot load --model {spec} from {where}: {first_line(err)}") from err
    finally:
        if progress:
            transformers.utils.logging.enable_progress_bar()
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in net.parameters()):
        net = net.float()  # attacks take float32 images; a half-precision checkpoint runs in float32
    given = (mean is not None) + (std is not None)
    info["normalisation_from"] = ("image processor", "--mean/--std and the image processor", "--mean/--std")[given]
    info["mean"] = [round(v, 6) for v in mean_t]
    info["std"] = [round(v, 6) for v in std_t]
    return HfModel(net, mean_t, std_t, k, _class_names(config, k), info)
