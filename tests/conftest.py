"""Tiny models with known behaviour, shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import Tensor, nn

import segattack as sa


class ColourNet(nn.Module):
    """Nearest-colour classifier: logit_k = -scale * ||x - colour_k||^2 per pixel, after a 3x3 box blur.

    Class 0 grey, 1 green, 2 red ("person"). Its decision boundaries are known, so an attack with a larger budget
    provably moves more pixels across them.
    """

    COLOURS = ((0.5, 0.5, 0.5), (0.2, 0.6, 0.2), (0.8, 0.15, 0.15))

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.register_buffer("colours", torch.tensor(self.COLOURS).view(1, 3, 3, 1, 1))
        self.scale = scale
        self.blur = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        with torch.no_grad():
            self.blur.weight.fill_(1 / 9)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blur(x)
        return -self.scale * (x[:, None] - self.colours.to(x.dtype)).pow(2).sum(2)


def colour_scene(n: int = 2, size: tuple[int, int] = (24, 32), seed: int = 0) -> tuple[Tensor, int]:
    """8-bit images: grey/green halves with a 'person' blob whose colour ranges between grey and red."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    imgs = torch.empty(n, 3, h, w)
    grey = torch.tensor(ColourNet.COLOURS[0]).view(3, 1, 1)
    green = torch.tensor(ColourNet.COLOURS[1]).view(3, 1, 1)
    red = torch.tensor(ColourNet.COLOURS[2]).view(3, 1, 1)
    for i in range(n):
        imgs[i] = grey
        imgs[i, :, :, w // 2 :] = green
        t = 0.52 + 0.2 * torch.rand(1, h // 2, w // 3, generator=g)  # red share 0.52 (at the boundary) .. 0.72
        top, left = h // 4, w // 3
        imgs[i, :, top : top + h // 2, left : left + w // 3] = (1 - t) * grey + t * red
        imgs[i] += 0.02 * torch.randn(3, h, w, generator=g)
    return (imgs.clamp(0, 1) * 255).round() / 255, 2


class TinyConvNet(nn.Module):
    """A random small conv net with BatchNorm and a stride-2 stage (logits at half size)."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, classes, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


@pytest.fixture
def colour_model() -> sa.PixelModel:
    return sa.PixelModel(ColourNet(), num_classes=3)


@pytest.fixture
def tiny_model() -> sa.PixelModel:
    """Random conv net in float64 (deterministic on CPU, so batch/single and sweep/separate compare exactly)."""
    torch.manual_seed(0)
    net = TinyConvNet().double()
    with torch.no_grad():  # non-trivial BN statistics
        net.body[1].running_mean.uniform_(-0.2, 0.2)
        net.body[1].running_var.uniform_(0.5, 2.0)
    return sa.PixelModel(net, mean=(0.4, 0.45, 0.5), std=(0.25, 0.25, 0.25))


def random_images(b: int, h: int, w: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    """8-bit representable random images in [0, 1] (some pixels saturated at 0 and 255)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-20, 276, (b, 3, h, w), generator=g).clamp(0, 255)
    return (x.to(dtype) / 255).contiguous()


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny models (``pytestmark = pytest.mark.usefixtures("one_thread")``),
    restored afterwards. With torch's default (one per core) on a shared 2-core machine, a busy neighbour makes the
    threads wait for each other: the attack family's tests ran 50x slower (150 s instead of 3 s), a 20-step
    colour-model fit took 2.7 s with two threads and 0.04 s with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Passes:
    """Forward and backward passes through ``model.net``, counted by module hooks; ``images``: the images its forward
    passes saw; ``grad``: whether any forward pass built a graph (a black-box attack's never do)."""

    def __init__(self) -> None:
        self.forward = 0
        self.backward = 0
        self.images = 0
        self.grad = False

    def on_forward(self, module: object, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self.forward += 1
        self.images += int(inputs[0].shape[0])
        self.grad = self.grad or torch.is_grad_enabled() or output.requires_grad

    def on_backward(self, *_: object) -> None:
        self.backward += 1


@contextmanager
def count_passes(model: sa.PixelModel) -> Iterator[Passes]:
    """Count ``model.net``'s passes while the block runs (``Passes``)."""
    passes = Passes()
    handles = [
        model.net.register_forward_hook(passes.on_forward),
        model.net.register_full_backward_hook(passes.on_backward),
    ]
    try:
        yield passes
    finally:
        for h in handles:
            h.remove()
