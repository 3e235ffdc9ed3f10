"""The training run's configuration: ``TrainConfig``, frozen and checked once, its JSON record in ``config.json``
and the comparison that decides whether a run in ``out_dir`` is resumed.

>>> cfg = TrainConfig(out_dir="runs/t", arch="deeplabv3", optimizer="adamw")
>>> cfg.width, cfg.dropout, cfg.base_lr, cfg.base_weight_decay
(1.0, 0.1, 0.001, 0.01)
>>> TrainConfig(out_dir="runs/t").describe()
'FCN8s-VGG16 width 0.125 + BatchNorm'
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .. import rundir
from ..data.labels import CLASS_NAMES
from ..errors import ConfigError, RunDirError
from ..zoo import check_model_name
from .adversarial import Adversarial
from .checkpoint import CHECKPOINT

__all__ = [
    "TrainConfig", "ConfigMismatchError", "ARCH_DEFAULTS", "ARCH_TITLES", "RUNTIME_FIELDS", "CONFIG", "METRICS",
    "class_names", "config_differences", "refuse_mismatch", "check_existing", "previous_resolved",
    "write_config_file", "Resolved", "ADVERSARIAL_DEFAULTS",
]  # fmt: skip

logger = logging.getLogger(__name__)

CONFIG = "config.json"
METRICS = "metrics.jsonl"

#: Fields that may change between an interrupted run and its resumption (they do not change what is trained).
RUNTIME_FIELDS = frozenset(
    {"out_dir", "device", "amp", "channels_last", "stop_at", "checkpoint_every", "val_every", "log_every",
     "export_name", "export_dir", "val_batch_size", "cache_limit_mb"}
)  # fmt: skip

#: The adversarial-training fields and their defaults (clean training): what a run from before them had.
ADVERSARIAL_DEFAULTS: dict[str, Any] = {
    "adversarial": None, "adv_eps": None, "adv_steps": 10, "adv_step_size": None, "adv_share": 1.0,
    "adv_val_images": 16,
}  # fmt: skip

DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 1e-2}


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

    Adversarial training (``train.adversarial``; off when ``adversarial`` is None): ``adversarial`` (a registered
    attack, optionally with its loss: "pgd" (PGD-AT, Madry et al. 2018), "segpgd" (SegPGD-AT, Gu et al. 2022),
    "pgd:js"; untargeted against the ground truth), ``adv_eps`` (its L-inf budget in 8-bit levels, 4 = 4/255;
    required), ``adv_steps`` (its iterations), ``adv_step_size`` (8-bit levels; None: the attack's own rule, for pgd
    2.5 eps / steps), ``adv_share`` (the share of every batch made adversarial, in (0, 1]: 1.0 adversarial images
    only as PIR-AT, 0.5 half clean and half adversarial as SegPGD-AT), ``adv_val_images`` (validation also reports
    the mIoU under PGD-10 at ``adv_eps`` on this many of the first validation images).

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
    # adversarial training
    adversarial: str | None = None
    adv_eps: float | None = None
    adv_steps: int = 10
    adv_step_size: float | None = None
    adv_share: float = 1.0
    adv_val_images: int = 16
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
        self._check_network()
        self._canonical_types()
        self._check_counts()
        self._check_optimisation()
        self._check_run()
        self._check_adversarial()

    def _check_network(self) -> None:
        """The architecture and its options; fills the architecture's defaults."""
        if self.arch not in ARCH_DEFAULTS:
            raise ConfigError(f"arch must be one of {', '.join(ARCH_DEFAULTS)}, got {self.arch!r}")
        for name, value in ARCH_DEFAULTS[self.arch].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not (isinstance(self.width, int | float) and math.isfinite(self.width) and self.width > 0):
            raise ConfigError(f"width must be a positive channel multiplier, got {self.width!r}")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ConfigError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")
        if self.arch != "fcn8s" and not self.batch_norm:
            raise ConfigError(f"batch_norm=False (--no-batch-norm) applies to fcn8s only; {self.arch} keeps its norms")
        if self.arch != "fcn8s" and self.fc6_kernel != 7:
            raise ConfigError(f"fc6_kernel applies to fcn8s only, not to {self.arch}")
        if self.output_stride not in (2, 4, 8) or isinstance(self.output_stride, bool):
            raise ConfigError(f"output_stride must be 8 (FCN-8s), 4 (FCN-4s) or 2 (FCN-2s), got {self.output_stride!r}")
        if self.arch != "fcn8s" and self.output_stride != 8:
            raise ConfigError(f"output_stride applies to fcn8s only, not to {self.arch}")
        for name in ("refine", "refine2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a number of channels >= 0 (0: none), got {value!r}")
        if self.refine and (self.arch != "fcn8s" or self.output_stride == 8):
            raise ConfigError("refine applies to fcn8s at output_stride 4 or 2 only (--output-stride 4)")
        if self.refine2 and (self.arch != "fcn8s" or self.output_stride != 2):
            raise ConfigError("refine2 applies to fcn8s at output_stride 2 only (--output-stride 2)")

    def _canonical_types(self) -> None:
        """Paths as strings, sequences as tuples: the JSON form is canonical."""
        object.__setattr__(self, "out_dir", os.fspath(self.out_dir))
        if self.export_dir is not None:
            object.__setattr__(self, "export_dir", os.fspath(self.export_dir))
        for name in ("size", "crop", "scale_range", "mean", "std"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, tuple(value))

    def _check_counts(self) -> None:
        """Counts of steps, images and pixels."""

        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
                bound = ">= 0" if allow_zero else ">= 1"
                raise ConfigError(f"{name} must be an integer {bound}, got {value!r}")

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
                raise ConfigError(f"{name} must be (height, width) in pixels, both >= 1, got {value!r}")

    def _check_optimisation(self) -> None:
        """Optimiser, loss, schedule and augmentation."""
        if self.optimizer not in DEFAULT_LR:
            raise ConfigError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.loss not in ("ce", "ce+lovasz"):
            raise ConfigError(f"loss must be 'ce' or 'ce+lovasz', got {self.loss!r}")
        if self.lovasz_weights and self.loss != "ce+lovasz":
            raise ConfigError("lovasz_weights (--lovasz-weight) needs loss='ce+lovasz' (--loss ce+lovasz)")
        names = class_names(self.num_classes)
        for name, weight in dict(self.lovasz_weights).items():
            if name not in names:
                raise ConfigError(f"lovasz_weights: unknown class {name!r}; classes: {', '.join(names)}")
            if (
                isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not (math.isfinite(weight) and weight > 0)
            ):
                raise ConfigError(f"lovasz_weights: the weight of {name!r} must be a positive number, got {weight!r}")
        object.__setattr__(self, "lovasz_weights", {k: float(v) for k, v in dict(self.lovasz_weights).items()})
        if self.schedule not in ("poly", "cosine"):
            raise ConfigError(f"schedule must be 'poly' or 'cosine', got {self.schedule!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive learning rate, got {self.lr}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov needs optimizer='sgd' with momentum > 0")
        if self.warmup_steps >= self.steps:
            raise ConfigError(f"warmup_steps ({self.warmup_steps}) must be smaller than steps ({self.steps})")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(
                    f"{name} jitter must lie in [0, 1) (factors in [1 - s, 1 + s]), got {getattr(self, name)}"
                )

    def _check_run(self) -> None:
        """Normalisation, device, init model, data and the export's name."""
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ConfigError(f"{name} must have one value per RGB channel, got {value!r}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"std must be positive, got {self.std}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from None
        if self.init is not None and not (self.init.startswith("zoo:") and self.init[4:].strip()):
            raise ConfigError(
                f"init must name a model as zoo:NAME (shipped) or zoo:PATH/NAME.json (exported), got {self.init!r}"
            )
        if self.data != "synthetic":
            raise ConfigError(f"data must be 'synthetic' (pass other datasets to train() directly), got {self.data!r}")
        # the export's files stay in export_dir: NAME.safetensors and NAME.json, no folder, no '..'
        check_model_name(self.export_name, what="export_name (--export-name)")

    def _check_adversarial(self) -> None:
        """The adversarial training's settings (``Adversarial.check``, each refusal naming its field); without
        ``adversarial``, none of them may be given."""
        if self.adversarial is not None:
            self.adversarial_training()
            return
        for name, default in ADVERSARIAL_DEFAULTS.items():
            if name != "adversarial" and getattr(self, name) != default:
                raise ConfigError(f"{name} applies to adversarial training only; give adversarial (--adversarial) "
                                  "too", field=name)  # fmt: skip

    def adversarial_training(self) -> Adversarial | None:
        """The checked adversarial settings (``train.adversarial.Adversarial``), or None for clean training."""
        if self.adversarial is None:
            return None
        return Adversarial.check(self.adversarial, eps=self.adv_eps, steps=self.adv_steps,
                                 step_size=self.adv_step_size, share=self.adv_share,
                                 val_images=self.adv_val_images)  # fmt: skip

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

    @property
    def base_lr(self) -> float:
        """The learning rate before the schedule: ``lr``, or the optimiser's default (0.01 SGD, 1e-3 AdamW)."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def base_weight_decay(self) -> float:
        """``weight_decay``, or the optimiser's default (5e-4 SGD, 1e-2 AdamW)."""
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[self.optimizer]

    @property
    def end_step(self) -> int:
        """The step this call of ``train`` stops after: ``stop_at`` when given (and below ``steps``), else ``steps``."""
        return min(self.steps, self.stop_at) if self.stop_at is not None else self.steps


def class_names(k: int) -> list[str]:
    """The names of ``k`` classes: Cityscapes' train ids for 19, else the ids as text."""
    return list(CLASS_NAMES) if k == len(CLASS_NAMES) else [str(i) for i in range(k)]


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
    for name, default in ADVERSARIAL_DEFAULTS.items():  # and from before adversarial training, clean
        stored.setdefault(name, default)
    return rundir.config_diff(stored, config.as_json(), ignore=RUNTIME_FIELDS)


def previous_resolved(out: Path) -> dict[str, Any]:
    """The ``resolved`` block of the run's existing config.json ({} when there is none or it is unreadable)."""
    try:
        resolved = json.loads((out / CONFIG).read_text(encoding="utf-8")).get("resolved", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return resolved if isinstance(resolved, dict) else {}


def refuse_mismatch(config: TrainConfig, *, overwrite: bool) -> list[str]:
    """The differences between ``config`` and the run in ``config.out_dir`` (``config_differences``);
    ``ConfigMismatchError`` if there are some, unless ``overwrite`` (``check_existing`` then discards the run)."""
    diffs = config_differences(config)
    if diffs and not overwrite:
        raise ConfigMismatchError(
            f"{config.out_dir} holds a training run with a different configuration ({'; '.join(diffs)}); "
            "use another output directory (--out), or overwrite=True (--overwrite) to discard that run and start over"
        )
    return diffs


def check_existing(out: Path, config: TrainConfig, *, overwrite: bool) -> None:
    """Refuse to resume a run with a different configuration, unless ``overwrite`` (then start over)."""
    diffs = refuse_mismatch(config, overwrite=overwrite)
    if not diffs:
        return
    logger.warning("discarding the run in %s (different configuration: %s)", out, "; ".join(diffs))
    for name in (CHECKPOINT, METRICS, CONFIG):
        (out / name).unlink(missing_ok=True)


def write_config_file(out: Path, config: TrainConfig, resolved: Resolved) -> None:
    """Write ``config.json``: the configuration as given and the values resolved from it (``Resolved.record``)."""
    rundir.write_json(out / CONFIG, {"config": config.as_json(), "resolved": resolved.record(config)})


@dataclass(frozen=True)
class Resolved:
    """What a run resolved from its configuration and data: the normalisation (``mean``, ``std``, [0, 1] units; the
    configured one, the init model's or measured), the device, the network's parameter count, the data (type names,
    images used, training image size (h, w)) and the init model's card and weights hash (None without one)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: str
    parameters: int
    train_data: str
    val_data: str
    train_images: int
    val_images: int
    image_size: tuple[int, int]
    init_card: str | None = None
    init_sha256: str | None = None

    def record(self, config: TrainConfig) -> dict[str, Any]:
        """The ``resolved`` block of ``config.json``."""
        return {
            "mean": list(self.mean), "std": list(self.std), "lr": config.base_lr,
            "weight_decay": config.base_weight_decay, "device": self.device, "parameters": self.parameters,
            "train_images": self.train_images, "val_images": self.val_images, "train_data": self.train_data,
            "val_data": self.val_data, "torch": torch.__version__,
            **({"init_card": self.init_card, "init_sha256": self.init_sha256} if self.init_sha256 is not None else {}),
        }  # fmt: skip
