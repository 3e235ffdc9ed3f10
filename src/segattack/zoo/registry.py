"""Shipped models: a JSON model card next to a safetensors weights file, verified by SHA-256 before loading.

A model ``NAME`` is two files in the weights directory (``segattack/zoo/weights`` by default):

- ``NAME.json``: the model card: architecture name and keyword arguments, ``num_classes``, the normalisation
  ``mean``/``std`` (per channel, in [0, 1] units), the weights file name and its SHA-256 digest, a one-line
  description and whatever the producer adds (training summary, validation IoU, ...);
- ``NAME.safetensors``: the state dict of the architecture.

Weights are never unpickled: they are read with ``safetensors`` after their digest has been checked against the card.
Cards are read and checked by ``ModelCard`` (``segattack.zoo.card``) only.

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
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file as load_safetensors_file
from safetensors.torch import save as save_safetensors
from torch import Tensor, nn

from ..errors import ConfigError, ModelError
from ..models import PixelModel
from ..rundir import json_safe, write_bytes, write_text
from .architectures import ARCHITECTURES
from .card import CARD_FORMAT, CORE_FIELDS, ModelCard, check_model_name

__all__ = [
    "ARCHITECTURES", "RETIRED_MODELS", "WEIGHTS_DIR", "available", "find_card", "load", "load_card",
    "read_safetensors", "save_model", "sha256_file",
]  # fmt: skip

logger = logging.getLogger(__name__)

#: Where the shipped weights and their model cards live.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Models the package shipped once and no longer does (the stages of the default's training history, retired on
#: 2026-12-06 for a lean install): name -> the documentation page whose chain of training commands reproduces them
#: (their cards are beside it). ``zoo:NAME`` is refused with one line saying so, not as an unknown model.
RETIRED_MODELS: dict[str, str] = dict.fromkeys(
    ("fcn8s-synth-w8", "fcn8s-synth-w8-ft", "fcn4s-synth-w8", "fcn4s-synth-w8-r16-lv", "fcn2s-synth-w8-r16"),
    "docs/zoo-history/index.md",
)


def _weights_dir(weights_dir: str | os.PathLike[str] | None) -> Path:
    return WEIGHTS_DIR if weights_dir is None else Path(weights_dir)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_safetensors(path: str | os.PathLike[str], data: bytes | None = None) -> dict[str, Tensor]:
    """The tensors of the safetensors file ``path`` (parsed from ``data``, its bytes, where given: the bytes whose
    digest was checked); ``ModelError`` naming the file when it cannot be decoded (a corrupt header, a truncated
    file). Nothing is unpickled."""
    try:
        return load_safetensors(data) if data is not None else load_safetensors_file(os.fspath(path))
    except SafetensorError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot read weights file {os.fspath(path)!r}: {first}", spec=os.fspath(path)) from err


def available(*, weights_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Models that can be loaded: name -> one-line description, from the model cards (``*.json``) found in
    ``weights_dir`` (default: the shipped weights). A card that is not valid or whose weights file is missing is
    left out (logged)."""
    root = _weights_dir(weights_dir)
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*.json")):
        try:
            card = ModelCard.read(path)
        except ModelError as err:
            logger.warning("skipping %s: %s", path, err)
            continue
        if not card.weights_path.is_file():
            logger.warning("skipping %s: weights file %s is missing", path, card.weights_path)
            continue
        out[path.stem] = card.description.splitlines()[0] if card.description else ""
    return out


def find_card(target: str, *, weights_dir: str | os.PathLike[str] | None = None) -> ModelCard:
    """The checked model card of ``target``: ``PATH/NAME.json`` (an exported model) or a model name ``NAME`` in
    ``weights_dir`` (default: the shipped models). ``ConfigError`` for a name that is not there (the message lists
    the available ones), a retired one (``RETIRED_MODELS``: the message names the page that reproduces it) or a card
    file that does not exist; ``ModelError`` for a card that is not valid."""
    if target.endswith(".json"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ConfigError(f"model card {target!r} does not exist")
        return ModelCard.read(path)
    check_model_name(target)
    root = _weights_dir(weights_dir)
    path = root / f"{target}.json"
    if not path.is_file():
        names = sorted(available(weights_dir=root))
        listing = ", ".join(names) if names else "none (no model cards in that directory)"
        if weights_dir is None and target in RETIRED_MODELS:
            page = RETIRED_MODELS[target]
            raise ConfigError(
                f"model {target!r} was retired from the package on 2026-12-06 (its weights are no longer shipped): "
                f"reproduce it with the training commands in {page} of the segattack repository and load the "
                f"export as zoo:runs/<dir>/export/{target}.json, or use a shipped model: {listing}"
            )
        raise ConfigError(f"unknown model {target!r} in {root}; available models: {listing}")
    return ModelCard.read(path)


def load_card(card: ModelCard, *, device: str | torch.device = "cpu") -> PixelModel:
    """The model a checked card describes, as a ``PixelModel`` in eval mode (with the card's ``class_names``).

    The weights file is read once; the SHA-256 of exactly those bytes is checked against the card before they are
    parsed with safetensors, so what is verified is what is loaded. ``ModelError`` naming the file and the fix for
    a missing, replaced or corrupt weights file and for weights that do not fit the architecture.
    """
    weights_path = card.weights_path
    if not weights_path.is_file():
        raise ModelError(f"weights file {weights_path} named by {card.path} is missing", spec=str(card.path))
    try:
        data = weights_path.read_bytes()
    except OSError as err:
        raise ModelError(
            f"cannot read weights file {weights_path} named by {card.path}: {err.strerror or err}", spec=str(card.path)
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != card.sha256:
        raise ModelError(
            f"checksum mismatch for {weights_path}: expected sha256 {card.sha256} (from {card.path.name}), got "
            f"{actual}; the file is corrupt or was replaced: restore it or re-export the model with zoo.save_model",
            spec=str(card.path),
        )
    try:
        state = read_safetensors(weights_path, data)
    except ModelError as err:
        raise ModelError(
            f"{err} (the weights of model card {card.path}); restore the file or re-export the model with "
            "zoo.save_model",
            spec=str(card.path),
        ) from err
    net = card.build()
    expected_shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing = sorted(set(expected_shapes) - set(state))
    unexpected = sorted(set(state) - set(expected_shapes))
    wrong = sorted(k for k in set(state) & set(expected_shapes) if tuple(state[k].shape) != expected_shapes[k])
    if missing or unexpected or wrong:
        raise ModelError(
            f"weights {weights_path} do not match architecture {card.arch}({card.arch_kwargs}) of card "
            f"{card.path.name}: missing keys {missing[:3]}, unexpected keys {unexpected[:3]}, wrong shapes {wrong[:3]}",
            spec=str(card.path),
        )
    net.load_state_dict(state)
    net.eval()
    model = PixelModel(net, mean=card.mean, std=card.std, num_classes=card.num_classes, class_names=card.class_names)
    logger.info("loaded model %s (%s) from %s", card.name, card.arch, weights_path)
    return model.to(device)


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
        ConfigError: not a model name, or an unknown one (the message lists the available ones).
        ModelError: a malformed card, a checksum mismatch, corrupt weights or weights that do not fit (both
            are ``ValueError``s).
    """
    check_model_name(name)
    return load_card(find_card(name, weights_dir=weights_dir), device=device)


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
        extra: further card fields (training summary, validation IoU, ``class_names``, ...); plain JSON values,
            tensors allowed.

    Returns the path of the JSON card. The card is checked as ``ModelCard.read`` checks it before anything is
    written (``ConfigError`` naming the field otherwise); the weights file is written first and the card last, each
    atomically, so a card never points at a half-written file.
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; known architectures: {', '.join(sorted(ARCHITECTURES))}")
    stem = Path(path_stem)
    check_model_name(stem.name)
    if len(mean) != len(std):
        raise ConfigError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
    if any(float(s) <= 0 for s in std):
        raise ConfigError(f"std must be positive, got {tuple(std)}")
    clash = set(CORE_FIELDS) & set(extra or {})
    if clash:
        raise ConfigError(f"extra must not override the card fields {sorted(clash)}")
    weights_path = stem.with_name(stem.name + ".safetensors")
    card_path = stem.with_name(stem.name + ".json")

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    data = save_safetensors(state, metadata={"format": "pt", "arch": arch})
    fields: dict[str, Any] = {
        "format": CARD_FORMAT,
        "name": stem.name,
        "description": description,
        "arch": arch,
        "arch_kwargs": json_safe(dict(arch_kwargs or {})),
        "num_classes": json_safe(num_classes),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "weights": weights_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    fields.update(json_safe(dict(extra or {})))
    try:
        card = ModelCard.from_json(fields, card_path, fix="fix the arguments of save_model")
    except ModelError as err:
        raise ConfigError(str(err)) from None
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(weights_path, data)
    write_text(card_path, json.dumps(card.as_json(), indent=2, allow_nan=False) + "\n")
    logger.info("saved model %s (%s, sha256 %s)", card_path, arch, card.sha256[:12])
    return card_path
