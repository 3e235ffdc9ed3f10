"""The optimisation loop: ``train(config)`` sets a run up (data, network, optimiser, schedule, resumption), then steps
it: one training step on the batch ``training_images`` hands it, a logged loss window, validation with the library's
evaluator and checkpoints, each on its own schedule; a finished run is exported (``export.export_model``)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import rundir
from ..data.labels import IGNORE_INDEX
from ..errors import ConfigError
from ..evaluation import EvalResult, evaluate
from ..models import PixelModel
from ..zoo import ARCHITECTURES, ModelCard
from .adversarial import Adversarial, adversarial_images, robust_validation
from .batches import Source, augment, batch_indices, mix, open_sources, tqdm_disable
from .checkpoint import CHECKPOINT, Resumed, checkpoint_step, restore_checkpoint, save_checkpoint, truncate_metrics
from .config import (
    METRICS,
    Resolved,
    TrainConfig,
    check_existing,
    class_names,
    refuse_mismatch,
    write_config_file,
)
from .export import check_outputs, export_model, val_summary
from .init import check_init, init_for_run, load_init_weights
from .losses import training_loss

__all__ = ["train", "TrainResult", "Start", "check_start", "TrainingDivergedError", "training_images", "lr_factor",
           "resolve_device"]  # fmt: skip

logger = logging.getLogger(__name__)


class TrainingDivergedError(ConfigError, FloatingPointError):
    """The training loss became NaN or infinite (also a ``FloatingPointError``): the learning rate is too high."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train``: the network (on its training device, eval mode), the step reached, whether the run
    reached ``steps``, the step it resumed from (0 for a fresh run), the mean training loss of the last logging
    window, the last validation (``segattack.evaluation.EvalResult``), with adversarial training its robust
    validation (``val_robust``: under PGD-10 at the training eps, on the robust validation subset; else None), the
    exported model card (None unless finished) and the total elapsed time (s)."""

    net: nn.Module
    step: int
    finished: bool
    resumed_from: int
    train_loss: float
    val: EvalResult | None
    export_path: Path | None
    elapsed_s: float
    out_dir: Path
    val_robust: EvalResult | None = None


@dataclass(frozen=True)
class Start:
    """What ``train(config)`` will do in ``config.out_dir``: resume from ``resume_step`` (None: start afresh), or
    discard a run of a different configuration (``discarded``: its differences, with ``overwrite``)."""

    resume_step: int | None
    discarded: tuple[str, ...] = ()


def resolve_device(name: str) -> torch.device:
    """``TrainConfig.device`` as a device ("auto": CUDA if available); ``ConfigError`` for CUDA without CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device='cpu' or 'auto' (--device)")
    return device


def check_start(config: TrainConfig, *, overwrite: bool = False) -> Start:
    """Every check ``train`` makes before its work, made at once (the device, the outputs, the init model, the run
    in ``out_dir``), and what it will do there. Raises what ``train`` would: ``ConfigError``, ``RunDirError``,
    ``ConfigMismatchError`` (a different run, unless ``overwrite``)."""
    resolve_device(config.device)
    check_outputs(config)  # --out, --export-dir, the export's files: refused before the model is loaded or trained
    check_init(config)
    diffs = refuse_mismatch(config, overwrite=overwrite)
    return Start(resume_step=None if diffs else checkpoint_step(config.out_dir), discarded=tuple(diffs))


# ---------------------------------------------------------------------------------------------------------- setup


def lr_factor(step: int, *, steps: int, warmup: int, schedule: str, power: float) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    if schedule == "poly":
        return (1 - progress) ** power
    return 0.5 * (1 + math.cos(math.pi * progress))


def _param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights with ``weight_decay``, biases and normalisation parameters without."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in net.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            norm = isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm | nn.LayerNorm)
            (no_decay if norm or pname == "bias" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimiser(net: nn.Module, config: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """The optimiser and its learning-rate schedule (``lr_factor`` per step)."""
    groups = _param_groups(net, config.base_weight_decay)
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.base_lr, momentum=config.momentum, nesterov=config.nesterov)
    else:
        optimizer = torch.optim.AdamW(groups, lr=config.base_lr)

    def factor(step: int) -> float:
        return lr_factor(step, steps=config.steps, warmup=config.warmup_steps, schedule=config.schedule,
                         power=config.poly_power)  # fmt: skip

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


def _network(config: TrainConfig, device: torch.device, init: tuple[PixelModel, ModelCard] | None) -> nn.Module:
    """The configured network on ``device``, seeded by ``config.seed``, with the init model's weights if any."""
    torch.manual_seed(config.seed)
    net = ARCHITECTURES[config.arch](config.num_classes, **config.arch_kwargs()).to(device)
    if init is not None:
        load_init_weights(net, init[0].net.state_dict())  # a resume overwrites it with the checkpoint's
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net


@dataclass
class _Window:
    """The training losses since the last logged row (summed on the device: one sync per row) and its timing."""

    loss_sum: Tensor
    count: int
    steps: int = 0  # steps since ``start``, for the throughput column
    start: float = field(default_factory=time.perf_counter)
    last_loss: float = math.nan


@dataclass
class _Run:
    """One training run, set up: its configuration, device, data, network and optimiser, and the clock."""

    config: TrainConfig
    device: torch.device
    out: Path
    train_src: Source
    val_src: Source
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    resolved: Resolved
    resumed: Resumed
    crop: tuple[int, int]
    mean_t: Tensor
    std_t: Tensor
    lovasz_w: Tensor | None
    val_model: PixelModel
    #: adversarial training (None: clean) and the network as its attacks see it (eval mode in every pass)
    adv: Adversarial | None = None
    attack_model: PixelModel | None = None
    t0: float = field(default_factory=time.perf_counter)

    @property
    def use_amp(self) -> bool:
        return self.config.amp and self.device.type == "cuda"

    def elapsed(self) -> float:
        return self.resumed.elapsed_s + time.perf_counter() - self.t0


def _normalisation(config: TrainConfig, train_src: Source, card: ModelCard | None) -> tuple[Any, Any]:
    """``mean`` and ``std``: the configured ones, else the init model's (its card's), else measured on the data."""
    if config.mean is None or config.std is None:
        measured_mean, measured_std = (card.mean, card.std) if card is not None else train_src.mean_std()
    mean = config.mean if config.mean is not None else measured_mean
    std = config.std if config.std is not None else measured_std
    return mean, std


def _resume(
    out: Path, net: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, device: torch.device
) -> Resumed:
    """Restore the checkpoint in ``out`` and drop the metric rows after it; without one, start the metrics afresh."""
    ckpt_path, metrics_path = out / CHECKPOINT, out / METRICS
    if not ckpt_path.is_file():
        metrics_path.unlink(missing_ok=True)
        return Resumed()
    resumed = restore_checkpoint(ckpt_path, net=net, optimizer=optimizer, scheduler=scheduler, device=device)
    truncate_metrics(metrics_path, resumed.step)
    logger.info("resuming from step %d (checkpoint %s)", resumed.step, ckpt_path)
    return resumed


def _setup(out: Path, config: TrainConfig, *, device: torch.device, train_data: Any, val_data: Any,
           progress: bool | None) -> _Run:  # fmt: skip
    """Data, init model, network, optimiser, ``config.json`` and the resumed state, in this order (the order of the
    random draws: the network's initialisation, then the restored RNG state)."""
    train_src, val_src = open_sources(config, train_data, val_data, progress=progress)
    init = init_for_run(config, out)
    card = init[1] if init is not None else None
    mean, std = _normalisation(config, train_src, card)
    net = _network(config, device, init)
    del init
    resolved = Resolved(
        mean=mean, std=std, device=str(device), parameters=sum(p.numel() for p in net.parameters()),
        train_data=type(train_src.dataset).__name__, val_data=type(val_src.dataset).__name__,
        train_images=train_src.n, val_images=val_src.n, image_size=train_src.image_size,
        init_card=str(card.path) if card is not None else None, init_sha256=card.sha256 if card is not None else None,
    )  # fmt: skip
    optimizer, scheduler = _optimiser(net, config)
    write_config_file(out, config, resolved)
    resumed = _resume(out, net, optimizer, scheduler, device)
    logger.info(
        "training %s (width %s, %s params) on %s for steps %d..%d, batch %d, crop %s", config.arch, config.width,
        f"{resolved.parameters:,}", device, resumed.step, config.end_step, config.batch_size, config.crop,
    )  # fmt: skip
    if config.crop is not None:
        crop = config.crop
    else:
        h, w = train_src.get([0])[0][0].shape[-2:]  # cached (open_sources checked): stacked (images, labels)
        crop = (int(h), int(w))
    if device.type == "cuda":
        train_src.to(device)
        val_src.to(device)
    lovasz_w: Tensor | None = None
    if config.lovasz_weights:
        names = class_names(config.num_classes)
        lovasz_w = torch.tensor([config.lovasz_weights.get(n, 1.0) for n in names], device=device)
    # The one evaluator sees the network from pixel space; PixelModel restores its train/eval flags after each call.
    val_model = PixelModel(net, mean=resolved.mean, std=resolved.std, num_classes=config.num_classes).to(device)
    adv = config.adversarial_training()
    attack_model: PixelModel | None = None
    if adv is not None:  # the attacks' view of the network: PixelModel freezes it (eval mode) in every pass
        attack_model = PixelModel(net, mean=resolved.mean, std=resolved.std, num_classes=config.num_classes).to(device)
        attack_model.set_fast_path(amp="bf16" if config.amp and device.type == "cuda" else None,
                                   channels_last=config.channels_last)  # fmt: skip
        logger.info("adversarial training: %s at eps %g levels, %d steps, share %g", adv.spec.name, adv.eps_levels,
                    adv.steps, adv.share)  # fmt: skip
    return _Run(
        config=config, device=device, out=out, train_src=train_src, val_src=val_src, net=net, optimizer=optimizer,
        scheduler=scheduler, resolved=resolved, resumed=resumed, crop=crop,
        mean_t=torch.tensor(resolved.mean, device=device).view(1, 3, 1, 1),
        std_t=torch.tensor(resolved.std, device=device).view(1, 3, 1, 1), lovasz_w=lovasz_w, val_model=val_model,
        adv=adv, attack_model=attack_model,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- step


def _augmented_batch(run: _Run, step: int) -> tuple[Tensor, Tensor]:
    """The batch of ``step``, augmented: images (B, 3, h, w) in [0, 1] and labels (B, h, w), on the device. Its
    indices and augmentation come from generators seeded by (seed, step)."""
    config, device = run.config, run.device
    gen = torch.Generator().manual_seed(mix(config.seed, 2, step))
    got = run.train_src.get(batch_indices(step, batch_size=config.batch_size, n=run.train_src.n, seed=config.seed))
    if isinstance(got, tuple):
        return augment(got[0].to(device, non_blocking=True), got[1].to(device, non_blocking=True), crop=run.crop,
                       generator=gen, config=config, fill=run.mean_t)  # fmt: skip
    parts = [augment(img[None].to(device), lbl[None].to(device), crop=run.crop, generator=gen, config=config,
                     fill=run.mean_t) for img, lbl in got]  # fmt: skip
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def training_images(run: _Run, images: Tensor, labels: Tensor, step: int) -> Tensor:
    """The images (B, 3, h, w) in [0, 1] that ``step`` trains on, from its augmented batch and labels (B, h, w): the
    clean images themselves, or with adversarial training (``config.adversarial``) the first
    ``round(adv_share * B)`` of them replaced by the attack's untargeted adversarial images against ``labels``
    (``adversarial.adversarial_images``: made in eval mode on ``PixelModel``, seeded by (seed, step, position)).
    The network's train/eval flags and ``requires_grad`` are as they were when this returns."""
    if run.adv is None or run.attack_model is None:
        return images
    return adversarial_images(run.attack_model, images, labels, adv=run.adv, seed=run.config.seed, step=step)


def _train_step(run: _Run, step: int) -> Tensor:
    """One optimiser step on the batch of ``step`` (0-based); returns the loss (a detached device scalar)."""
    images, labels = _augmented_batch(run, step)
    x = training_images(run, images, labels, step)
    x = (x - run.mean_t) / run.std_t
    if run.config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    run.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.use_amp):
        logits = run.net(x)
    loss = training_loss(logits.float(), labels, loss=run.config.loss, lovasz_weights=run.lovasz_w)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    return loss.detach()


# --------------------------------------------------------------------------------------- logging, validation, loop


def _log_window(run: _Run, window: _Window, step: int) -> dict[str, Any]:
    """Append the window's training row to metrics.jsonl and start a new window; returns the row."""
    window.last_loss = float(window.loss_sum) / window.count  # the only per-window device sync
    if not math.isfinite(window.last_loss):
        raise TrainingDivergedError(
            f"training loss became {window.last_loss} by step {step}; lower the learning rate"
        )  # fmt: skip
    now = time.perf_counter()
    row = {"kind": "train", "step": step, "loss": round(window.last_loss, 6), "lr": run.scheduler.get_last_lr()[0],
           "steps_per_s": round(window.steps / (now - window.start), 4),
           "elapsed_s": round(run.elapsed(), 3)}  # fmt: skip
    rundir.append_jsonl(run.out / METRICS, [row])
    window.loss_sum.zero_()
    window.count = 0
    window.steps = 0
    window.start = now
    return row


def _validate(run: _Run, step: int, *, log: bool = True) -> tuple[EvalResult, EvalResult | None]:
    """The library's clean evaluation of the network on the validation images and, with adversarial training, the
    robust one (``adversarial.robust_validation``: PGD-10 at the training eps on the first ``adv_val_images``);
    their row goes to metrics.jsonl (``robust_miou``, ``robust_pixel_acc`` beside the clean measures)."""
    config = run.config
    batch_size = config.val_batch_size or config.batch_size
    result = evaluate(run.val_model, run.val_src, num_classes=config.num_classes, ignore_index=IGNORE_INDEX,
                      batch_size=batch_size, device=run.device, amp="bf16" if run.use_amp else None)  # fmt: skip
    robust: EvalResult | None = None
    extra: dict[str, Any] = {}
    if run.adv is not None and run.attack_model is not None:
        robust = robust_validation(run.attack_model, run.val_src, adv=run.adv, seed=config.seed,
                                   num_classes=config.num_classes, batch_size=batch_size,
                                   device=run.device)  # fmt: skip
        extra = {"robust_miou": rundir.json_safe(robust.miou), "robust_pixel_acc":
                 rundir.json_safe(robust.pixel_accuracy), "robust_images": robust.images}  # fmt: skip
    if log:
        rundir.append_jsonl(run.out / METRICS, [{"kind": "val", "step": step, "elapsed_s": round(run.elapsed(), 3),
                                                 **val_summary(result), **extra}])  # fmt: skip
    if robust is not None and run.adv is not None:
        logger.info("step %d: val mIoU %.4f, pixel accuracy %.4f; robust mIoU %.4f, pixel accuracy %.4f (PGD-10 at "
                    "eps %g levels, %d images)", step, result.miou, result.pixel_accuracy, robust.miou,
                    robust.pixel_accuracy, run.adv.eps_levels, robust.images)  # fmt: skip
    else:
        logger.info("step %d: val mIoU %.4f, pixel accuracy %.4f", step, result.miou, result.pixel_accuracy)
    return result, robust


def _steps(run: _Run, progress: bool | None) -> tuple[int, _Window, tuple[EvalResult, EvalResult | None] | None]:
    """Steps from the resumed step to ``config.end_step``, logging every ``log_every`` steps, validating every
    ``val_every`` and at ``steps``, and checkpointing every ``checkpoint_every`` and at the last step; returns the
    step reached, the loss window and the last validation (clean, robust)."""
    config, net = run.config, run.net
    net.train()
    window = _Window(torch.full((), run.resumed.loss_window[0], dtype=torch.float64, device=run.device),
                     run.resumed.loss_window[1])  # fmt: skip
    last_val: tuple[EvalResult, EvalResult | None] | None = None
    step = run.resumed.step
    bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", disable=tqdm_disable(progress),
               dynamic_ncols=True)  # fmt: skip
    try:
        while step < config.end_step:
            loss = _train_step(run, step)
            step += 1
            window.loss_sum += loss
            window.count += 1
            window.steps += 1
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                row = _log_window(run, window, step)
                bar.set_postfix(loss=f"{window.last_loss:.4f}", lr=f"{row['lr']:.2e}")
            if (config.val_every and step % config.val_every == 0) or step == config.steps:
                last_val = _validate(run, step)
                clean_val, robust_val = last_val
                shown = {"robust_miou": f"{robust_val.miou:.3f}"} if robust_val is not None else {}
                bar.set_postfix(loss=f"{window.last_loss:.4f}", miou=f"{clean_val.miou:.3f}", **shown)
            if step % config.checkpoint_every == 0 or step == config.end_step:
                save_checkpoint(run.out / CHECKPOINT, step=step, net=net, optimizer=run.optimizer,
                                scheduler=run.scheduler, elapsed_s=run.elapsed(),
                                loss_window=(float(window.loss_sum), window.count))  # fmt: skip
    finally:
        bar.close()
    return step, window, last_val


# ---------------------------------------------------------------------------------------------------------- train


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
        train_data: a map-style dataset of (image (3, H, W) uint8 or float in [0, 1], label (H, W) train ids with
            255 = ignore); default: synthetic street scenes (``config.data``). Its first ``config.train_images``
            items are used.
        val_data: the validation dataset, of the same kind; its first ``config.val_images`` items are used.
        overwrite: if ``out_dir`` holds a run with a different configuration, discard it instead of raising
            ``ConfigMismatchError``.
        progress: show a tqdm progress bar (None: only on a terminal).

    Returns a ``TrainResult``; when ``config.steps`` is reached the model is exported with ``zoo.save_model``.
    The caller's global RNG state is left as it was (training seeds and restores its own).
    """
    device = resolve_device(config.device)
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        check_outputs(config)  # before the lock, the data and the model: a finished run must have somewhere to go
        out = rundir.check_writable_dir(config.out_dir)
        with rundir.RunLock(out, "segattack train"):
            check_existing(out, config, overwrite=overwrite)
            run = _setup(out, config, device=device, train_data=train_data, val_data=val_data, progress=progress)
            return _finish(run, *_steps(run, progress))


def _finish(
    run: _Run, step: int, window: _Window, last_val: tuple[EvalResult, EvalResult | None] | None
) -> TrainResult:
    """The result of the steps: a finished run is validated (if its last step was not) and exported."""
    config = run.config
    finished = step >= config.steps
    if finished and last_val is None:  # resumed from the final checkpoint: validate again for the export
        last_val = _validate(run, step, log=False)  # its row is in metrics.jsonl already
    run.net.eval()
    export_path: Path | None = None
    val, robust = last_val if last_val is not None else (None, None)
    if finished and val is not None:
        export_path = export_model(run.net, config, run.resolved, val=val, train_loss=window.last_loss,
                                   elapsed_s=run.elapsed(), val_robust=robust)  # fmt: skip
    return TrainResult(
        net=run.net, step=step, finished=finished, resumed_from=run.resumed.step, train_loss=window.last_loss,
        val=val, export_path=export_path, elapsed_s=run.elapsed(), out_dir=run.out, val_robust=robust,
    )  # fmt: skip
