"""The export of a finished run: the network as ``NAME.safetensors`` + ``NAME.json`` (a model card with the training
record and the last validation) through ``segattack.zoo.save_model``, and the checks that it can be written, made
before any work."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import rundir
from ..errors import RunDirError
from ..evaluation import EvalResult
from ..zoo import save_model
from .adversarial import card_record
from .config import RUNTIME_FIELDS, Resolved, TrainConfig, class_names

__all__ = ["check_outputs", "export_dir_of", "export_model", "val_summary"]

logger = logging.getLogger(__name__)


def val_summary(result: EvalResult) -> dict[str, Any]:
    """The validation measures as written to metrics.jsonl and the model card: ``miou``, ``pixel_acc`` and ``iou``
    keyed by class name; NaN becomes None."""
    return {
        "miou": rundir.json_safe(result.miou),
        "pixel_acc": rundir.json_safe(result.pixel_accuracy),
        "iou": dict(zip(class_names(len(result.iou)), map(rundir.json_safe, result.iou.tolist()), strict=True)),
    }


def export_dir_of(config: TrainConfig) -> Path:
    """Where the model is exported: ``export_dir``, by default ``out_dir``."""
    return Path(config.export_dir) if config.export_dir is not None else Path(config.out_dir)


def check_outputs(config: TrainConfig) -> None:
    """Refuse, before any work, outputs that cannot be written: ``out_dir`` and ``export_dir`` must be writable
    directories (or folders that can be made), and the export's two files must not be folders. ``RunDirError``
    naming the path and the fix; nothing is created."""
    rundir.check_writable_dir(config.out_dir, create=False)
    export_dir = export_dir_of(config)
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


def export_model(
    net: nn.Module,
    config: TrainConfig,
    resolved: Resolved,
    *,
    val: EvalResult,
    train_loss: float,
    elapsed_s: float,
    val_robust: EvalResult | None = None,
) -> Path:
    """Write the trained ``net`` with its model card (architecture, normalisation, the training record, ``val``;
    with adversarial training the settings under ``training.adversarial`` and ``val_robust`` under ``val.robust``)
    to ``export_dir/export_name``; returns the card's path."""
    ih, iw = resolved.image_size
    adv = config.adversarial_training()
    how = "trained" if adv is None else f"adversarially trained ({adv.spec.name}, eps {adv.eps_levels:g}/255)"
    desc = f"{config.describe()}, {how} {config.steps} steps on {resolved.train_data} {ih}x{iw}"
    desc += f", val mIoU {val.miou:.3f}"
    if val_robust is not None and adv is not None:
        desc += f", robust mIoU {val_robust.miou:.3f} (PGD-10 at eps {adv.eps_levels:g}/255)"
    training = {
        "steps": config.steps, "seed": config.seed, "batch_size": config.batch_size, "crop": config.crop,
        "image_size": resolved.image_size, "train_data": resolved.train_data, "train_images": resolved.train_images,
        "val_images": resolved.val_images, "optimizer": config.optimizer, "lr": config.base_lr,
        "weight_decay": config.base_weight_decay, "schedule": config.schedule, "device": resolved.device,
        "elapsed_s": round(elapsed_s, 1), "final_train_loss": train_loss, "torch": torch.__version__,
        **({"init": config.init, "init_sha256": resolved.init_sha256} if resolved.init_sha256 is not None else {}),
        **({"adversarial": card_record(adv)} if adv is not None else {}),
        "config": {k: v for k, v in config.as_json().items() if k not in RUNTIME_FIELDS},
    }  # fmt: skip
    robust: dict[str, Any] = {}
    if val_robust is not None and adv is not None:
        robust = {"robust": {**val_summary(val_robust), **card_record(adv)["validation"], "images": val_robust.images}}
    path = save_model(
        net, export_dir_of(config) / config.export_name, arch=config.arch, arch_kwargs=config.arch_kwargs(),
        mean=resolved.mean, std=resolved.std, num_classes=config.num_classes, description=desc,
        extra={"training": training, "val": {**val_summary(val), **robust}},
    )  # fmt: skip
    logger.info("exported the final model to %s", path)
    return path
