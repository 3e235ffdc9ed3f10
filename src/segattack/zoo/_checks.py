"""What the zoo architectures share: their argument checks (one message for one mistake) and the He
initialisation of convolutional networks."""

from __future__ import annotations

import math

from torch import nn

from ..errors import InputError


def check_common(num_classes: object, width: object, dropout: object, *, example: str = "1.0 or 0.5") -> None:
    """``num_classes`` a positive integer, ``width`` a positive finite channel multiplier, ``dropout`` in [0, 1);
    ValueError naming the argument otherwise."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not (isinstance(width, int | float) and not isinstance(width, bool) and math.isfinite(width) and width > 0):
        raise InputError(f"width must be a positive channel multiplier such as {example}, got {width!r}")
    if not (isinstance(dropout, int | float) and 0.0 <= dropout < 1.0):
        raise InputError(f"dropout must be a probability in [0, 1), got {dropout}")


def he_init(net: nn.Module) -> None:
    """He-normal (fan out, ReLU) weights and zero biases for every convolution, BatchNorm at identity."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
