"""Real third-party model classes, built from configs with random weights (no downloads), attacked end to end through
PixelModel; and the PadToMultiple adapter for networks that need input sizes divisible by 32."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import segattack as sa
from segattack.adapters import PadToMultiple

from .conftest import random_images

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet, in [0, 1] units


def _state(net: nn.Module) -> tuple[dict[str, Tensor], dict[str, bool], dict[str, bool]]:
    return (
        {k: v.detach().clone() for k, v in net.state_dict().items()},
        {n: m.training for n, m in net.named_modules()},
        {n: p.requires_grad for n, p in net.named_parameters()},
    )


def _same_state(a: tuple[dict[str, Tensor], dict[str, bool], dict[str, bool]], b: object) -> bool:
    assert isinstance(b, tuple)
    return a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:] == b[1:]


def attack_one_step(model: sa.PixelModel, net: nn.Module, x: Tensor, classes: int) -> None:
    """One illm step (steps=1) end to end: shape, budget, range, a real change, and the network left as it was."""
    before = _state(net)
    logits = model(x)
    assert tuple(logits.shape) == (x.shape[0], classes, *x.shape[-2:])
    assert torch.equal(logits, model(x))  # eval mode inside: dropout / drop-path off, deterministic
    pred = model.predict(x)
    target = (pred + 1) % classes  # every pixel asks for another class: the gradient is non-zero everywhere
    adv = sa.illm(model, x, target, eps=4 / 255, steps=1)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    d = (adv - x).abs() * 255
    assert float(d.max()) <= 1 + 1e-4  # one step of 1 level, within eps = 4 levels
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float((d > 0.5).float().mean()) > 0.5  # the step moved most values
    assert _same_state(before, _state(net))


# ---- Hugging Face transformers: SegFormer -------------------------------------------------------------------------


def tiny_segformer() -> nn.Module:
    transformers = pytest.importorskip("transformers", reason="transformers not installed (pip install segattack[hf])")
    config = transformers.SegformerConfig(
        num_channels=3,
        num_encoder_blocks=4,
        depths=[1, 1, 1, 1],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 16, 24, 32],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        num_attention_heads=[1, 1, 1, 1],
        mlp_ratios=[2, 2, 2, 2],
        decoder_hidden_size=16,
        num_labels=19,
        classifier_dropout_prob=0.5,
        drop_path_rate=0.5,
    )
    torch.manual_seed(0)
    net: nn.Module = transformers.SegformerForSemanticSegmentation(config)
    net.train()  # as a user may hand it over in the middle of fine-tuning
    return net


def test_segformer_end_to_end() -> None:
    net = tiny_segformer()
    model = sa.PixelModel(net, mean=MEAN, std=STD, num_classes=19)
    x = random_images(2, 64, 96, dtype=torch.float32)
    raw = net.eval()(sa.PixelModel(nn.Identity(), mean=MEAN, std=STD)(x)).logits  # what the network itself returns
    net.train()
    assert tuple(raw.shape) == (2, 19, 16, 24)  # logits at 1/4 size ...
    expected = F.interpolate(raw, size=(64, 96), mode="bilinear", align_corners=False)
    assert torch.allclose(model(x), expected, atol=1e-5)  # ... upsampled by PixelModel
    attack_one_step(model, net, x, classes=19)
    assert net.training  # given back in train mode


# ---- torchvision style: a mapping with 'out' (and 'aux') ----------------------------------------------------------


class TorchvisionStyle(nn.Module):
    """Mimics torchvision.models.segmentation: returns {'out': logits, 'aux': logits}, both at 1/2 size."""

    def __init__(self, classes: int = 19) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.classifier = nn.Conv2d(8, classes, 1)
        self.aux_classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(8, classes, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f = self.backbone(x)
        return {"out": self.classifier(f), "aux": self.aux_classifier(f)}


def test_torchvision_style_dict_output() -> None:
    torch.manual_seed(0)
    net = TorchvisionStyle()
    model = sa.PixelModel(net, mean=MEAN, std=STD, num_classes=19)
    x = random_images(2, 20, 28, dtype=torch.float32)
    with torch.no_grad():
        raw = net.eval()(sa.PixelModel(nn.Identity(), mean=MEAN, std=STD)(x))["out"]
    net.train()
    assert torch.allclose(model(x), F.interpolate(raw, size=(20, 28), mode="bilinear", align_corners=False))
    attack_one_step(model, net, x, classes=19)


# ---- segmentation_models_pytorch (needs torchvision, not installed by segattack) -----------------------------------


def test_smp_unet_with_padding() -> None:
    smp = pytest.importorskip(
        "segmentation_models_pytorch",
        reason="segmentation_models_pytorch is not installed (it requires torchvision, about 5.5 GB with its deps)",
    )
    torch.manual_seed(0)
    unet = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=19)
    x = random_images(1, 40, 72, dtype=torch.float32)  # not multiples of 32
    model = sa.PixelModel(PadToMultiple(unet, 32), mean=MEAN, std=STD, num_classes=19)
    attack_one_step(model, unet, x, classes=19)


# ---- PadToMultiple ------------------------------------------------------------------------------------------------


class NeedsMultiple(nn.Module):
    """A per-pixel network that refuses sizes not divisible by ``multiple``; optional pooling to a lower resolution."""

    def __init__(self, multiple: int = 8, pool: int = 1) -> None:
        super().__init__()
        self.multiple, self.pool = multiple, pool
        self.conv = nn.Conv2d(3, 5, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise RuntimeError(f"size {tuple(x.shape[-2:])} is not divisible by {self.multiple}")
        y = self.conv(x)
        return F.avg_pool2d(y, self.pool) if self.pool > 1 else y


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_pad_crops_back_exactly(mode: str) -> None:
    torch.manual_seed(0)
    net = NeedsMultiple(8)
    x = torch.rand(2, 3, 13, 21)
    with pytest.raises(RuntimeError, match="not divisible"):
        net(x)
    out = PadToMultiple(net, 8, mode=mode)(x)  # type: ignore[arg-type]
    assert tuple(out.shape) == (2, 5, 13, 21)
    with torch.no_grad():
        assert torch.allclose(out, net.conv(x), atol=1e-6)  # per-pixel net: crop is aligned, padding invisible


def test_pad_reflects_the_border() -> None:
    seen: list[Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            seen.append(x)
            return x

    x = torch.arange(1 * 1 * 3 * 5, dtype=torch.float32).view(1, 1, 3, 5)
    PadToMultiple(Spy(), 4)(x)
    padded = seen[-1]
    assert tuple(padded.shape) == (1, 1, 4, 8)
    assert torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[..., 3, :5], x[..., 1, :])  # reflection without repeating the edge row
    assert torch.equal(padded[..., :3, 5:], x[..., [3, 2, 1]])
    PadToMultiple(Spy(), 8)(x)  # pad 5 >= side 3: reflection impossible, replicated instead
    assert torch.equal(seen[-1][..., 7, :5], x[..., 2, :]) and torch.equal(seen[-1][..., 0, 7], x[..., 0, 4])


def test_pad_low_resolution_logits_and_gradients() -> None:
    torch.manual_seed(0)
    net = NeedsMultiple(8, pool=4)
    model = sa.PixelModel(PadToMultiple(net, 8), num_classes=5)
    x = random_images(1, 13, 21, dtype=torch.float32).requires_grad_(True)
    logits = model(x)
    assert tuple(logits.shape) == (1, 5, 13, 21)
    logits.square().sum().backward()
    assert x.grad is not None and bool((x.grad != 0).all())  # every original pixel gets a gradient
    divisible = random_images(1, 16, 24, dtype=torch.float32)
    with torch.no_grad():
        direct = sa.PixelModel(net)(divisible)
    assert torch.equal(sa.PixelModel(PadToMultiple(net, 8))(divisible), direct)  # no padding needed: same as bare


def test_pad_dict_and_hf_outputs_pass_through() -> None:
    class Wrapped(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind, self.inner = kind, NeedsMultiple(4)

        def forward(self, x: Tensor) -> object:
            y = self.inner(x)
            return {"out": y} if self.kind == "dict" else type("Out", (), {"logits": y})()

    x = torch.rand(1, 3, 6, 7)
    for kind in ("dict", "hf"):
        assert tuple(PadToMultiple(Wrapped(kind), 4)(x).shape) == (1, 5, 6, 7)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PadToMultiple(nn.Identity(), 0), "multiple must be a positive integer"),
        (lambda: PadToMultiple(nn.Identity(), True), "multiple must be a positive integer"),  # type: ignore[arg-type]
        (lambda: PadToMultiple(nn.Identity(), 8, mode="wrap"), "mode must be"),  # type: ignore[arg-type]
        (lambda: PadToMultiple(lambda x: x, 8), "must be a torch.nn.Module"),  # type: ignore[arg-type]
        (lambda: PadToMultiple(nn.Identity(), 8)(torch.rand(3, 5, 5)), r"\(B, C, H, W\)"),
        (lambda: PadToMultiple(nn.Flatten(), 8)(torch.rand(1, 3, 5, 5)), "logits"),
    ],
)
def test_pad_errors(make: Callable[[], object], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make()
