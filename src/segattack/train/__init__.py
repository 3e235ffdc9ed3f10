"""Train a segmentation network (FCN-8s, Long et al. 2015) from scratch, resumably; export it to the model zoo.

Standard recipe: pixel-wise cross-entropy (ignore 255), SGD with momentum (optionally Nesterov) or AdamW, no weight
decay on biases and BatchNorm, poly or cosine learning-rate schedule with optional linear warmup, augmentation by
random scale + crop, horizontal flip and colour jitter (brightness, contrast, saturation). Validation is the
library's clean evaluator, ``segattack.evaluation.evaluate`` (an ``EvalResult``): per-class IoU, the mean IoU over
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

Adversarial training (``TrainConfig.adversarial``, ``segattack train --adversarial ATTACK[:LOSS] --adv-eps LEVELS``;
``adversarial``): every step trains on the first ``round(adv_share * B)`` images of its batch replaced by a
registered attack's untargeted adversarial images against the ground truth (PGD-AT, SegPGD-AT, PIR-AT), made on the
network in eval mode (BatchNorm's running statistics untouched, no dropout; see ``adversarial``), their random starts
seeded by (seed, step, position); validation rows then also carry ``robust_miou``, ``robust_pixel_acc`` and
``robust_images`` (PGD-10 at the training eps on the first ``adv_val_images`` validation images), and the model card
records the settings under ``training.adversarial`` and the robust validation under ``val.robust``.

Calling ``train`` again with the same output directory resumes from the last checkpoint. Batches and augmentation
are drawn from generators seeded by (seed, step), and the global RNG state (dropout) is restored, so a resumed run
gives the same weights as an uninterrupted one (on the same device and software).

The package has one module per job: ``config`` (``TrainConfig``, checked once; ``config.json`` written and compared
on resume), ``batches`` (the cached data, the seeded batch order, augmentation), ``losses`` (cross-entropy and
``lovasz_softmax``), ``init`` (starting from a trained model), ``adversarial`` (the adversarial examples of a
batch, the robust validation), ``checkpoint`` (the resumable state), ``loop``
(``train``: set-up, the training step on the images ``loop.training_images`` hands it, logging, validation,
checkpoints) and ``export`` (the model card and weights through ``segattack.zoo``).
"""

from __future__ import annotations

from .adversarial import Adversarial
from .batches import Source, synthetic_datasets
from .checkpoint import CHECKPOINT, checkpoint_step
from .config import (
    ARCH_DEFAULTS,
    ARCH_TITLES,
    CONFIG,
    METRICS,
    RUNTIME_FIELDS,
    ConfigMismatchError,
    TrainConfig,
    config_differences,
)
from .export import check_outputs, val_summary
from .init import check_init
from .loop import Start, TrainingDivergedError, TrainResult, check_start, lr_factor, train
from .losses import lovasz_softmax

__all__ = [
    "TrainConfig", "TrainResult", "ConfigMismatchError", "TrainingDivergedError", "train", "checkpoint_step",
    "config_differences", "check_init", "check_outputs", "check_start", "Start", "lovasz_softmax", "ARCH_DEFAULTS",
    "ARCH_TITLES", "RUNTIME_FIELDS", "CHECKPOINT", "CONFIG", "METRICS", "Source", "synthetic_datasets", "val_summary",
    "lr_factor", "Adversarial",
]  # fmt: skip
