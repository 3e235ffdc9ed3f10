"""A SegFormer-style network (Xie et al. 2021, "SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers"), small enough to train and attack on a CPU, written here (no timm, no transformers).

Layout, as the paper's MiT encoder and All-MLP decoder:

- four stages at strides 4, 8, 16 and 32, each an overlapping patch embedding (a strided convolution: 7x7 stride 4
  for the first stage, 3x3 stride 2 for the others, then LayerNorm) followed by transformer blocks and a LayerNorm;
- each block: pre-norm efficient self-attention, whose keys and values come from the tokens spatially reduced by a
  strided ``sr_ratio`` x ``sr_ratio`` convolution (+ LayerNorm), then a pre-norm Mix-FFN (linear, 3x3 depthwise
  convolution, GELU, linear), both residual, with stochastic depth; there are no positional encodings (the depthwise
  convolution carries position, so any input size works);
- the All-MLP decoder: each stage's features linearly projected to ``decoder_dim`` channels, upsampled to stride 4,
  concatenated, fused by a 1x1 convolution + BatchNorm + ReLU, dropout, a 1x1 classifier, and bilinear upsampling to
  the input size.

The defaults (channels 32-64-128-192, depths 1-2-2-2, heads 1-2-4-6, reduction ratios 8-4-2-1, decoder 64 channels)
are a MiT-B0 (32-64-160-256, depths 2-2-2-2, decoder 256) cut to fit the CPU budget of this tool.

>>> import torch
>>> net = SegFormer(19, dims=(8, 16, 24, 32), heads=(1, 1, 2, 2), decoder_dim=16).eval()
>>> net(torch.rand(1, 3, 37, 61)).shape
torch.Size([1, 19, 37, 61])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ._checks import check_common

__all__ = ["SegFormer"]


class _OverlapPatchEmbed(nn.Module):
    """Strided convolution with overlapping windows, then LayerNorm over channels: (B, C, H, W) -> tokens."""

    def __init__(self, c_in: int, c_out: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_in, c_out, patch, stride=stride, padding=patch // 2)
        self.norm = nn.LayerNorm(c_out)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), int(h), int(w)


class _EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a sequence reduced by ``sr_ratio`` per side."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        if dim % heads:
            raise InputError(f"channels ({dim}) must be divisible by the number of heads ({heads})")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        q = self.q(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(b, c, h, w)
            if h < self.sr_ratio or w < self.sr_ratio:  # tiny inputs: reduce to one token instead of none
                grid = F.pad(grid, (0, max(0, self.sr_ratio - w), 0, max(0, self.sr_ratio - h)))
            kv_in = self.norm(self.sr(grid).flatten(2).transpose(1, 2))
        else:
            kv_in = x
        k, v = self.kv(kv_in).view(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _MixFFN(nn.Module):
    """Linear -> 3x3 depthwise convolution -> GELU -> linear: the position-aware feed-forward of SegFormer."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dw(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, sr_ratio: int, mlp_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _EfficientSelfAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _MixFFN(dim, dim * mlp_ratio)
        self.drop_path = drop_path

    def _drop(self, x: Tensor) -> Tensor:
        """Stochastic depth (Huang et al. 2016): drop the residual branch per sample while training."""
        if not self.training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        mask = x.new_empty(x.shape[0], 1, 1).bernoulli_(keep)
        return x * mask / keep

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self._drop(self.attn(self.norm1(x), h, w))
        return x + self._drop(self.ffn(self.norm2(x), h, w))


class SegFormer(nn.Module):
    """SegFormer-style hierarchical transformer: normalised images (B, 3, H, W) -> logits (B, num_classes, H, W).

    Args:
        num_classes: number of output classes (19 for the Cityscapes train ids).
        dims: channels of the four stages.
        depths: transformer blocks per stage.
        heads: attention heads per stage (each must divide its stage's channels).
        sr_ratios: spatial reduction of keys and values per stage (8, 4, 2, 1 as in the paper).
        mlp_ratio: hidden expansion of the Mix-FFN.
        decoder_dim: channels of the All-MLP decoder.
        width: channel multiplier of ``dims`` and ``decoder_dim`` (each stage rounded to a multiple of its heads).
        drop_path: stochastic depth rate of the last block, rising linearly from 0 over the blocks.
        dropout: dropout before the classifier.
        in_channels: input channels (3 for RGB).

    Input is expected normalised (wrap in ``segattack.PixelModel`` with mean/std to feed [0, 1] images). Any
    H, W >= 1 is accepted; the logits are returned exactly at (H, W).
    """

    def __init__(
        self,
        num_classes: int = 19,
        *,
        dims: Sequence[int] = (32, 64, 128, 192),
        depths: Sequence[int] = (1, 2, 2, 2),
        heads: Sequence[int] = (1, 2, 4, 6),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: int = 4,
        decoder_dim: int = 64,
        width: float = 1.0,
        drop_path: float = 0.1,
        dropout: float = 0.1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_common(num_classes, width, dropout)
        lists = {"dims": dims, "depths": depths, "heads": heads, "sr_ratios": sr_ratios}
        for name, value in lists.items():
            if len(value) != 4 or any(not isinstance(v, int) or v < 1 for v in value):
                raise InputError(f"{name} must be four positive integers (one per stage), got {value!r}")
        for d, h in zip(dims, heads, strict=True):
            if d % h:
                raise InputError(
                    f"each stage's channels must be divisible by its heads, got dims {dims}, heads {heads}"
                )
        dims = [max(h, int(round(d * width / h)) * h) for d, h in zip(dims, heads, strict=True)]
        decoder_dim = max(1, int(round(decoder_dim * width)))
        if mlp_ratio < 1 or decoder_dim < 1:
            raise InputError(f"mlp_ratio and decoder_dim must be >= 1, got {mlp_ratio} and {decoder_dim}")
        if not 0.0 <= drop_path < 1.0:
            raise InputError(f"drop_path must be a probability in [0, 1), got {drop_path}")
        self.num_classes = num_classes
        self.dims = tuple(int(d) for d in dims)
        total = sum(depths)
        rates = [drop_path * i / max(1, total - 1) for i in range(total)]
        self.embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in, k = in_channels, 0
        for i, (dim, depth, head, sr) in enumerate(zip(dims, depths, heads, sr_ratios, strict=True)):
            self.embeds.append(_OverlapPatchEmbed(c_in, dim, 7 if i == 0 else 3, 4 if i == 0 else 2))
            self.stages.append(nn.ModuleList(_Block(dim, head, sr, mlp_ratio, rates[k + j]) for j in range(depth)))
            self.norms.append(nn.LayerNorm(dim))
            c_in, k = dim, k + depth
        self.linear = nn.ModuleList(nn.Linear(d, decoder_dim) for d in dims)
        self.fuse = nn.Sequential(
            nn.Conv2d(4 * decoder_dim, decoder_dim, 1, bias=False), nn.BatchNorm2d(decoder_dim), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(decoder_dim, num_classes, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal linear layers (std 0.02), He-normal convolutions (fan out), LayerNorm and BatchNorm at
        identity, as the paper's code initialises MiT."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm | nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise InputError(f"SegFormer expects (B, C, H, W) input, got shape {tuple(x.shape)}")
        size = (x.shape[-2], x.shape[-1])
        b = x.shape[0]
        feats: list[Tensor] = []
        for embed, blocks, norm in zip(self.embeds, self.stages, self.norms, strict=True):
            t, h, w = embed(x)
            assert isinstance(blocks, nn.ModuleList)
            for block in blocks:
                t = block(t, h, w)
            x = norm(t).transpose(1, 2).reshape(b, -1, h, w)
            feats.append(x)
        top = feats[0].shape[-2:]
        ups = [
            F.interpolate(lin(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, *f.shape[-2:]),
                          size=top, mode="bilinear", align_corners=False)
            for lin, f in zip(self.linear, feats, strict=True)
        ]  # fmt: skip
        logits = self.classifier(self.fuse(torch.cat(ups[::-1], dim=1)))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, dims={self.dims}"
