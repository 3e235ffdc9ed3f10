"""FCN-8s on a VGG16 backbone (Long, Shelhamer and Darrell 2015, "Fully Convolutional Networks for Semantic
Segmentation"), the network Fischer et al. (2017) attack.

Layout, as in the reference ``voc-fcn8s`` net:

- VGG16 conv blocks with 64-128-256-512-512 channels (2-2-3-3-3 3x3 convolutions + ReLU, each block ending in a 2x2
  max pool), times a width multiplier for the small variants;
- fc6 (7x7, 4096 channels) and fc7 (1x1, 4096 channels) as convolutions with ReLU and dropout;
- 1x1 score layers on fc7 (stride 32), pool4 (stride 16) and pool3 (stride 8), zero-initialised;
- 2x transposed-convolution upsampling of the fc7 scores, fused (summed) with the pool4 scores; 2x upsampling of that,
  fused with the pool3 scores; 8x upsampling back to the input. As the paper describes, the two 2x upsamplings are
  initialised to bilinear interpolation and learned; the final 8x is fixed bilinear interpolation, held as a
  non-persistent buffer (so it is neither a parameter nor part of the shipped state dict).
- ``output_stride=4`` continues the scheme one step (FCN-4s, not in the paper): a zero-initialised 1x1 score layer on
  pool2 (stride 4), fused after a third learned 2x upsampling, then a fixed 4x. Zero scores and bilinear kernels
  make a freshly added stage pass the stride-8 scores through (up to the interpolation of 2x-then-4x instead of 8x),
  so an FCN-8s's weights start it where Long et al. start each finer stage: from the coarser net (``segattack train
  --init``).
- ``refine=C`` (stride 4 only; not in the paper) adds a small refinement block after the pool2 fusion, in the
  spirit of DeepLabv3+'s decoder: the stride-4 scores concatenated with the pool2 features, a 3x3 convolution to C
  channels (+ BatchNorm) + ReLU, and a zero-initialised 3x3 convolution back to the classes, added to the scores.
  The linear 1x1 skips of FCN can only add a per-pixel correction from the fine features; this block sees the
  coarse class scores and the edges together, where the boundaries of persons are decided. Zero-initialised, it
  starts as the identity, so a trained FCN-4s grows into it (``segattack train --init``) without losing anything.
- ``output_stride=2`` goes one step further (FCN-2s): a zero-initialised 1x1 score layer on pool1 (stride 2) fused
  after a fourth learned 2x upsampling, then a fixed 2x; ``refine2=C`` adds a refinement block there like the one
  above, on the stride-2 scores and the pool1 features. Persons a few dozen pixels tall are decided at their
  boundaries, and at stride 4 a boundary is interpolated over 4 pixels; at stride 2 over 2. Both start as the
  stage before them (zero scores, bilinear upsampling, zero last convolution), so an FCN-4s grows into them.

Differences from the Caffe reference, and why:

- Sizes: the reference pads conv1_1 by 100 pixels and crops with hand-computed offsets, so that fc6 (7x7, no
  padding) works on any input. Here every 3x3 conv has padding 1, fc6 has padding 3 (same size), pooling uses
  ``ceil_mode=True`` and each upsampled map is cropped at its top-left corner to the size of the map it is fused
  with (and finally to the input). A stride-s upsampling of a map of size ceil(n/2s) has size >= ceil(n/s), so the
  crop always fits and keeps pixel centres aligned: logits come back at exactly the input size, for any input size
  (odd ones included), with output stride 8 before the final upsampling.
- ``batch_norm=True`` adds BatchNorm after every convolution of the backbone and of fc6/fc7 (not in the paper; it
  lets the small variants train from scratch quickly).

At ``width=1.0`` with the 7x7 fc6 the network has about 134 M parameters, as the paper's FCN8s-VGG16. fc6 keeps its
7x7 kernel at every width (``fc6_kernel=3`` is available for a lighter head; it changes the receptive field).

>>> import torch
>>> net = FCN8s(19, width=1 / 16, batch_norm=True).eval()
>>> net(torch.rand(1, 3, 37, 61)).shape
torch.Size([1, 19, 37, 61])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ._checks import check_common, he_init

__all__ = ["FCN8s", "bilinear_kernel"]

#: VGG16 conv configuration: channels per block, convolutions per block.
_VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_FC_CHANNELS = 4096


def bilinear_kernel(size: int) -> Tensor:
    """(size, size) bilinear interpolation kernel, as used by Long et al. to initialise upsampling layers.

    With ``stride = size // 2`` and ``padding = stride // 2`` a transposed convolution with this kernel is bilinear
    upsampling by ``stride`` (pixel centres aligned, like ``F.interpolate(..., align_corners=False)`` inside).

    >>> bilinear_kernel(4)[0]
    tensor([0.0625, 0.1875, 0.1875, 0.0625])
    """
    if size < 1:
        raise InputError(f"kernel size must be positive, got {size}")
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - center).abs() / factor
    return (filt[:, None] * filt[None, :]).float()


def _channels(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _crop(x: Tensor, like: Tensor | tuple[int, int]) -> Tensor:
    """Crop (B, C, h, w) at the top-left corner to the spatial size of ``like``."""
    h, w = like.shape[-2:] if isinstance(like, Tensor) else like
    if x.shape[-2] < h or x.shape[-1] < w:  # cannot happen with ceil-mode pooling; kept as an internal check
        raise RuntimeError(f"upsampled map {tuple(x.shape[-2:])} is smaller than its skip map {(h, w)}")
    return x[..., :h, :w]


class _FixedUpsample(nn.Module):
    """Fixed (non-learned) bilinear upsampling by ``factor`` as a grouped transposed convolution, one per channel."""

    weight: Tensor

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.channels = channels
        self.factor = factor
        kernel = bilinear_kernel(2 * factor)[None, None].repeat(channels, 1, 1, 1)
        self.register_buffer("weight", kernel, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(dtype=x.dtype)
        return F.conv_transpose2d(x, w, stride=self.factor, padding=self.factor // 2, groups=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, factor={self.factor}"


class FCN8s(nn.Module):
    """FCN-8s with a VGG16 backbone: normalised images (B, 3, H, W) -> logits (B, num_classes, H, W).

    Args:
        num_classes: number of output classes (19 for the Cityscapes train ids).
        width: channel multiplier for every layer (1.0 is the paper's network, 134 M parameters; 1/8 with
            BatchNorm is about 2.1 M). Channels are rounded to the nearest integer, at least 1.
        batch_norm: add BatchNorm after each convolution of the backbone and of fc6/fc7.
        dropout: dropout probability after fc6 and fc7 (0.5 in the paper).
        fc6_kernel: kernel size of fc6, 7 (the paper's, default) or any odd size; padding keeps the size.
        in_channels: input channels (3 for RGB).
        output_stride: 8 (FCN-8s, the paper's), 4 (adds the pool2 skip: FCN-4s) or 2 (and the pool1 skip: FCN-2s).
        refine: channels of the stride-4 refinement block (0: none); needs ``output_stride`` 4 or 2.
        refine2: channels of the stride-2 refinement block (0: none); needs ``output_stride=2``.

    Input is expected normalised (wrap in ``segattack.PixelModel`` with mean/std to feed [0, 1] images). Any
    H, W >= 1 is accepted; the logits are returned exactly at (H, W).
    """

    def __init__(
        self,
        num_classes: int = 19,
        *,
        width: float = 1.0,
        batch_norm: bool = False,
        dropout: float = 0.5,
        fc6_kernel: int = 7,
        in_channels: int = 3,
        output_stride: int = 8,
        refine: int = 0,
        refine2: int = 0,
    ) -> None:
        super().__init__()
        check_common(num_classes, width, dropout, example="1.0 or 0.125")
        if output_stride not in (2, 4, 8) or isinstance(output_stride, bool):
            raise InputError(
                f"output_stride must be 8 (FCN-8s), 4 (FCN-4s, the pool2 skip) or 2 (FCN-2s, and the pool1 skip), "
                f"got {output_stride!r}"
            )
        self.output_stride = output_stride
        for name, value in (("refine", refine), ("refine2", refine2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{name} must be a number of channels >= 0 (0: no refinement block), got {value!r}")
        if refine and output_stride == 8:
            raise InputError("refine (the stride-4 refinement block) needs output_stride 4 or 2, got output_stride 8")
        if refine2 and output_stride != 2:
            raise InputError(f"refine2 (the stride-2 refinement block) needs output_stride 2, got {output_stride}")
        self.refine_channels = refine
        self.refine2_channels = refine2
        if fc6_kernel < 1 or fc6_kernel % 2 == 0:
            raise InputError(f"fc6_kernel must be a positive odd size (7 as in the paper, or 3), got {fc6_kernel}")
        self.num_classes = num_classes
        self.width = float(width)
        self.batch_norm = batch_norm

        c_in = in_channels
        blocks: list[nn.Sequential] = []
        for channels, n_convs in _VGG16_BLOCKS:
            c_out = _channels(channels, width)
            layers: list[nn.Module] = []
            for _ in range(n_convs):
                layers += self._conv(c_in, c_out, 3, 1, batch_norm)
                c_in = c_out
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            blocks.append(nn.Sequential(*layers))
        self.block1, self.block2, self.block3, self.block4, self.block5 = blocks
        c_pool1 = _channels(64, width)
        c_pool2 = _channels(128, width)
        c_pool3 = _channels(256, width)
        c_pool4 = _channels(512, width)
        c_fc = _channels(_FC_CHANNELS, width)
        self.fc6 = nn.Sequential(*self._conv(c_in, c_fc, fc6_kernel, fc6_kernel // 2, batch_norm), nn.Dropout(dropout))
        self.fc7 = nn.Sequential(*self._conv(c_fc, c_fc, 1, 0, batch_norm), nn.Dropout(dropout))

        self.score_fr = nn.Conv2d(c_fc, num_classes, 1)
        self.score_pool4 = nn.Conv2d(c_pool4, num_classes, 1)
        self.score_pool3 = nn.Conv2d(c_pool3, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.score_pool2: nn.Conv2d | None = None
        self.upscore_pool3: nn.ConvTranspose2d | None = None
        if output_stride <= 4:
            self.score_pool2 = nn.Conv2d(c_pool2, num_classes, 1)
            self.upscore_pool3 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.refine = self._refinement(num_classes, c_pool2, refine, batch_norm)
        self.score_pool1: nn.Conv2d | None = None
        self.upscore_pool2: nn.ConvTranspose2d | None = None
        if output_stride == 2:
            self.score_pool1 = nn.Conv2d(c_pool1, num_classes, 1)
            self.upscore_pool2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.refine2 = self._refinement(num_classes, c_pool1, refine2, batch_norm)
        self.upscore8 = _FixedUpsample(num_classes, output_stride)  # the final fixed upsampling (8x, 4x or 2x)
        self.reset_parameters()

    @staticmethod
    def _conv(c_in: int, c_out: int, kernel: int, padding: int, batch_norm: bool) -> list[nn.Module]:
        conv = nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=not batch_norm)
        if batch_norm:
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        return [conv, nn.ReLU(inplace=True)]

    @classmethod
    def _refinement(cls, num_classes: int, c_features: int, channels: int, batch_norm: bool) -> nn.Sequential | None:
        """A refinement block: scores + features -> 3x3 conv to ``channels`` (+ BN) + ReLU -> 3x3 conv to scores."""
        if not channels:
            return None
        first = cls._conv(num_classes + c_features, channels, 3, 1, batch_norm)
        return nn.Sequential(*first, nn.Conv2d(channels, num_classes, 3, padding=1))

    def reset_parameters(self) -> None:
        """Initialise for training from scratch: He-normal convolutions, zero score layers (as Long et al.),
        bilinear upsampling kernels, BatchNorm at identity."""
        he_init(self)
        for score in (self.score_fr, self.score_pool4, self.score_pool3, self.score_pool2, self.score_pool1):
            if score is None:
                continue
            nn.init.zeros_(score.weight)
            assert score.bias is not None
            nn.init.zeros_(score.bias)
        with torch.no_grad():
            for up in (self.upscore2, self.upscore_pool4, self.upscore_pool3, self.upscore_pool2):
                if up is None:
                    continue
                up.weight.zero_()
                kernel = bilinear_kernel(up.kernel_size[0])
                for c in range(self.num_classes):
                    up.weight[c, c] = kernel
        for block in (self.refine, self.refine2):  # its last convolution at zero: the block starts as the identity
            if block is None:
                continue
            last = block[-1]
            assert isinstance(last, nn.Conv2d) and last.bias is not None
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise InputError(f"FCN8s expects (B, C, H, W) input, got shape {tuple(x.shape)}")
        size = (x.shape[-2], x.shape[-1])
        pool1 = self.block1(x)  # stride 2
        pool2 = self.block2(pool1)  # stride 4
        pool3 = self.block3(pool2)  # stride 8
        pool4 = self.block4(pool3)  # stride 16
        fc7 = self.fc7(self.fc6(self.block5(pool4)))  # stride 32
        score = self.upscore2(self.score_fr(fc7))
        score = _crop(score, pool4) + self.score_pool4(pool4)
        score = self.upscore_pool4(score)
        score = _crop(score, pool3) + self.score_pool3(pool3)  # stride 8
        if self.score_pool2 is not None and self.upscore_pool3 is not None:  # stride 4
            score = self._finer(score, pool2, self.upscore_pool3, self.score_pool2, self.refine)
        if self.score_pool1 is not None and self.upscore_pool2 is not None:  # stride 2
            score = self._finer(score, pool1, self.upscore_pool2, self.score_pool1, self.refine2)
        return _crop(self.upscore8(score), size)

    @staticmethod
    def _finer(score: Tensor, features: Tensor, up: nn.Module, skip: nn.Module, refine: nn.Module | None) -> Tensor:
        """One finer stage: the scores upsampled 2x, plus the skip's scores of ``features``, then refined."""
        score = _crop(up(score), features) + skip(features)
        if refine is not None:
            score = score + refine(torch.cat([score, features], dim=1))
        return score

    def extra_repr(self) -> str:
        stride = f", output_stride={self.output_stride}" if self.output_stride != 8 else ""
        refine = f", refine={self.refine_channels}" if self.refine_channels else ""
        refine += f", refine2={self.refine2_channels}" if self.refine2_channels else ""
        return f"num_classes={self.num_classes}, width={self.width}, batch_norm={self.batch_norm}{stride}{refine}"
