"""Train a segmentation network (FCN-8s, Long et al. 2015) from scratch, resumably; export it to the model zoo.

Standard recipe: pixel-wise cross-entropy (ignore 255), SGD with momentum (optionally Nesterov) or AdamW, no weight
decay on biases and BatchNorm, poly or cosine learning-rate schedule with optional linear warmup, augmentation by
random scale + crop, horizontal flip and colour jitter (brightness, contrast, saturation). Validation is the
library's clean evaluator, ``segattack.evaluate.evaluate`` (an ``EvalResult``): per-class IoU, the mean IoU over
classes present in the ground truth or the prediction, and pixel accuracy.

Everything a run writes lives in its output directory:

- ``config.json``: the configuration as given and the values resolved from it (mean/std, learning rate, device);
- ``checkpoint.pt``: the latest checkpoint (model, optimiser, scheduler, step, RNG states, elapsed time), written
  atomically every ``checkpoint_every`` steps, when stopping at ``stop_at`` and at the end;
- ``metrics.jsonl``: one JSON object per line: ``{"kind": "train", "step", "loss", "lr", ...}`` every
  ``log_every`` steps and ``{"kind": "val", "step", "elapsed_s", "miou", "pixel_acc", "iou"}`` (IoU keyed by
  class name, NaN written as null) at each validation;
- ``<export_name>.safetensors`` + ``.json`` (by default in the same directory): the final model, loadable with
  ``segattack.zoo.load(export_name, weights_dir=...)``.

Calling ``train`` again with the same output directory resumes from the last checkpoint. Batches and augmentation
are drawn from generators seeded by (seed, step), and the global RNG state (dropout) is restored, so a resumed run
gives the same weights as an uninterrupted one (on the same device and software).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import rundir
from .data.labels import CLASS_NAMES, IGNORE_INDEX
from .errors import ConfigError, RunDirError, SegattackError
from .evaluate import EvalResult, evaluate
from .models import PixelModel
from .zoo import ARCHITECTURES, ModelCard, check_model_name, find_card, load_card, save_model

__all__ = [
    "TrainConfig", "TrainResult", "ConfigMismatchError", "train", "checkpoint_step", "config_differences",
    "check_init", "check_outputs",
]  # fmt: skip

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
_CHECKPOINT_FORMAT = 1

#: Fields that may change between an interrupted run and its resumption (they do not change what is trained).
RUNTIME_FIELDS = frozenset(
    {"out_dir", "device", "amp", "channels_last", "stop_at", "checkpoint_every", "val_every", "log_every",
     "export_name", "export_dir", "val_batch_size", "cache_limit_mb"}
)  # fmt: skip

_DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
_DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 1e-2}


class ConfigMismatchError(RunDirError):
    """The output directory holds a run with a different configuration."""


#: Per architecture, the defaults of the TrainConfig fields left None.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "fcn8s": {"width": 0.125, "dropout": 0.5},
    "deeplabv3": {"width": 1.0, "dropout": 0.1},
    "segformer": {"width": 1.0, "dropout": 0.1},
}
ARCH_TITLES = {
    "fcn8s": "FCN8s-VGG16",
    "deeplabv3": "DeepLabv3+ (residual atrous backbone, ASPP, stride-4 decoder)",
    "segformer": "SegFormer (MiT encoder, efficient self-attention, Mix-FFN, All-MLP decoder)",
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Sizes are (height, width) in pixels; images are in [0, 1] units.

    Model: ``arch`` (a key of ``ARCH_DEFAULTS``: "fcn8s", "deeplabv3" or "segformer"), ``width`` (channel multiplier;
    None = the architecture's default: 0.125 for FCN8s, where 1.0 is the paper's 134 M-parameter network, 1.0 for the
    others), ``batch_norm`` (FCN8s only; the others always have their normalisation layers), ``dropout`` (None = the
    architecture's default: 0.5 after fc6 and fc7 for FCN8s, 0.1 before the classifier for the others),
    ``fc6_kernel`` (FCN8s only), ``output_stride`` (FCN8s only: 8, 4 for FCN-4s with the pool2 skip, or 2 for
    FCN-2s with the pool1 skip too), ``refine`` (FCN-4s and FCN-2s: channels of the stride-4 refinement block, 0 =
    none), ``refine2`` (FCN-2s only: channels of the stride-2 refinement block), ``num_classes``. ``init``: start
    from a trained model's weights instead of a random initialisation (fine-tuning): ``zoo:NAME`` (a shipped
    model) or ``zoo:PATH/NAME.json`` (an exported one), of the same
    architecture, ``arch_kwargs`` and ``num_classes``, or a smaller stage of the same FCN (an FCN-8s for an FCN-4s
    run, whose new pool2 stage starts as Long et al. start each finer stage: zero scores, bilinear upsampling; an
    FCN-4s for one with ``refine``, whose block starts as the identity; an FCN-4s for an FCN-2s, whose pool1 stage
    and ``refine2`` block start the same ways; or one whose refinement blocks have fewer channels, whose old
    channels are copied and new ones enter the scores with zero weights); its normalisation is used unless
    ``mean``/``std`` are given. The optimiser and schedule start afresh; ``steps`` counts the new steps only.

    Data: ``data`` ("synthetic": ``segattack.data.SyntheticStreets``; ignored when datasets are passed to
    ``train``), ``size`` (image size of the synthetic data), ``train_images`` and ``val_images`` (how many images
    are used; the first ones of a given dataset), ``data_seed``. Data sets up to ``cache_limit_mb`` of uint8 pixels
    are held in memory; larger ones are read item by item.

    Optimisation: ``steps`` (total optimiser steps), ``batch_size``, ``crop`` (training crop; None = whole image),
    ``loss`` ("ce": pixel cross-entropy; "ce+lovasz": plus ``lovasz_softmax``, the Lovasz surrogate of 1 - IoU),
    ``lovasz_weights`` (class name -> weight of its (image, class) terms in the Lovasz mean; others weigh 1),
    ``optimizer``, ``lr`` (None: 0.01 for SGD, 1e-3 for AdamW), ``momentum``, ``nesterov``, ``weight_decay`` (None:
    5e-4 for SGD, 1e-2 for AdamW; never applied to biases and BatchNorm), ``schedule`` ("poly" with
    ``poly_power``, or "cosine", both decaying to 0 at ``steps``), ``warmup_steps`` (linear warmup).

    Augmentation: ``scale_range`` (random rescaling factor, uniform), ``hflip``, ``brightness``, ``contrast``,
    ``saturation`` (jitter strengths: factors uniform in [1 - s, 1 + s]).

    Normalisation: ``mean``, ``std`` per channel in [0, 1] units; None = measured on the training images.

    Run: ``seed``, ``device`` ("auto" = CUDA if available), ``amp`` (bfloat16 autocast on CUDA), ``channels_last``,
    ``log_every``, ``val_every`` (0 = only at the end), ``checkpoint_every``, ``stop_at`` (stop after this step and
    keep the checkpoint, to continue later), ``export_name``, ``export_dir`` (None = ``out_dir``),
    ``val_batch_size`` (None = ``batch_size``).
    """

    out_dir: str
    # model
    arch: str = "fcn8s"
    width: float | None = None
    batch_norm: bool = True
    dropout: float | None = None
    fc6_kernel: int = 7
    output_stride: int = 8
    refine: int = 0
    refine2: int = 0
    num_classes: int = 19
    init: str | None = None
    # data
    data: str = "synthetic"
    size: tuple[int, int] = (256, 512)
    train_images: int = 2000
    val_images: int = 100
    data_seed: int = 0
    cache_limit_mb: int = 4096
    # optimisation
    steps: int = 4000
    batch_size: int = 8
    crop: tuple[int, int] | None = (128, 256)
    loss: Literal["ce", "ce+lovasz"] = "ce"
    lovasz_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None
    schedule: Literal["poly", "cosine"] = "poly"
    poly_power: float = 0.9
    warmup_steps: int = 0
    # augmentation
    scale_range: tuple[float, float] = (0.75, 1.5)
    hflip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    # normalisation
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    # run
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    log_every: int = 20
    val_every: int = 500
    checkpoint_every: int = 200
    stop_at: int | None = None
    export_name: str = "model"
    export_dir: str | None = None
    val_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCH_DEFAULTS:
            raise ValueError(f"arch must be one of {', '.join(ARCH_DEFAULTS)}, got {self.arch!r}")
        for name, value in ARCH_DEFAULTS[self.arch].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not (isinstance(self.width, int | float) and math.isfinite(self.width) and self.width > 0):
            raise ValueError(f"width must be a positive channel multiplier, got {self.width!r}")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")
        if self.arch != "fcn8s" and not self.batch_norm:
            raise ValueError(f"batch_norm=False (--no-batch-norm) applies to fcn8s only; {self.arch} keeps its norms")
        if self.arch != "fcn8s" and self.fc6_kernel != 7:
            raise ValueError(f"fc6_kernel applies to fcn8s only, not to {self.arch}")
        if self.output_stride not in (2, 4, 8) or isinstance(self.output_stride, bool):
            raise ValueError(f"output_stride must be 8 (FCN-8s), 4 (FCN-4s) or 2 (FCN-2s), got {self.output_stride!r}")
        if self.arch != "fcn8s" and self.output_stride != 8:
            raise ValueError(f"output_stride applies to fcn8s only, not to {self.arch}")
        for name in ("refine", "refine2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a number of channels >= 0 (0: none), got {value!r}")
        if self.refine and (self.arch != "fcn8s" or self.output_stride == 8):
            raise ValueError("refine applies to fcn8s at output_stride 4 or 2 only (--output-stride 4)")
        if self.refine2 and (self.arch != "fcn8s" or self.output_stride != 2):
            raise ValueError("refine2 applies to fcn8s at output_stride 2 only (--output-stride 2)")
        # Normalise types so that the JSON form is canonical: paths as strings, sequences as tuples.
        object.__setattr__(self, "out_dir", os.fspath(self.out_dir))
        if self.export_dir is not None:
            object.__setattr__(self, "export_dir", os.fspath(self.export_dir))
        for name in ("size", "crop", "scale_range", "mean", "std"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, tuple(value))

        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
                bound = ">= 0" if allow_zero else ">= 1"
                raise ValueError(f"{name} must be an integer {bound}, got {value!r}")

        for name in ("steps", "batch_size", "train_images", "val_images", "log_every", "checkpoint_every",
                     "num_classes", "fc6_kernel", "cache_limit_mb"):  # fmt: skip
            positive(name)
        for name in ("val_every", "warmup_steps", "seed", "data_seed"):
            positive(name, allow_zero=True)
        if self.val_batch_size is not None:
            positive("val_batch_size")
        if self.stop_at is not None:
            positive("stop_at")
        for name in ("size", "crop"):
            value = getattr(self, name)
            if value is None and name == "crop":
                continue
            if len(value) != 2 or any(not isinstance(v, int) or v < 1 for v in value):
                raise ValueError(f"{name} must be (height, width) in pixels, both >= 1, got {value!r}")
        if self.optimizer not in _DEFAULT_LR:
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.loss not in ("ce", "ce+lovasz"):
            raise ValueError(f"loss must be 'ce' or 'ce+lovasz', got {self.loss!r}")
        if self.lovasz_weights and self.loss != "ce+lovasz":
            raise ValueError("lovasz_weights (--lovasz-weight) needs loss='ce+lovasz' (--loss ce+lovasz)")
        names = _class_names(self.num_classes)
        for name, weight in dict(self.lovasz_weights).items():
            if name not in names:
                raise ValueError(f"lovasz_weights: unknown class {name!r}; classes: {', '.join(names)}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not (math.isfinite(weight)
                                                                                     and weight > 0):
                raise ValueError(f"lovasz_weights: the weight of {name!r} must be a positive number, got {weight!r}")
        object.__setattr__(self, "lovasz_weights", {k: float(v) for k, v in dict(self.lovasz_weights).items()})
        if self.schedule not in ("poly", "cosine"):
            raise ValueError(f"schedule must be 'poly' or 'cosine', got {self.schedule!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive learning rate, got {self.lr}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer='sgd' with momentum > 0")
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be smaller than steps ({self.steps})")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(
                    f"{name} jitter must lie in [0, 1) (factors in [1 - s, 1 + s]), got {getattr(self, name)}"
                )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"{name} must have one value per RGB channel, got {value!r}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from None
        if self.init is not None and not (self.init.startswith("zoo:") and self.init[4:].strip()):
            raise ValueError(
                f"init must name a model as zoo:NAME (shipped) or zoo:PATH/NAME.json (exported), got {self.init!r}"
            )
        if self.data != "synthetic":
            raise ValueError(f"data must be 'synthetic' (pass other datasets to train() directly), got {self.data!r}")
        # the export's files stay in export_dir: NAME.safetensors and NAME.json, no folder, no '..'
        check_model_name(self.export_name, what="export_name (--export-name)")

    def as_json(self) -> dict[str, Any]:
        """Plain JSON form (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def arch_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``zoo.ARCHITECTURES[arch]`` this configuration builds (and the model card keeps)."""
        if self.arch == "fcn8s":  # output_stride only when it is not FCN-8s's, so that FCN-8s cards stay as they were
            return {"width": self.width, "batch_norm": self.batch_norm, "dropout": self.dropout,
                    "fc6_kernel": self.fc6_kernel,
                    **({"output_stride": self.output_stride} if self.output_stride != 8 else {}),
                    **({"refine": self.refine} if self.refine else {}),
                    **({"refine2": self.refine2} if self.refine2 else {})}  # fmt: skip
        return {"width": self.width, "dropout": self.dropout}

    def describe(self) -> str:
        """One line naming the network, e.g. "DeepLabv3+ (residual, ASPP) width 1"."""
        if self.arch == "fcn8s":
            norm = " + BatchNorm" if self.batch_norm else ""
            refine = f" + refinement {self.refine}" if self.refine else ""
            if self.refine2:  # FCN-2s: say where each block is
                blocks = [f"{c} at stride {st}" for c, st in ((self.refine, 4), (self.refine2, 2)) if c]
                refine = f" + refinement {', '.join(blocks)}"
            return f"FCN{self.output_stride}s-VGG16 width {self.width:g}{norm}{refine}"
        return f"{ARCH_TITLES[self.arch]} width {self.width:g}"


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train``: the network (on its training device, eval mode), the step reached, whether the run
    reached ``steps``, the step it resumed from (0 for a fresh run), the mean training loss of the last logging
    window, the last validation (``segattack.evaluate.EvalResult``), the exported model card (None unless finished)
    and the total elapsed time (s)."""

    net: nn.Module
    step: int
    finished: bool
    resumed_from: int
    train_loss: float
    val: EvalResult | None
    export_path: Path | None
    elapsed_s: float
    out_dir: Path


def _class_names(k: int) -> list[str]:
    return list(CLASS_NAMES) if k == len(CLASS_NAMES) else [str(i) for i in range(k)]


def _val_summary(result: EvalResult) -> dict[str, Any]:
    """The validation measures as written to metrics.jsonl and the model card: ``miou``, ``pixel_acc`` and ``iou``
    keyed by class name; NaN becomes None."""
    return {
        "miou": rundir.json_safe(result.miou),
        "pixel_acc": rundir.json_safe(result.pixel_accuracy),
        "iou": dict(zip(_class_names(len(result.iou)), map(rundir.json_safe, result.iou.tolist()), strict=True)),
    }


# ----------------------------------------------------------------------------------------------------------- data


class _Source:
    """Images (uint8 (3, H, W)) and labels (train ids (H, W)) by index: cached in memory or read from the dataset.

    A segattack data set too (``len``, ``[i]`` -> (uint8 image, int64 label), ``image_id``, ``has_labels``) of the
    first ``n`` items, checked and converted, on the cache's device: validation hands it to
    ``segattack.evaluate.evaluate``.
    """

    has_labels = True  # every item was checked to carry train ids (see _read)

    def __init__(
        self, dataset: Any, n: int, *, name: str, cache_limit_mb: int, num_classes: int, progress: bool | None
    ) -> None:
        if len(dataset) < 1:
            raise ValueError(f"the {name} dataset is empty")
        if not getattr(dataset, "has_labels", True):
            raise ValueError(f"the {name} dataset has no ground-truth labels; training and validation need them")
        self.dataset = dataset
        self.name = name
        self.num_classes = num_classes
        self.n = min(n, len(dataset))
        first_img, first_lbl = self._read(0)
        self.image_size = (int(first_img.shape[1]), int(first_img.shape[2]))
        per_item = first_img.numel() + first_lbl.numel()
        self.cached = self.n * per_item <= cache_limit_mb * 2**20
        self.images: Tensor | None = None
        self.labels: Tensor | None = None
        if self.cached:
            imgs = torch.empty((self.n, *first_img.shape), dtype=torch.uint8)
            lbls = torch.empty((self.n, *first_lbl.shape), dtype=torch.uint8)
            bar = tqdm(range(self.n), desc=f"caching {name} images", disable=_disable(progress), leave=False)
            for i in bar:
                img, lbl = (first_img, first_lbl) if i == 0 else self._read(i)
                if img.shape != first_img.shape or lbl.shape != first_lbl.shape:
                    self.cached = False  # sizes vary: read item by item instead
                    break
                imgs[i] = img
                lbls[i] = lbl
            bar.close()
            if self.cached:
                self.images, self.labels = imgs, lbls
        logger.info("%s data: %d images, %s", name, self.n, "cached in memory" if self.cached else "read per batch")

    def to(self, device: torch.device) -> None:
        """Move the cache to ``device`` (on a GPU this saves a host-to-device copy per batch)."""
        if self.images is not None and self.labels is not None:
            self.images, self.labels = self.images.to(device), self.labels.to(device)

    def _read(self, i: int) -> tuple[Tensor, Tensor]:
        item = self.dataset[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"dataset items must be (image, label) pairs, got {type(item).__name__}")
        img = torch.as_tensor(item[0])
        lbl = torch.as_tensor(item[1])
        if img.ndim != 3 or img.shape[0] != 3:
            raise ValueError(f"dataset images must have shape (3, H, W), got {tuple(img.shape)}")
        if img.is_floating_point():
            if img.numel() and (img.min() < 0 or img.max() > 1):
                raise ValueError("float dataset images must lie in [0, 1]; or give uint8 images in 0..255")
            img = (img * 255).round()
        img = img.to(torch.uint8)
        if lbl.shape != img.shape[1:]:
            raise ValueError(f"label shape {tuple(lbl.shape)} does not match image shape {tuple(img.shape[1:])}")
        if lbl.is_floating_point() or bool(((lbl < 0) | (lbl >= self.num_classes) & (lbl != IGNORE_INDEX)).any()):
            raise ValueError(
                f"{self.name} item {i}: labels must be integer class ids in 0..{self.num_classes - 1} "
                f"or {IGNORE_INDEX} (ignore); map other ids to train ids first"
            )
        return img, lbl.to(torch.uint8)

    def get(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]] | tuple[Tensor, Tensor]:
        """A stacked (images, labels) pair when cached, else a list of per-item pairs."""
        if self.images is not None and self.labels is not None:
            idx = torch.as_tensor(list(indices), dtype=torch.long).to(self.images.device, non_blocking=True)
            return self.images[idx], self.labels[idx]
        return [self._read(i) for i in indices]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(f"{self.name} item {i} out of range 0..{self.n - 1}")
        if self.images is not None and self.labels is not None:
            img, lbl = self.images[i], self.labels[i]
        else:
            img, lbl = self._read(i)
        return img, lbl.long()

    def image_id(self, i: int) -> str:
        image_id = getattr(self.dataset, "image_id", None)
        return str(image_id(i)) if callable(image_id) else f"{self.name} item {i}"

    def mean_std(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Per-channel mean and std of the images in [0, 1] (all cached images, else the first 64)."""
        total = torch.zeros(3, dtype=torch.float64)
        total_sq = torch.zeros(3, dtype=torch.float64)
        count = 0
        n = self.n if self.cached else min(self.n, 64)
        for start in range(0, n, 16):
            got = self.get(range(start, min(start + 16, n)))
            chunks = [got[0]] if isinstance(got, tuple) else [img[None] for img, _ in got]
            for chunk in chunks:
                x = chunk.to(torch.float64) / 255
                total += x.sum(dim=(0, 2, 3))
                total_sq += (x * x).sum(dim=(0, 2, 3))
                count += x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
        m, s = [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]
        return (m[0], m[1], m[2]), (s[0], s[1], s[2])


_STAGE_OPTIONS = ("output_stride", "refine", "refine2")


def _fcn_stages(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """An FCN's stages beyond FCN-8s, each with its option: the pool2 skip (FCN-4s), the stride-4 refinement block,
    the pool1 skip (FCN-2s), the stride-2 refinement block."""
    stride = kwargs.get("output_stride", 8)
    stages: dict[str, Any] = {"pool2": True} if stride <= 4 else {}
    if stride <= 2:
        stages["pool1"] = True
    for name in ("refine", "refine2"):
        if kwargs.get(name, 0):
            stages[name] = kwargs[name]
    return stages


def lovasz_softmax(probs: Tensor, labels: Tensor, *, ignore_index: int = IGNORE_INDEX,
                   class_weights: Tensor | None = None) -> Tensor:
    """The Lovasz-softmax loss of Berman, Rannen Triki and Blaschko (2018): a convex surrogate of 1 - IoU.

    ``probs``: (B, K, H, W) class probabilities; ``labels``: (B, H, W) class ids, ``ignore_index`` left out. Per
    image and per class present in its labels, the pixels' errors ``|[y = c] - p_c|`` sorted in decreasing order are
    weighted by the increments of the Jaccard loss along that order (the Lovasz extension of the set function
    1 - IoU_c); the loss is the mean over the (image, class) pairs. For a hard one-hot ``probs`` it equals the mean
    of 1 - IoU_c, which is what it optimises; 0 when there is no labelled pixel. ``class_weights`` (K,): the
    mean becomes the weighted mean, each (image, class) pair weighing its class's weight.
    """
    if probs.ndim != 4 or labels.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"probs (B, K, H, W) and labels (B, H, W) expected, got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")  # fmt: skip
    k = probs.shape[1]
    y = labels.flatten(1)
    keep = (y != ignore_index)[:, None]
    # An ignored pixel gets no probability and no foreground, so error 0: it sorts last (with other zero errors)
    # and adds nothing.
    p = probs.flatten(2) * keep  # (B, K, N)
    fg = F.one_hot(torch.where(keep[:, 0], y, 0).long(), k).transpose(1, 2).to(p.dtype) * keep
    present = (fg.sum(2) > 0).flatten()  # the classes present in each image's labels: only their rows count
    if not bool(present.any()):
        return probs.sum() * 0
    fg = fg.flatten(0, 1)[present]
    errors = (fg - p.flatten(0, 1)[present]).abs()
    with torch.no_grad():  # the order is a constant of the Lovasz extension; gather carries the gradient
        order = errors.argsort(dim=1, descending=True)
    errors = errors.gather(1, order)
    fg_sorted = fg.gather(1, order)
    total = fg_sorted.sum(1, keepdim=True)
    jaccard = 1 - (total - fg_sorted.cumsum(1)) / (total + (1 - fg_sorted).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    losses = (errors * grad).sum(1)
    if class_weights is None:
        return losses.mean()
    if class_weights.shape != (k,):
        raise ValueError(f"class_weights must have one weight per class ({k}), got shape {tuple(class_weights.shape)}")
    w = class_weights.to(losses).repeat(probs.shape[0])[present]
    return (losses * w).sum() / w.sum()


def _is_growth(got: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """Whether an init network ``got`` is a smaller stage of the FCN ``want`` (the same options but the stride and
    the refinement blocks): FCN-8s -> FCN-4s (-> + refinement) -> FCN-2s (-> + refinement), each stage of ``got``
    also in ``want``, a refinement block with at least its channels (a wider one grows into it), and ``want`` with
    more stages or channels."""
    if want["arch"] != "fcn8s" or got["arch"] != "fcn8s":
        return False
    have, grown = _fcn_stages(got["arch_kwargs"]), _fcn_stages(want["arch_kwargs"])
    if grown == have or any(k not in grown or grown[k] < v for k, v in have.items()):
        return False

    def rest(net: Mapping[str, Any]) -> dict[str, Any]:  # everything but the stage's own options
        kwargs = {k: v for k, v in net["arch_kwargs"].items() if k not in _STAGE_OPTIONS}
        return {**net, "arch_kwargs": kwargs}

    return rest(got) == rest(want)


_GROWN_MODULES = ("score_pool2", "upscore_pool3", "refine", "score_pool1", "upscore_pool2", "refine2")


def _load_init_weights(net: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load an init model's state into ``net``: all of it, or a smaller FCN stage's into a larger one, whose new
    layers keep their initialisation: an FCN-4s's pool2 stage zero scores and a bilinear 2x (the FCN-8s's scores
    passed through), a refinement block a zero last convolution (the identity), an FCN-2s's pool1 stage as the
    pool2 one. A refinement block with more channels than the init's (net2net widening, Chen et al. 2016) takes
    the old channels' weights; its new channels keep their initialisation in the first convolution and get zero
    weights in the last, so the network computes exactly what the init model does."""
    own = net.state_dict()
    state = dict(state)
    for name in ("refine", "refine2"):
        block = getattr(net, name, None)
        if not isinstance(block, nn.Sequential):
            continue
        last = f"{name}.{len(block) - 1}.weight"
        for key in [k for k in state if k.startswith(f"{name}.")]:
            old, new = state[key], own.get(key)
            if new is None or old.shape == new.shape:
                continue
            if old.dim() != new.dim() or any(a > b for a, b in zip(old.shape, new.shape, strict=True)):
                raise RuntimeError(f"init weights do not fit the network: {key} {tuple(old.shape)} does not fit "
                                   f"in {tuple(new.shape)}")  # fmt: skip
            grown = new.clone()
            if key == last:
                grown.zero_()  # the new channels' outputs enter the scores with weight 0
            grown[tuple(slice(0, n) for n in old.shape)] = old
            state[key] = grown
    missing, unexpected = net.load_state_dict(state, strict=False)
    allowed: set[str] = set()
    for name in _GROWN_MODULES:
        module = getattr(net, name, None)
        if isinstance(module, nn.Module):
            allowed |= {f"{name}.{k}" for k in module.state_dict()}
    if unexpected or not set(missing) <= allowed:
        raise RuntimeError(f"init weights do not fit the network: missing {missing}, unexpected {unexpected}")


def _load_init(config: TrainConfig) -> tuple[PixelModel, ModelCard]:
    """The model ``config.init`` names and its checked card, the model checked against the configured network."""
    assert config.init is not None
    try:
        card = find_card(config.init[4:].strip())
        model = load_card(card)
    except SegattackError as err:
        raise ConfigError(f"init {config.init}: {err}") from None
    want = {"arch": config.arch, "arch_kwargs": json.loads(json.dumps(config.arch_kwargs())),
            "num_classes": config.num_classes}  # fmt: skip
    got = {"arch": card.arch, "arch_kwargs": dict(card.arch_kwargs), "num_classes": card.num_classes}
    if got != want and not _is_growth(got, want):
        diffs = "; ".join(f"{k} {got[k]!r} (this run: {want[k]!r})" for k in want if got[k] != want[k])
        raise ConfigError(
            f"init {config.init} is a different network: {diffs}; train with the same --arch, --width, --dropout, "
            "--output-stride, --refine, --refine2 and network options as that model (a smaller stage of an FCN may "
            "start a larger one: FCN-8s -> FCN-4s -> FCN-4s with --refine -> FCN-2s -> FCN-2s with --refine2, and a "
            "refinement block may get more channels; not the reverse)"
        )
    return model, card


def check_outputs(config: TrainConfig) -> None:
    """Refuse, before any work, outputs that cannot be written: ``out_dir`` and ``export_dir`` must be writable
    directories (or folders that can be made), and the export's two files must not be folders. ``RunDirError``
    naming the path and the fix; nothing is created."""
    rundir.check_writable_dir(config.out_dir, create=False)
    export_dir = Path(config.export_dir) if config.export_dir is not None else Path(config.out_dir)
    try:
        rundir.check_writable_dir(export_dir, create=False)
    except RunDirError as err:
        raise RunDirError(str(err).replace("output directory", "export directory (export_dir, --export-dir)")) from None
    for suffix in (".safetensors", ".json"):
        target = export_dir / f"{config.export_name}{suffix}"
        if target.is_dir():
            raise RunDirError(
                f"the model would be exported to {target}, which is a directory; choose another export_name "
                "(--export-name) or export_dir (--export-dir)"
            )


def check_init(config: TrainConfig) -> None:
    """Raise ``ValueError`` (naming the fix) if ``config.init`` cannot start this run; nothing to check without one."""
    if config.init is not None:
        _load_init(config)


def _disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: True hides the bar, None shows it only on a terminal."""
    return None if progress is None else not progress


def _synthetic_datasets(config: TrainConfig) -> tuple[Any, Any]:
    try:
        from .data.synthetic import SyntheticStreets
    except ImportError as err:
        raise RuntimeError(
            "the synthetic street data set (segattack.data.synthetic) is not available; pass datasets to train()"
        ) from err
    h, w = config.size
    train_ds = SyntheticStreets(split="train", size=(h, w), length=config.train_images, seed=config.data_seed)
    val_ds = SyntheticStreets(split="val", size=(h, w), length=config.val_images, seed=config.data_seed)
    return train_ds, val_ds


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix-style), so that (seed, step) pairs give unrelated streams."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


def _batch_indices(step: int, *, batch_size: int, n: int, seed: int) -> list[int]:
    """Indices of the batch for ``step``: a fresh permutation of the data set every epoch, seeded by (seed, epoch)."""
    out: list[int] = []
    perms: dict[int, Tensor] = {}
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, within = divmod(pos, n)
        if epoch not in perms:
            perms[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, 1, epoch)))
        out.append(int(perms[epoch][within]))
    return out


def _gray(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma (ITU-R BT.601 weights, as torchvision's jitter)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _augment(
    images: Tensor,
    labels: Tensor,
    *,
    crop: tuple[int, int],
    generator: torch.Generator,
    config: TrainConfig,
    fill: Tensor,
) -> tuple[Tensor, Tensor]:
    """Random scale + crop + flip (one affine resampling per image) and colour jitter.

    images: (B, 3, H, W) uint8; labels (B, H, W) uint8, on the training device. Returns float images (B, 3, ch, cw)
    in [0, 1] and int64 labels (B, ch, cw); pixels outside the rescaled image get ``fill`` (per-channel, [0, 1])
    and the ignore label.
    """
    b, _, h, w = images.shape
    ch, cw = crop
    lo, hi = config.scale_range
    # All random draws on the CPU generator, in a fixed order, whatever the device.
    scale = lo + (hi - lo) * torch.rand(b, generator=generator, dtype=torch.float64)
    offset = torch.rand(b, 2, generator=generator, dtype=torch.float64)
    flip = torch.rand(b, generator=generator) < 0.5 if config.hflip else torch.zeros(b, dtype=torch.bool)
    jitter = 2 * torch.rand(b, 3, generator=generator) - 1

    # Crop origin (y0, x0) in the rescaled image: uniform over positions; negative when the crop is larger (pad).
    sh, sw = scale * h, scale * w
    y0 = offset[:, 0] * (sh - ch)
    x0 = offset[:, 1] * (sw - cw)
    # Output normalised coordinate u in [-1, 1] -> input normalised coordinate a * u + c (align_corners=False).
    ax, ay = cw / sw, ch / sh
    cx, cy = ax + 2 * x0 / sw - 1, ay + 2 * y0 / sh - 1
    ax = torch.where(flip, -ax, ax)
    # theta (B, 2, 3) and the jitter factors (B, 3) travel to the device in one copy.
    packed = torch.zeros(b, 9, dtype=torch.float64)
    packed[:, 0], packed[:, 2], packed[:, 4], packed[:, 5] = ax, cx, ay, cy
    packed[:, 6:] = 1 + jitter * torch.tensor([config.brightness, config.contrast, config.saturation])
    packed = packed.to(device=images.device, dtype=torch.float32, non_blocking=True)
    theta, factors = packed[:, :6].view(b, 2, 3), packed[:, 6:]
    grid = F.affine_grid(theta, [b, 3, ch, cw], align_corners=False)

    fill = fill.view(1, 3, 1, 1)
    x = F.grid_sample(images.float() / 255 - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = x + fill
    lab = F.grid_sample((labels.float() + 1)[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    lab = lab[:, 0].round().long() - 1
    lab = torch.where(lab < 0, torch.full_like(lab, IGNORE_INDEX), lab)

    x = x * factors[:, 0].view(b, 1, 1, 1)
    mean_gray = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = (x - mean_gray) * factors[:, 1].view(b, 1, 1, 1) + mean_gray
    gray = _gray(x)
    x = (x - gray) * factors[:, 2].view(b, 1, 1, 1) + gray
    return x.clamp_(0, 1), lab


# ----------------------------------------------------------------------------------------------------------- loop


def _lr_factor(step: int, *, steps: int, warmup: int, schedule: str, power: float) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    if schedule == "poly":
        return (1 - progress) ** power
    return 0.5 * (1 + math.cos(math.pi * progress))


def _param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in net.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            norm = isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm | nn.LayerNorm)
            (no_decay if norm or pname == "bias" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    return device


def checkpoint_step(out_dir: str | os.PathLike[str]) -> int | None:
    """The step of the checkpoint in ``out_dir``, or None if there is none."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["step"])


def config_differences(config: TrainConfig) -> list[str]:
    """Differences ("field: stored -> given") between ``config`` and the run stored in ``config.out_dir``, leaving
    out the runtime fields that may change on resumption; empty if they agree or there is no stored run."""
    config_path = Path(config.out_dir) / CONFIG
    if not config_path.is_file():
        return []
    try:
        stored = dict(json.loads(config_path.read_text(encoding="utf-8")).get("config", {}))
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise RunDirError(
            f"{config_path} is corrupt (not a JSON object); start over with --overwrite or choose another --out"
        ) from None
    stored.setdefault("arch", "fcn8s")  # runs from before --arch trained FCN8s
    stored.setdefault("output_stride", 8)  # and from before output_stride, at stride 8
    stored.setdefault("refine", 0)  # and from before refine, without the block
    stored.setdefault("refine2", 0)  # and from before refine2
    stored.setdefault("loss", "ce")  # and from before loss, with cross-entropy
    stored.setdefault("lovasz_weights", {})  # and from before lovasz_weights, unweighted
    return rundir.config_diff(stored, config.as_json(), ignore=RUNTIME_FIELDS)


def _previous_resolved(out: Path) -> dict[str, Any]:
    """The ``resolved`` block of the run's existing config.json ({} when there is none or it is unreadable)."""
    try:
        resolved = json.loads((out / CONFIG).read_text(encoding="utf-8")).get("resolved", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return resolved if isinstance(resolved, dict) else {}


def _check_existing(out: Path, config: TrainConfig, *, overwrite: bool) -> None:
    """Refuse to resume a run with a different configuration, unless ``overwrite`` (then start over)."""
    diffs = config_differences(config)
    if not diffs:
        return
    if not overwrite:
        raise ConfigMismatchError(
            f"{out} holds a training run with a different configuration ({'; '.join(diffs)}); "
            "use another output directory, or overwrite=True (--overwrite) to discard it and start over"
        )
    logger.warning("discarding the run in %s (different configuration: %s)", out, "; ".join(diffs))
    for name in (CHECKPOINT, METRICS, CONFIG):
        (out / name).unlink(missing_ok=True)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (work after the last checkpoint, to be redone) and torn lines."""
    if not path.is_file():
        return
    rows, raw, _ = rundir.read_jsonl(path)
    kept = [
        line for row, line in zip(rows, raw, strict=True) if isinstance(row.get("step"), int) and row["step"] <= step
    ]
    rundir.rewrite_jsonl(path, kept)


def _append(path: Path, row: dict[str, Any]) -> None:
    rundir.append_jsonl(path, [row])


def _save_checkpoint(
    path: Path,
    *,
    step: int,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    elapsed_s: float,
    loss_window: tuple[float, int],
) -> None:
    state = {
        "format": _CHECKPOINT_FORMAT,
        "step": step,
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "elapsed_s": elapsed_s,
        "loss_window": [float(loss_window[0]), int(loss_window[1])],  # unlogged losses, so logs resume exactly
    }
    with rundir.atomic_open(path) as fh:
        torch.save(state, fh)


def train(
    config: TrainConfig,
    *,
    train_data: Any = None,
    val_data: Any = None,
    overwrite: bool = False,
    progress: bool | None = False,
) -> TrainResult:
    """Train ``config.arch`` as configured; resume from ``config.out_dir``'s checkpoint if there is one.

    Args:
        config: the run (see ``TrainConfig``).
        train_data, val_data: map-style datasets of (image (3, H, W) uint8 or float in [0, 1], label (H, W) train
            ids with 255 = ignore); default: synthetic street scenes (``config.data``). The first
            ``config.train_images`` / ``config.val_images`` items are used.
        overwrite: if ``out_dir`` holds a run with a different configuration, discard it instead of raising
            ``ConfigMismatchError``.
        progress: show a tqdm progress bar (None: only on a terminal).

    Returns a ``TrainResult``; when ``config.steps`` is reached the model is exported with ``zoo.save_model``.
    The caller's global RNG state is left as it was (training seeds and restores its own).
    """
    device = _resolve_device(config.device)
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        return _train(config, device=device, train_data=train_data, val_data=val_data, overwrite=overwrite,
                      progress=progress)  # fmt: skip


def _train(
    config: TrainConfig, *, device: torch.device, train_data: Any, val_data: Any, overwrite: bool, progress: bool | None
) -> TrainResult:
    check_outputs(config)  # before the lock, the data and the model: a finished run must have somewhere to go
    out = rundir.check_writable_dir(config.out_dir)
    with rundir.RunLock(out, "segattack train"):
        return _train_locked(
            out, config, device=device, train_data=train_data, val_data=val_data, overwrite=overwrite,
            progress=progress,
        )  # fmt: skip


def _train_locked(
    out: Path,
    config: TrainConfig,
    *,
    device: torch.device,
    train_data: Any,
    val_data: Any,
    overwrite: bool,
    progress: bool | None,
) -> TrainResult:
    _check_existing(out, config, overwrite=overwrite)
    lr = config.lr if config.lr is not None else _DEFAULT_LR[config.optimizer]
    weight_decay = config.weight_decay if config.weight_decay is not None else _DEFAULT_WEIGHT_DECAY[config.optimizer]
    end_step = min(config.steps, config.stop_at) if config.stop_at is not None else config.steps

    if train_data is None or val_data is None:
        default_train, default_val = _synthetic_datasets(config)
        train_data = default_train if train_data is None else train_data
        val_data = default_val if val_data is None else val_data
    train_src = _Source(train_data, config.train_images, name="training", cache_limit_mb=config.cache_limit_mb,
                        num_classes=config.num_classes,
                        progress=progress)  # fmt: skip
    val_src = _Source(val_data, config.val_images, name="validation", cache_limit_mb=config.cache_limit_mb,
                      num_classes=config.num_classes,
                      progress=progress)  # fmt: skip
    if config.crop is None and not train_src.cached:
        raise ValueError("training images of varying size need a crop size (crop=(h, w), --crop HxW)")

    init_model = init_card = init_sha = None
    card: ModelCard | None = None
    if config.init is not None:
        init_model, card = _load_init(config)
        init_card, init_sha = str(card.path), card.sha256
        previous = _previous_resolved(out)
        if (out / CHECKPOINT).is_file() and previous.get("init_sha256") not in (None, init_sha):
            raise ValueError(
                f"init {config.init} has changed since this run started (weights sha256 {init_sha[:12]}, the run "
                f"started from {str(previous['init_sha256'])[:12]}); restore that model or start a new --out"
            )
    if config.mean is None or config.std is None:
        if card is not None:  # the init model's normalisation, as its card gives it
            measured_mean, measured_std = card.mean, card.std
        else:
            measured_mean, measured_std = train_src.mean_std()
    mean = config.mean if config.mean is not None else measured_mean
    std = config.std if config.std is not None else measured_std

    torch.manual_seed(config.seed)
    arch_kwargs = config.arch_kwargs()
    net = ARCHITECTURES[config.arch](config.num_classes, **arch_kwargs).to(device)
    if init_model is not None:
        _load_init_weights(net, init_model.net.state_dict())  # a resume overwrites it with the checkpoint's below
        del init_model
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    groups = _param_groups(net, weight_decay)
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr)

    def factor(step: int) -> float:
        return _lr_factor(step, steps=config.steps, warmup=config.warmup_steps, schedule=config.schedule,
                          power=config.poly_power)  # fmt: skip

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
    n_params = sum(p.numel() for p in net.parameters())

    rundir.write_json(
        out / CONFIG,
        {
            "config": config.as_json(),
            "resolved": {
                "mean": list(mean), "std": list(std), "lr": lr, "weight_decay": weight_decay,
                "device": str(device), "parameters": n_params, "train_images": train_src.n,
                "val_images": val_src.n, "train_data": type(train_data).__name__,
                "val_data": type(val_data).__name__, "torch": torch.__version__,
                **({"init_card": init_card, "init_sha256": init_sha} if init_sha is not None else {}),
            },
        },
    )  # fmt: skip

    ckpt_path = out / CHECKPOINT
    metrics_path = out / METRICS
    start_step = 0
    elapsed_before = 0.0
    loss_window = (0.0, 0)
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"{ckpt_path} has checkpoint format {state.get('format')}, expected {_CHECKPOINT_FORMAT}")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and len(state["rng_cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        start_step = int(state["step"])
        elapsed_before = float(state["elapsed_s"])
        loss_window = (float(state["loss_window"][0]), int(state["loss_window"][1]))
        _truncate_metrics(metrics_path, start_step)
        logger.info("resuming from step %d (checkpoint %s)", start_step, ckpt_path)
    else:
        metrics_path.unlink(missing_ok=True)
    logger.info(
        "training %s (width %s, %s params) on %s for steps %d..%d, batch %d, crop %s",
        config.arch, config.width, f"{n_params:,}", device, start_step, end_step, config.batch_size, config.crop,
    )  # fmt: skip

    if config.crop is not None:
        crop = config.crop
    else:
        h, w = train_src.get([0])[0][0].shape[-2:]  # cached (checked above): stacked (images, labels)
        crop = (int(h), int(w))
    if device.type == "cuda":
        train_src.to(device)
        val_src.to(device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    use_amp = config.amp and device.type == "cuda"
    lovasz_w: Tensor | None = None
    if config.lovasz_weights:
        names = _class_names(config.num_classes)
        lovasz_w = torch.tensor([config.lovasz_weights.get(n, 1.0) for n in names], device=device)
    # The one evaluator sees the network from pixel space; PixelModel restores its train/eval flags after each call.
    val_model = PixelModel(net, mean=mean, std=std, num_classes=config.num_classes).to(device)
    t0 = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def validate(step: int, *, log: bool = True) -> EvalResult:
        result = evaluate(val_model, val_src, num_classes=config.num_classes, ignore_index=IGNORE_INDEX,
                          batch_size=config.val_batch_size or config.batch_size, device=device,
                          amp="bf16" if use_amp else None)  # fmt: skip
        if log:
            _append(metrics_path, {"kind": "val", "step": step, "elapsed_s": round(elapsed(), 3),
                                   **_val_summary(result)})  # fmt: skip
        logger.info("step %d: val mIoU %.4f, pixel accuracy %.4f", step, result.miou, result.pixel_accuracy)
        return result

    net.train()
    loss_sum = torch.full((), loss_window[0], dtype=torch.float64, device=device)
    loss_count = loss_window[1]
    timed_steps = 0  # steps since window_t, for the throughput column
    last_loss = math.nan
    last_val: EvalResult | None = None
    window_t = time.perf_counter()
    bar = tqdm(total=config.steps, initial=start_step, desc="train", unit="step", disable=_disable(progress),
               dynamic_ncols=True)  # fmt: skip
    step = start_step
    try:
        while step < end_step:
            gen = torch.Generator().manual_seed(_mix(config.seed, 2, step))
            got = train_src.get(_batch_indices(step, batch_size=config.batch_size, n=train_src.n, seed=config.seed))
            if isinstance(got, tuple):
                x, y = _augment(got[0].to(device, non_blocking=True), got[1].to(device, non_blocking=True),
                                crop=crop, generator=gen, config=config, fill=mean_t)  # fmt: skip
            else:
                parts = [_augment(img[None].to(device), lbl[None].to(device), crop=crop, generator=gen, config=config,
                                  fill=mean_t) for img, lbl in got]  # fmt: skip
                x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            x = (x - mean_t) / std_t
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)

            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = net(x)
            logits = logits.float()
            loss = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum")
            loss = loss / (y != IGNORE_INDEX).sum().clamp_min(1)  # all-ignored batch: loss 0, not NaN
            if config.loss == "ce+lovasz":
                loss = loss + lovasz_softmax(logits.softmax(1), y, ignore_index=IGNORE_INDEX,
                                             class_weights=lovasz_w)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += loss.detach()
            loss_count += 1
            timed_steps += 1
            bar.update(1)

            if step % config.log_every == 0 or step == config.steps:
                last_loss = float(loss_sum) / loss_count  # the only per-window device sync
                if not math.isfinite(last_loss):
                    raise FloatingPointError(
                        f"training loss became {last_loss} by step {step}; lower the learning rate"
                    )
                now = time.perf_counter()
                row = {"kind": "train", "step": step, "loss": round(last_loss, 6),
                       "lr": scheduler.get_last_lr()[0], "steps_per_s": round(timed_steps / (now - window_t), 4),
                       "elapsed_s": round(elapsed(), 3)}  # fmt: skip
                _append(metrics_path, row)
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{row['lr']:.2e}")
                loss_sum.zero_()
                loss_count = 0
                timed_steps = 0
                window_t = now
            if (config.val_every and step % config.val_every == 0) or step == config.steps:
                last_val = validate(step)
                bar.set_postfix(loss=f"{last_loss:.4f}", miou=f"{last_val.miou:.3f}")
            if step % config.checkpoint_every == 0 or step == end_step:
                _save_checkpoint(ckpt_path, step=step, net=net, optimizer=optimizer, scheduler=scheduler,
                                 elapsed_s=elapsed(), loss_window=(float(loss_sum), loss_count))  # fmt: skip
    finally:
        bar.close()

    finished = step >= config.steps
    if finished and last_val is None:  # resumed from the final checkpoint: validate again for the export
        last_val = validate(step, log=False)  # its row is in metrics.jsonl already
    net.eval()
    export_path: Path | None = None
    if finished and last_val is not None:
        export_dir = Path(config.export_dir) if config.export_dir is not None else out
        total_s = elapsed()
        ih, iw = train_src.image_size
        desc = (
            f"{config.describe()}, trained {config.steps} steps on {type(train_data).__name__} {ih}x{iw}, "
            f"val mIoU {last_val.miou:.3f}"
        )
        export_path = save_model(
            net, export_dir / config.export_name, arch=config.arch, arch_kwargs=arch_kwargs, mean=mean, std=std,
            num_classes=config.num_classes, description=desc,
            extra={
                "training": {
                    "steps": config.steps, "seed": config.seed, "batch_size": config.batch_size,
                    "crop": config.crop, "image_size": train_src.image_size, "train_data": type(train_data).__name__,
                    "train_images": train_src.n, "val_images": val_src.n, "optimizer": config.optimizer, "lr": lr,
                    "weight_decay": weight_decay, "schedule": config.schedule, "device": str(device),
                    "elapsed_s": round(total_s, 1), "final_train_loss": last_loss, "torch": torch.__version__,
                    **({"init": config.init, "init_sha256": init_sha} if init_sha is not None else {}),
                    "config": {k: v for k, v in config.as_json().items() if k not in RUNTIME_FIELDS},
                },
                "val": _val_summary(last_val),
            },
        )  # fmt: skip
        logger.info("exported the final model to %s", export_path)
    return TrainResult(
        net=net, step=step, finished=finished, resumed_from=start_step, train_loss=last_loss, val=last_val,
        export_path=export_path, elapsed_s=elapsed(), out_dir=out,
    )  # fmt: skip
