"""The DeepLabv3+-style and SegFormer-style networks of the zoo: shapes, strides, checks, training and the zoo round
trip, on small random-weight instances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import segattack as sa
from segattack.train import TrainConfig, train
from segattack.zoo import ARCHITECTURES, DeepLabV3, SegFormer, load, save_model
from tests.test_train import EasyScenes


def small(arch: str) -> nn.Module:
    if arch == "deeplabv3":
        return DeepLabV3(19, width=0.25)
    return SegFormer(19, dims=(8, 16, 24, 32), heads=(1, 1, 2, 2), decoder_dim=16)


ARCHS = ["deeplabv3", "segformer"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(37, 61), (64, 128), (1, 1), (5, 300)])
def test_logits_exactly_at_input_size(arch: str, size: tuple[int, int]) -> None:
    net = small(arch).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 19, *size)
    assert torch.isfinite(out).all()


def test_default_sizes_are_a_cpu_budget() -> None:
    """The defaults are the shipped-model scale: about 2 M parameters each (FCN8s at 1/8 width has 2.1 M)."""
    for net in (DeepLabV3(19), SegFormer(19)):
        n = sum(p.numel() for p in net.parameters())
        assert 1.0e6 < n < 3.0e6, (type(net).__name__, n)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_output_stride(output_stride: int) -> None:
    """The backbone's last features lie at the output stride: atrous convolution replaces the later strides."""
    net = DeepLabV3(19, width=0.25, output_stride=output_stride).eval()
    seen: dict[str, tuple[int, ...]] = {}
    net.stage4.register_forward_hook(lambda m, i, o: seen.__setitem__("s4", tuple(o.shape)))
    net.stage1.register_forward_hook(lambda m, i, o: seen.__setitem__("s1", tuple(o.shape)))
    with torch.no_grad():
        net(torch.rand(1, 3, 128, 256))
    assert seen["s1"][-2:] == (32, 64)  # stride 4: the decoder's low-level features
    assert seen["s4"][-2:] == (128 // output_stride, 256 // output_stride)
    dilations = {m.dilation[0] for m in net.stage4.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}
    assert dilations == ({2} if output_stride == 16 else {4})


def test_deeplab_without_decoder_is_plain_deeplabv3() -> None:
    net = DeepLabV3(19, width=0.25, decoder=False).eval()
    assert not hasattr(net, "refine")
    assert net(torch.rand(1, 3, 40, 72)).shape == (1, 19, 40, 72)


def test_segformer_stages_and_reduction() -> None:
    """Four stages at strides 4, 8, 16, 32; keys and values reduced by the sr ratios."""
    net = SegFormer(19, dims=(8, 16, 24, 32), heads=(1, 1, 2, 2), decoder_dim=16).eval()
    shapes: list[tuple[int, ...]] = []
    for norm in net.norms:
        norm.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        net(torch.rand(1, 3, 128, 256))
    assert [s[1] for s in shapes] == [32 * 64, 16 * 32, 8 * 16, 4 * 8]  # tokens per stage
    srs = [blocks[0].attn.sr_ratio for blocks in net.stages]
    assert srs == [8, 4, 2, 1]


def test_segformer_width_scales_channels_to_multiples_of_heads() -> None:
    net = SegFormer(19, width=0.5)
    assert net.dims == (16, 32, 64, 96)
    assert all(d % h == 0 for d, h in zip(net.dims, (1, 2, 4, 6), strict=True))


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_the_input(arch: str) -> None:
    """What an attack needs: a finite, non-zero gradient to every input pixel region, in eval mode."""
    torch.manual_seed(0)  # not whatever state the tests before left: some draws leave ReLU-dead regions
    net = small(arch).eval()
    for p in net.parameters():  # past the zero/near-zero classifier init, as a trained network would be
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 3, 48, 96, requires_grad=True)
    net(x).logsumexp(1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().sum(1) > 0).float().mean() > 0.9


def test_invalid_arguments_fire() -> None:
    with pytest.raises(ValueError, match="output_stride"):
        DeepLabV3(19, output_stride=32)
    with pytest.raises(ValueError, match="aspp_rates"):
        DeepLabV3(19, aspp_rates=(1, 2))
    with pytest.raises(ValueError, match="width"):
        DeepLabV3(19, width=0)
    with pytest.raises(ValueError, match="divisible"):
        SegFormer(19, dims=(8, 16, 24, 30), heads=(1, 1, 2, 4))
    with pytest.raises(ValueError, match="four positive"):
        SegFormer(19, depths=(1, 2, 2))
    with pytest.raises(ValueError, match="expects"):
        small("segformer")(torch.rand(3, 8, 8))


@pytest.mark.parametrize("arch", ARCHS)
def test_zoo_round_trip(arch: str, tmp_path: Path) -> None:
    net = small(arch).eval()
    kwargs = {"width": 0.25} if arch == "deeplabv3" else {"dims": [8, 16, 24, 32], "heads": [1, 1, 2, 2],
                                                           "decoder_dim": 16}  # fmt: skip
    assert ARCHITECTURES[arch] is type(net)
    save_model(net, tmp_path / f"tiny-{arch}", arch=arch, arch_kwargs=kwargs, mean=(0.5,) * 3, std=(0.25,) * 3,
               num_classes=19)  # fmt: skip
    model = load(f"tiny-{arch}", weights_dir=tmp_path)
    x = torch.rand(1, 3, 40, 80)
    with torch.no_grad():
        expected = net((x - 0.5) / 0.25)
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_train_arch_learns_and_exports(arch: str, tmp_path: Path) -> None:
    """``train(arch=...)`` trains that network (loss falls on easy scenes), and the card names the architecture;
    the attack then runs on the loaded model."""
    config = TrainConfig(
        out_dir=str(tmp_path), arch=arch, width=0.25, size=(32, 64), crop=(32, 64),
        batch_size=4, steps=40, optimizer="adamw", lr=1e-2, train_images=16, val_images=4, log_every=5, val_every=0,
        checkpoint_every=10, device="cpu", seed=0, export_name="net",
    )  # fmt: skip
    torch.manual_seed(0)
    result = train(config, train_data=EasyScenes(16), val_data=EasyScenes(4, seed=1))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "train"]  # fmt: skip
    assert losses[-1] < 0.6 * losses[0], losses
    assert result.export_path is not None
    card = json.loads(result.export_path.read_text())
    assert card["arch"] == arch and card["arch_kwargs"] == {"width": 0.25, "dropout": 0.1}
    assert card["description"].startswith("DeepLabv3+" if arch == "deeplabv3" else "SegFormer")
    model = load("net", weights_dir=tmp_path)
    images = EasyScenes(1)[0][0][None].float() / 255
    adv = sa.attacks.get("illm")(model, images, model.predict(images), eps=2 / 255, targeted=True, steps=2,
                                 step_size=1 / 255)  # fmt: skip
    assert (adv - images).abs().max() <= 2 / 255 + 1e-6


def test_arch_specific_options_are_checked() -> None:
    assert TrainConfig(out_dir="x").width == 0.125 and TrainConfig(out_dir="x").dropout == 0.5
    assert TrainConfig(out_dir="x", arch="deeplabv3").width == 1.0
    with pytest.raises(ValueError, match="arch must be one of"):
        TrainConfig(out_dir="x", arch="unet")
    with pytest.raises(ValueError, match="fcn8s only"):
        TrainConfig(out_dir="x", arch="segformer", batch_norm=False)
    with pytest.raises(ValueError, match="fcn8s only"):
        TrainConfig(out_dir="x", arch="deeplabv3", fc6_kernel=3)


def test_runs_from_before_arch_resume_as_fcn8s(tmp_path: Path) -> None:
    """A training run stored before ``arch`` existed has no such field: it is an FCN8s run and resumes as one."""
    from segattack.train import config_differences

    config = TrainConfig(out_dir=str(tmp_path))
    stored = {k: v for k, v in config.as_json().items() if k != "arch"}
    (tmp_path / "config.json").write_text(json.dumps({"config": stored}))
    assert config_differences(config) == []
    assert config_differences(TrainConfig(out_dir=str(tmp_path), arch="deeplabv3"))  # but not as another network
