"""Adapters for third-party segmentation networks whose inputs must meet size constraints.

``PixelModel`` already accepts the common output conventions (a tensor, torchvision's ``{'out': ...}``, Hugging
Face's ``.logits``) and upsamples small logits. What it cannot fix is an input constraint: U-Nets such as
segmentation_models_pytorch's ``Unet`` need height and width divisible by 32. ``PadToMultiple`` pads the input up to
the next multiple and crops the logits back, so any image size can be attacked; the padding is part of the
differentiable forward pass, so gradients reach every original pixel (including through the reflected border).

>>> import torch
>>> net = torch.nn.Conv2d(3, 4, kernel_size=2, stride=2)  # needs even sizes for an exact half-size output
>>> PadToMultiple(net, multiple=8)(torch.rand(1, 3, 13, 21)).shape
torch.Size([1, 4, 13, 21])
"""

from __future__ import annotations

import logging
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError, InputError, ModelError, ModelTypeError
from .models import extract_logits

__all__ = ["PadToMultiple"]

log = logging.getLogger(__name__)

PadMode = Literal["reflect", "replicate", "constant"]


class PadToMultiple(nn.Module):
    """Pad (B, C, H, W) inputs at the bottom and right up to multiples of ``multiple``, run ``net``, crop back.

    Args:
        net: the network; it may return a tensor, a mapping with ``'out'`` or an object with ``.logits``.
        multiple: the divisor the network needs (32 for most encoder-decoder U-Nets).
        mode: how the border is filled: ``"reflect"`` (default; mirror without repeating the edge pixel),
            ``"replicate"`` or ``"constant"`` (zeros, in the network's normalised units). Reflection needs the pad to
            be smaller than the image side; for images that small ``"replicate"`` is used instead (logged at debug).

    ``forward(x)``: (B, C, H, W) -> logits (B, K, H, W). Logits the network returns at the padded size are cropped to
    (H, W); logits at a lower resolution (e.g. 1/4 of the padded size) are first upsampled bilinearly to the padded
    size, then cropped, so that they stay aligned with the input pixels.

    Place it inside ``PixelModel`` (``PixelModel(PadToMultiple(net), mean=..., std=...)``): normalisation happens
    before padding, so reflected pixels are normalised like the image.
    """

    def __init__(self, net: nn.Module, multiple: int = 32, *, mode: PadMode = "reflect") -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise ModelTypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise ConfigError(f"multiple must be a positive integer (e.g. 32), got {multiple!r}")
        if mode not in ("reflect", "replicate", "constant"):
            raise ConfigError(f"mode must be 'reflect', 'replicate' or 'constant', got {mode!r}")
        self.net = net
        self.multiple = multiple
        self.mode: PadMode = mode

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise InputError(f"input must have shape (B, C, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            mode: str = self.mode
            if mode == "reflect" and (ph >= h or pw >= w):
                log.debug("image %dx%d too small to reflect-pad by (%d, %d); replicating the border", h, w, ph, pw)
                mode = "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        logits = extract_logits(self.net(x))
        if logits.ndim != 4:
            raise ModelError(f"network output must be logits (B, K, h, w), got shape {tuple(logits.shape)}")
        if not (ph or pw):
            return logits
        hp, wp = h + ph, w + pw
        if logits.shape[-2:] != (hp, wp):
            logits = F.interpolate(logits, size=(hp, wp), mode="bilinear", align_corners=False)
        return logits[..., :h, :w]

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}, mode={self.mode!r}"
