"""Shipped models: a JSON model card next to a safetensors weights file, verified by SHA-256 before loading.

A model ``NAME`` is two files in the weights directory (``segattack/zoo/weights`` by default):

- ``NAME.json``: the model card: architecture name and keyword arguments, ``num_classes``, the normalisation
  ``mean``/``std`` (per channel, in [0, 1] units), the weights file name and its SHA-256 digest, a one-line
  description and whatever the producer adds (training summary, validation IoU, ...);
- ``NAME.safetensors``: the state dict of the architecture.

Weights are never unpickled: they are read with ``safetensors`` after their digest has been checked against the card.

>>> import tempfile, torch
>>> from segattack.zoo import FCN8s
>>> net = FCN8s(19, width=1 / 16, batch_norm=True)
>>> with tempfile.TemporaryDirectory() as tmp:
...     _ = save_model(net, f"{tmp}/tiny", arch="fcn8s", arch_kwargs={"width": 1 / 16, "batch_norm": True},
...                    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), num_classes=19)
...     sorted(available(weights_dir=tmp))
...     load("tiny", weights_dir=tmp).predict(torch.rand(1, 3, 20, 30)).shape
['tiny']
torch.Size([1, 20, 30])
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from ..models import PixelModel
from ..rundir import json_safe, write_bytes, write_text
from .deeplabv3 import DeepLabV3
from .fcn8s import FCN8s
from .segformer import SegFormer

__all__ = ["ARCHITECTURES", "WEIGHTS_DIR", "available", "load", "save_model", "sha256_file"]

logger = logging.getLogger(__name__)

#: Where the shipped weights and their model cards live.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Architecture name (as written in a model card) -> constructor taking ``num_classes`` and keyword arguments.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"fcn8s": FCN8s, "deeplabv3": DeepLabV3, "segformer": SegFormer}

CARD_FORMAT = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _weights_dir(weights_dir: str | os.PathLike[str] | None) -> Path:
    return WEIGHTS_DIR if weights_dir is None else Path(weights_dir)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith((".json", ".safetensors")):
        raise ValueError(f"model name must be letters, digits, '_', '-' or '.', without a file extension, got {name!r}")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"model card {path} is not valid JSON: {err}") from err
    if not isinstance(card, dict):
        raise ValueError(f"model card {path} must hold a JSON object, got {type(card).__name__}")
    return card


def available(*, weights_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Models that can be loaded: name -> one-line description, from the model cards (``*.json``) found in
    ``weights_dir`` (default: the shipped weights). A card whose weights file is missing is left out (logged)."""
    root = _weights_dir(weights_dir)
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for card_path in sorted(root.glob("*.json")):
        try:
            card = _read_card(card_path)
        except ValueError as err:
            logger.warning("skipping %s: %s", card_path, err)
            continue
        weights = root / str(card.get("weights", card_path.stem + ".safetensors"))
        if not weights.is_file():
            logger.warning("skipping %s: weights file %s is missing", card_path, weights)
            continue
        out[card_path.stem] = str(card.get("description", "")).splitlines()[0] if card.get("description") else ""
    return out


def _require(card: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in card:
        raise ValueError(f"model card {path} lacks the field {key!r}; re-export the model with zoo.save_model")
    return card[key]


def load(
    name: str, *, device: str | torch.device = "cpu", weights_dir: str | os.PathLike[str] | None = None
) -> PixelModel:
    """Load a model by name as a ``PixelModel`` (images in [0, 1] -> logits at input size), in eval mode.

    Args:
        name: a key of ``available()``.
        device: where to put the model.
        weights_dir: directory holding ``<name>.json`` and its weights (default: the shipped weights; point it at a
            training run's export directory to load a model trained with ``segattack train``).

    Raises:
        ValueError: unknown name (the message lists the available ones), checksum mismatch, or a malformed card.
    """
    _check_name(name)
    root = _weights_dir(weights_dir)
    card_path = root / f"{name}.json"
    if not card_path.is_file():
        names = sorted(available(weights_dir=root))
        listing = ", ".join(names) if names else "none (no model cards in that directory)"
        raise ValueError(f"unknown model {name!r} in {root}; available models: {listing}")
    card = _read_card(card_path)
    arch = _require(card, "arch", card_path)
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"model card {card_path} names architecture {arch!r}; "
            f"known architectures: {', '.join(sorted(ARCHITECTURES))}"
        )
    arch_kwargs = dict(card.get("arch_kwargs", {}))
    num_classes = int(_require(card, "num_classes", card_path))
    mean = [float(v) for v in _require(card, "mean", card_path)]
    std = [float(v) for v in _require(card, "std", card_path)]
    expected = str(_require(card, "sha256", card_path)).lower()
    weights_path = root / str(card.get("weights", f"{name}.safetensors"))
    if not weights_path.is_file():
        raise ValueError(f"weights file {weights_path} named by {card_path} is missing")

    # Read once, check the digest of exactly these bytes, then parse them: what is verified is what is loaded.
    data = weights_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ValueError(
            f"checksum mismatch for {weights_path}: expected sha256 {expected} (from {card_path.name}), got {actual}; "
            "the file is corrupt or was replaced: restore it or re-export the model with zoo.save_model"
        )
    state = load_safetensors(data)

    accepted = inspect.signature(ARCHITECTURES[arch]).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(arch_kwargs) - set(accepted))
        if unknown:
            raise ValueError(
                f"model card {card_path} gives {arch} the unknown arch_kwargs {unknown}; {arch} takes "
                f"{sorted(k for k in accepted if k != 'num_classes')}: fix the card or re-export the model"
            )
    try:
        net = ARCHITECTURES[arch](num_classes, **arch_kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model card {card_path}: cannot build {arch}({arch_kwargs}): {err}") from None
    expected_shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing = sorted(set(expected_shapes) - set(state))
    unexpected = sorted(set(state) - set(expected_shapes))
    wrong = sorted(k for k in set(state) & set(expected_shapes) if tuple(state[k].shape) != expected_shapes[k])
    if missing or unexpected or wrong:
        raise ValueError(
            f"weights {weights_path} do not match architecture {arch}({arch_kwargs}) of card {card_path.name}: "
            f"missing keys {missing[:3]}, unexpected keys {unexpected[:3]}, wrong shapes {wrong[:3]}"
        )
    net.load_state_dict(state)
    net.eval()
    model = PixelModel(net, mean=mean, std=std, num_classes=num_classes)
    logger.info("loaded model %s (%s) from %s", name, arch, weights_path)
    return model.to(device)


def save_model(
    net: nn.Module,
    path_stem: str | os.PathLike[str],
    *,
    arch: str,
    arch_kwargs: Mapping[str, Any] | None = None,
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
    description: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<path_stem>.safetensors`` (the state dict) and ``<path_stem>.json`` (the model card with its SHA-256).

    Args:
        net: the network, an instance of ``ARCHITECTURES[arch]`` built with ``num_classes`` and ``arch_kwargs``.
        path_stem: directory and model name without extension, e.g. ``runs/a/fcn8s_w8``; ``load(name,
            weights_dir=...)`` finds it again.
        arch, arch_kwargs: architecture name (a key of ``ARCHITECTURES``) and its keyword arguments.
        mean, std: per-channel normalisation in [0, 1] units, applied by ``PixelModel``.
        num_classes: number of output classes.
        description: one line shown by ``available()``.
        extra: further card fields (training summary, validation IoU, ...); plain JSON values, tensors allowed.

    Returns the path of the JSON card. The weights file is written first and the card last, each atomically, so a
    card never points at a half-written file.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known architectures: {', '.join(sorted(ARCHITECTURES))}")
    stem = Path(path_stem)
    _check_name(stem.name)
    if len(mean) != len(std):
        raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
    if any(float(s) <= 0 for s in std):
        raise ValueError(f"std must be positive, got {tuple(std)}")
    reserved = {"format", "name", "arch", "arch_kwargs", "num_classes", "mean", "std", "weights", "sha256"}
    clash = reserved & set(extra or {})
    if clash:
        raise ValueError(f"extra must not override the card fields {sorted(clash)}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights_path = stem.with_name(stem.name + ".safetensors")
    card_path = stem.with_name(stem.name + ".json")

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    data = save_safetensors(state, metadata={"format": "pt", "arch": arch})
    write_bytes(weights_path, data)

    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "name": stem.name,
        "description": description,
        "arch": arch,
        "arch_kwargs": json_safe(dict(arch_kwargs or {})),
        "num_classes": int(num_classes),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "weights": weights_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    card.update(json_safe(dict(extra or {})))
    write_text(card_path, json.dumps(card, indent=2, allow_nan=False) + "\n")
    logger.info("saved model %s (%s, sha256 %s)", card_path, arch, card["sha256"][:12])
    return card_path
