"""The resumable state of a training run: ``checkpoint.pt`` (model, optimiser, scheduler, step, RNG states, elapsed
time and the unlogged losses) written atomically, restored on resumption, and the metric rows it makes stale.

A resumed run equals an uninterrupted one (on the same device and software): batches and augmentation are drawn
from generators seeded by (seed, step), and the global RNG (dropout) is saved here and restored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import rundir
from ..errors import RunDirError

__all__ = ["CHECKPOINT", "CHECKPOINT_FORMAT", "Resumed", "save_checkpoint", "restore_checkpoint", "checkpoint_step",
           "truncate_metrics"]  # fmt: skip

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Resumed:
    """Where a run goes on from: the step, the elapsed time (s) before it and the unlogged losses (sum, count)."""

    step: int = 0
    elapsed_s: float = 0.0
    loss_window: tuple[float, int] = (0.0, 0)


def save_checkpoint(
    path: Path,
    *,
    step: int,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    elapsed_s: float,
    loss_window: tuple[float, int],
) -> None:
    """Write the checkpoint of ``step`` atomically, with the global RNG states (CPU and every CUDA device)."""
    state = {
        "format": CHECKPOINT_FORMAT,
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


def restore_checkpoint(
    path: Path, *, net: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, device: torch.device
) -> Resumed:
    """Load the checkpoint at ``path`` into ``net``, ``optimizer`` and ``scheduler`` and restore the global RNG
    states (CUDA's where the device count agrees); ``RunDirError`` for a checkpoint of another format."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"{path} has checkpoint format {state.get('format')}, expected {CHECKPOINT_FORMAT}")
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and len(state["rng_cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    window = (float(state["loss_window"][0]), int(state["loss_window"][1]))
    return Resumed(step=int(state["step"]), elapsed_s=float(state["elapsed_s"]), loss_window=window)


def checkpoint_step(out_dir: str | os.PathLike[str]) -> int | None:
    """The step of the checkpoint in ``out_dir``, or None if there is none."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["step"])


def truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (work after the last checkpoint, to be redone) and torn lines."""
    if not path.is_file():
        return
    rows, raw, _ = rundir.read_jsonl(path)
    kept = [
        line for row, line in zip(rows, raw, strict=True) if isinstance(row.get("step"), int) and row["step"] <= step
    ]
    rundir.rewrite_jsonl(path, kept)
