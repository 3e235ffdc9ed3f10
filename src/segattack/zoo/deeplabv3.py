"""A DeepLabv3-style network (Chen et al. 2017, "Rethinking Atrous Convolution for Semantic Image Segmentation"),
small enough to train and attack on a CPU, written here (no torchvision, no timm).

Layout:

- a residual backbone (He et al. 2016 basic blocks: two 3x3 convolutions + BatchNorm + ReLU with an identity or 1x1
  projection shortcut): a stride-2 stem of two 3x3 convolutions to stride 4, then four stages whose strides take the
  features to stride 8 and 16. From ``output_stride`` on, stages stop striding and dilate instead (atrous
  convolution), as in DeepLabv3: with ``output_stride=16`` the last stage runs at stride 16 with dilation 2; with
  ``output_stride=8`` the last two run at stride 8 with dilations 2 and 4;
- an ASPP head (atrous spatial pyramid pooling): a 1x1 branch, three 3x3 branches with the ``aspp_rates``
  dilations and an image-pooling branch, concatenated, projected by a 1x1 convolution and dropout;
- with ``decoder=True`` (the default) the DeepLabv3+ decoder (Chen et al. 2018): the ASPP output upsampled to
  stride 4, concatenated with the projected stride-4 backbone features and refined by two depthwise-separable 3x3
  convolutions; without it the ASPP output is scored directly (plain DeepLabv3);
- 1x1 classifier, bilinear upsampling to the input size.

The default ASPP rates (3, 6, 9) are the paper's (6, 12, 18) scaled to this tool's 256x512 images, whose stride-16
map (16x32) is about half the side of the paper's 513x513 crops' (33x33).

>>> import torch
>>> net = DeepLabV3(19, width=0.5).eval()
>>> net(torch.rand(1, 3, 37, 61)).shape
torch.Size([1, 19, 37, 61])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ._checks import check_common, he_init

__all__ = ["DeepLabV3"]

#: (channels, residual blocks, stride) per backbone stage, before the width multiplier.
_STAGES: tuple[tuple[int, int, int], ...] = ((32, 1, 1), (64, 2, 2), (128, 2, 2), (160, 2, 1))
_STEM = (16, 32)
_ASPP_CHANNELS = 64
_LOW_LEVEL_CHANNELS = 24
_DECODER_CHANNELS = 64


def _c(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _BasicBlock(nn.Module):
    """Residual basic block: 3x3 (stride, dilation) -> BN -> ReLU -> 3x3 (dilation) -> BN, plus the shortcut."""

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class _SeparableConv(nn.Sequential):
    """Depthwise 3x3 + BN + ReLU, then pointwise 1x1 + BN + ReLU (the DeepLabv3+ decoder's convolution)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
            nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class _ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pooling branch, projected by 1x1."""

    def __init__(self, c_in: int, c_out: int, rates: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(c_in, c_out, 1)])
        self.branches.extend(_conv_bn_relu(c_in, c_out, 3, dilation=int(r)) for r in rates)
        # No BatchNorm on the pooled branch: a 1x1 map would make its batch statistics degenerate at batch size 1.
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            nn.Conv2d(c_out * (len(rates) + 2), c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        parts = [branch(x) for branch in self.branches]
        parts.append(self.pool(x).expand(-1, -1, x.shape[-2], x.shape[-1]))
        return self.project(torch.cat(parts, dim=1))


class DeepLabV3(nn.Module):
    """DeepLabv3(+)-style network: normalised images (B, 3, H, W) -> logits (B, num_classes, H, W).

    Args:
        num_classes: number of output classes (19 for the Cityscapes train ids).
        width: channel multiplier for every layer (1.0: about 1.9 M parameters).
        output_stride: 8 or 16, the stride of the backbone's last features (atrous convolution beyond it).
        aspp_rates: dilations of the three 3x3 ASPP branches (at the output stride).
        decoder: add the DeepLabv3+ stride-4 decoder (default); False is plain DeepLabv3 (scores at the output
            stride, upsampled bilinearly).
        dropout: dropout after the ASPP projection and before the classifier.
        in_channels: input channels (3 for RGB).

    Input is expected normalised (wrap in ``segattack.PixelModel`` with mean/std to feed [0, 1] images). Any
    H, W >= 1 is accepted; the logits are returned exactly at (H, W).
    """

    def __init__(
        self,
        num_classes: int = 19,
        *,
        width: float = 1.0,
        output_stride: int = 16,
        aspp_rates: Sequence[int] = (3, 6, 9),
        decoder: bool = True,
        dropout: float = 0.1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_common(num_classes, width, dropout)
        if output_stride not in (8, 16):
            raise InputError(f"output_stride must be 8 or 16, got {output_stride!r}")
        rates = tuple(int(r) for r in aspp_rates)
        if len(rates) != 3 or any(r < 1 for r in rates):
            raise InputError(f"aspp_rates must be three dilations >= 1, such as (3, 6, 9), got {aspp_rates!r}")
        self.num_classes = num_classes
        self.width = float(width)
        self.output_stride = output_stride
        self.decoder = decoder

        s1, s2 = (_c(c, width) for c in _STEM)
        self.stem = nn.Sequential(_conv_bn_relu(in_channels, s1, 3, stride=2), _conv_bn_relu(s1, s2, 3, stride=2))
        stride, dilation, c_in = 4, 1, s2
        stages: list[nn.Sequential] = []
        for i, (channels, n_blocks, stage_stride) in enumerate(_STAGES):
            c_out = _c(channels, width)
            if stage_stride > 1 and stride * stage_stride > output_stride:
                stage_stride, dilation = 1, dilation * stage_stride  # atrous instead of striding
            stride *= stage_stride
            if i == len(_STAGES) - 1:
                dilation *= 2  # as DeepLabv3's block4: the last stage is atrous at the output stride
            blocks = [_BasicBlock(c_in, c_out, stride=stage_stride, dilation=dilation)]
            blocks += [_BasicBlock(c_out, c_out, dilation=dilation) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        aspp_c = _c(_ASPP_CHANNELS, width)
        self.aspp = _ASPP(c_in, aspp_c, rates, dropout)
        if decoder:
            low_c = _c(_LOW_LEVEL_CHANNELS, width)
            dec_c = _c(_DECODER_CHANNELS, width)
            self.low_level = _conv_bn_relu(_c(_STAGES[0][0], width), low_c, 1)
            self.refine = nn.Sequential(_SeparableConv(aspp_c + low_c, dec_c), _SeparableConv(dec_c, dec_c))
            head_c = dec_c
        else:
            head_c = aspp_c
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(head_c, num_classes, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convolutions, BatchNorm at identity, the last BN of each residual branch at zero (so each
        block starts as its shortcut, Goyal et al. 2017), zero classifier."""
        he_init(self)
        for m in self.modules():
            if isinstance(m, _BasicBlock):
                nn.init.zeros_(m.bn2.weight)
        last = self.classifier[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise InputError(f"DeepLabV3 expects (B, C, H, W) input, got shape {tuple(x.shape)}")
        size = (x.shape[-2], x.shape[-1])
        low = self.stage1(self.stem(x))  # stride 4
        feats = self.aspp(self.stage4(self.stage3(self.stage2(low))))
        if self.decoder:
            up = F.interpolate(feats, size=low.shape[-2:], mode="bilinear", align_corners=False)
            feats = self.refine(torch.cat([up, self.low_level(low)], dim=1))
        return F.interpolate(self.classifier(feats), size=size, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, width={self.width}, output_stride={self.output_stride}, "
            f"decoder={self.decoder}"
        )
