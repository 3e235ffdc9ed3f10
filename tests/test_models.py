from __future__ import annotations

import pytest
import torch
from torch import nn

import segattack as sa

from .conftest import TinyConvNet


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x), "aux": self.conv(x)}


class LogitsOut(nn.Module):
    class Output:
        def __init__(self, logits: torch.Tensor) -> None:
            self.logits = logits

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 4, stride=4)  # logits at 1/4 size, like SegFormer

    def forward(self, x: torch.Tensor) -> Output:
        return self.Output(self.conv(x))


class Lambda(nn.Module):
    def __init__(self, fn) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def test_output_conventions_and_upsampling() -> None:
    x = torch.rand(2, 3, 16, 24)
    for net in (DictOut(), LogitsOut(), TinyConvNet(classes=4)):
        logits = sa.PixelModel(net, num_classes=4)(x)
        assert logits.shape == (2, 4, 16, 24)


def test_upsampling_is_differentiable() -> None:
    x = torch.rand(1, 3, 16, 24, requires_grad=True)
    sa.PixelModel(LogitsOut())(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_normalisation_inside() -> None:
    net = Lambda(lambda z: torch.cat([z, -z], 1))
    x = torch.full((1, 3, 2, 2), 0.75)
    out = sa.PixelModel(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(x)
    assert torch.allclose(out[:, :3], torch.ones(1, 3, 2, 2))


def test_module_state_untouched() -> None:
    net = TinyConvNet()
    net.train()
    net.body[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [p.requires_grad for p in net.parameters()]
    model = sa.PixelModel(net)
    logits = model(torch.rand(3, 3, 8, 8))
    assert not logits.requires_grad  # parameter gradients are off and the input needs none
    assert net.training and all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()] == flags
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm ran in eval mode: running stats unchanged


def test_eval_mode_used_during_forward() -> None:
    net = TinyConvNet().train()
    x = torch.rand(4, 3, 8, 8)
    expected = torch.nn.functional.interpolate(net.eval()(x), size=(8, 8), mode="bilinear", align_corners=False)
    net.train()
    assert torch.allclose(sa.PixelModel(net)(x), expected)


def test_predict_batches() -> None:
    model = sa.PixelModel(TinyConvNet())
    x = torch.rand(5, 3, 8, 8)
    assert torch.equal(model.predict(x, batch_size=2), model.predict(x))
    assert model.predict(x).dtype == torch.int64 and model.predict(x).shape == (5, 8, 8)


@pytest.mark.parametrize(
    ("net", "x", "message"),
    [
        (TinyConvNet(), torch.rand(3, 8, 8), r"\(B, C, H, W\)"),
        (TinyConvNet(), torch.randint(0, 255, (1, 3, 8, 8)), "floating point"),
        (TinyConvNet(), torch.rand(1, 3, 8, 8) * 255, r"\[0, 1\]"),
        (TinyConvNet(), torch.rand(1, 3, 8, 8) - 0.5, r"\[0, 1\]"),
        (TinyConvNet(), torch.rand(1, 4, 8, 8), "channels"),
        (
            Lambda(lambda z: torch.softmax(z[:, :3].repeat(1, 2, 1, 1), 1)),
            torch.rand(1, 3, 8, 8),
            "probabilities",
        ),
        (Lambda(lambda z: z * float("nan")), torch.rand(1, 3, 8, 8), "NaN"),
        (Lambda(lambda z: z.mean((2, 3))), torch.rand(1, 3, 8, 8), r"\(B, K, h, w\)"),
        (Lambda(lambda z: z[:1]), torch.rand(2, 3, 8, 8), "batch of 1 for 2"),
        (Lambda(lambda z: (z,)), torch.rand(1, 3, 8, 8), "expected a logits tensor"),
        (Lambda(lambda z: {"x": z}), torch.rand(1, 3, 8, 8), "'out'"),
        (Lambda(lambda z: (z * 10).long()), torch.rand(1, 3, 8, 8), "floating point logits"),
    ],
)
def test_validation_errors(net: nn.Module, x: torch.Tensor, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        sa.PixelModel(net)(x)


def test_constructor_validation() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        sa.PixelModel(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same length"):
        sa.PixelModel(TinyConvNet(), mean=(0.5,), std=(0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match="positive"):
        sa.PixelModel(TinyConvNet(), std=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="num_classes=3"):
        sa.PixelModel(TinyConvNet(classes=5), num_classes=3)(torch.rand(1, 3, 8, 8))
