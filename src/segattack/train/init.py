"""Starting a run from a trained model (``TrainConfig.init``, ``--init zoo:NAME``): the model and its card, checked
against the configured network, and its weights loaded into the new network, all of them or a smaller FCN stage's
into a larger one (FCN-8s -> FCN-4s -> FCN-2s, refinement blocks as the identity or widened)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..errors import ConfigError, ModelError, SegattackError
from ..models import PixelModel
from ..zoo import ModelCard, find_card, load_card
from .checkpoint import CHECKPOINT
from .config import TrainConfig, previous_resolved

__all__ = ["load_init", "check_init", "init_for_run", "load_init_weights"]

STAGE_OPTIONS = ("output_stride", "refine", "refine2")


def fcn_stages(kwargs: Mapping[str, Any]) -> dict[str, Any]:
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


def is_growth(got: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """Whether an init network ``got`` is a smaller stage of the FCN ``want`` (the same options but the stride and
    the refinement blocks): FCN-8s -> FCN-4s (-> + refinement) -> FCN-2s (-> + refinement), each stage of ``got``
    also in ``want``, a refinement block with at least its channels (a wider one grows into it), and ``want`` with
    more stages or channels."""
    if want["arch"] != "fcn8s" or got["arch"] != "fcn8s":
        return False
    have, grown = fcn_stages(got["arch_kwargs"]), fcn_stages(want["arch_kwargs"])
    if grown == have or any(k not in grown or grown[k] < v for k, v in have.items()):
        return False

    def rest(net: Mapping[str, Any]) -> dict[str, Any]:  # everything but the stage's own options
        kwargs = {k: v for k, v in net["arch_kwargs"].items() if k not in STAGE_OPTIONS}
        return {**net, "arch_kwargs": kwargs}

    return rest(got) == rest(want)


GROWN_MODULES = ("score_pool2", "upscore_pool3", "refine", "score_pool1", "upscore_pool2", "refine2")


def load_init_weights(net: nn.Module, state: Mapping[str, Tensor]) -> None:
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
                raise ModelError(f"init weights do not fit the network: {key} {tuple(old.shape)} does not fit "
                                   f"in {tuple(new.shape)}")  # fmt: skip
            grown = new.clone()
            if key == last:
                grown.zero_()  # the new channels' outputs enter the scores with weight 0
            grown[tuple(slice(0, n) for n in old.shape)] = old
            state[key] = grown
    missing, unexpected = net.load_state_dict(state, strict=False)
    allowed: set[str] = set()
    for name in GROWN_MODULES:
        module = getattr(net, name, None)
        if isinstance(module, nn.Module):
            allowed |= {f"{name}.{k}" for k in module.state_dict()}
    if unexpected or not set(missing) <= allowed:
        raise ModelError(f"init weights do not fit the network: missing {missing}, unexpected {unexpected}")


def load_init(config: TrainConfig) -> tuple[PixelModel, ModelCard]:
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
    if got != want and not is_growth(got, want):
        diffs = "; ".join(f"{k} {got[k]!r} (this run: {want[k]!r})" for k in want if got[k] != want[k])
        raise ConfigError(
            f"init {config.init} is a different network: {diffs}; train with the same --arch, --width, --dropout, "
            "--output-stride, --refine, --refine2 and network options as that model (a smaller stage of an FCN may "
            "start a larger one: FCN-8s -> FCN-4s -> FCN-4s with --refine -> FCN-2s -> FCN-2s with --refine2, and a "
            "refinement block may get more channels; not the reverse)"
        )
    return model, card


def check_init(config: TrainConfig) -> None:
    """Raise ``ConfigError`` (a ``ValueError``, naming the fix) if ``config.init`` cannot start this run; nothing to
    check without one."""
    if config.init is not None:
        load_init(config)


def init_for_run(config: TrainConfig, out: Path) -> tuple[PixelModel, ModelCard] | None:
    """The init model of ``config`` and its card (None without one); ``ConfigError`` if a run resumed in ``out``
    started from other weights than the card's now."""
    if config.init is None:
        return None
    model, card = load_init(config)
    previous = previous_resolved(out)
    if (out / CHECKPOINT).is_file() and previous.get("init_sha256") not in (None, card.sha256):
        raise ConfigError(
            f"init {config.init} has changed since this run started (weights sha256 {card.sha256[:12]}, the run "
            f"started from {str(previous['init_sha256'])[:12]}); restore that model or start a new --out"
        )
    return model, card
