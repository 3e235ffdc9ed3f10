from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import segattack as sa
from segattack.cli import main
from segattack.errors import ConfigError
from segattack.train import TrainConfig, check_init
from segattack.zoo import FCN8s, available, bilinear_kernel, load, save_model, sha256_file

#: FCN8s-VGG16 of Long et al. (21 classes), counted layer by layer from the voc-fcn8s net: VGG16 convs 14,714,688 +
#: fc6 102,764,544 + fc7 16,781,312 + score_fr 86,037 + score_pool4 10,773 + score_pool3 5,397 + two 2x deconvs
#: 2 * 7,056 + the 8x deconv 112,896 = 134,489,759 (the paper's "134M"). The 8x layer is a fixed buffer here.
REFERENCE_PARAMS_21 = 134_489_759 - 112_896


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_full_size_parameter_count_matches_long_et_al() -> None:
    with torch.device("meta"):  # no memory, no time: only the shapes matter
        net21 = FCN8s(21)
        net19 = FCN8s(19)
    assert n_params(net21) == REFERENCE_PARAMS_21  # exact layer-for-layer match with voc-fcn8s
    assert abs(n_params(net19) - 134e6) / 134e6 < 0.01  # within 1% of the paper's 134 M


def test_small_variant_parameter_count() -> None:
    net = FCN8s(19, width=1 / 8, batch_norm=True)
    assert 2.0e6 < n_params(net) < 2.2e6  # DESIGN.md: about 2.1 M at 1/8 width with BatchNorm


@pytest.mark.parametrize("size", [(37, 61), (100, 150), (32, 64), (1, 1), (33, 97)])
def test_logits_exactly_at_input_size(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = FCN8s(19, width=1 / 16, batch_norm=True).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 19, *size)
    assert torch.isfinite(out).all()


def test_output_stride_is_8() -> None:
    net = FCN8s(5, width=1 / 16).eval()
    seen: list[tuple[int, ...]] = []
    net.upscore8.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    with torch.no_grad():
        net(torch.randn(1, 3, 37, 61))
    assert net.output_stride == 8
    assert seen == [(math.ceil(37 / 8), math.ceil(61 / 8))]


def test_output_stride_4_adds_the_pool2_skip() -> None:
    net = FCN8s(5, width=1 / 16, output_stride=4).eval()
    seen: list[tuple[int, ...]] = []
    net.upscore8.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    with torch.no_grad():
        out = net(torch.randn(1, 3, 37, 61))
    assert out.shape == (1, 5, 37, 61) and net.output_stride == 4
    assert seen == [(math.ceil(37 / 4), math.ceil(61 / 4))]
    assert {"score_pool2.weight", "score_pool2.bias", "upscore_pool3.weight"} <= set(net.state_dict())
    assert "score_pool2.weight" not in FCN8s(5, width=1 / 16).state_dict()
    with pytest.raises(ValueError, match=r"output_stride must be 8 .*, 4 .* or 2"):
        FCN8s(5, width=1 / 16, output_stride=16)


def test_fresh_stride_4_stage_passes_the_stride_8_scores_through() -> None:
    # Long et al.'s staged scheme: the FCN-8s's weights in an FCN-4s give (nearly) the FCN-8s's logits, because the
    # new score layer starts at zero and the new 2x upsampling at bilinear; only 2x-then-4x vs 8x interpolation differs.
    torch.manual_seed(0)
    s8 = FCN8s(5, width=1 / 16, batch_norm=True).eval()
    for score in (s8.score_fr, s8.score_pool4, s8.score_pool3):
        torch.nn.init.normal_(score.weight)
    s4 = FCN8s(5, width=1 / 16, batch_norm=True, output_stride=4).eval()
    missing, unexpected = s4.load_state_dict(s8.state_dict(), strict=False)
    assert sorted(missing) == ["score_pool2.bias", "score_pool2.weight", "upscore_pool3.weight"] and not unexpected
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 128)
        a, b = s8(x), s4(x)
    assert (a - b).abs().max() < 0.25 * a.abs().max()
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.9
    with torch.no_grad():  # and the new stage is live: a non-zero pool2 score changes the output
        s4.score_pool2.weight.normal_()  # type: ignore[union-attr]
        assert not torch.allclose(s4(x), b)


def test_refinement_block_starts_as_the_identity_and_learns() -> None:
    torch.manual_seed(0)
    s4 = FCN8s(5, width=1 / 16, batch_norm=True, output_stride=4).eval()
    for score in (s4.score_fr, s4.score_pool4, s4.score_pool3, s4.score_pool2):
        torch.nn.init.normal_(score.weight)  # type: ignore[union-attr]
    r = FCN8s(5, width=1 / 16, batch_norm=True, output_stride=4, refine=6).eval()
    missing, unexpected = r.load_state_dict(s4.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("refine.") for k in missing)
    assert r.refine is not None and r.refine[0].in_channels == 5 + 8  # the stride-4 scores + pool2's 128/16 channels
    x = torch.rand(2, 3, 37, 61)
    with torch.no_grad():
        assert torch.equal(r(x), s4(x))  # a zero last convolution: exactly the FCN-4s
    r.train()
    r(x).square().mean().backward()
    assert r.refine[-1].weight.grad is not None and r.refine[-1].weight.grad.abs().sum() > 0
    assert "refine=6" in repr(r)
    with pytest.raises(ValueError, match="refine .* needs output_stride 4 or 2"):
        FCN8s(5, width=1 / 16, refine=6)
    with pytest.raises(ValueError, match="refine must be a number of channels"):
        FCN8s(5, width=1 / 16, output_stride=4, refine=-1)


def test_output_stride_2_grows_from_the_refined_fcn4s_and_its_block_starts_as_the_identity() -> None:
    torch.manual_seed(0)
    s4 = FCN8s(5, width=1 / 16, batch_norm=True, output_stride=4, refine=6).eval()
    for score in (s4.score_fr, s4.score_pool4, s4.score_pool3, s4.score_pool2):
        torch.nn.init.normal_(score.weight)  # type: ignore[union-attr]
    assert s4.refine is not None
    torch.nn.init.normal_(s4.refine[-1].weight, std=0.1)  # a trained block: not the identity any more
    s2 = FCN8s(5, width=1 / 16, batch_norm=True, output_stride=2, refine=6).eval()
    r2 = FCN8s(5, width=1 / 16, batch_norm=True, output_stride=2, refine=6, refine2=3).eval()
    for net in (s2, r2):
        missing, unexpected = net.load_state_dict(s4.state_dict(), strict=False)
        new = {k.split(".")[0] for k in missing}
        assert not unexpected and new == ({"score_pool1", "upscore_pool2"} | ({"refine2"} if net is r2 else set()))
    assert r2.refine2 is not None and r2.refine2[0].in_channels == 5 + 4  # the stride-2 scores + pool1's 64/16
    seen: list[tuple[int, ...]] = []
    s2.upscore8.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    x = torch.rand(2, 3, 37, 61)
    with torch.no_grad():
        a, b, c = s4(x), s2(x), r2(x)
    assert b.shape == (2, 5, 37, 61) and seen == [(math.ceil(37 / 2), math.ceil(61 / 2))]
    # The new pool1 stage passes the stride-4 scores through (up to 2x-then-2x vs 4x interpolation) ...
    assert (a - b).abs().max() < 0.25 * a.abs().max() and (a.argmax(1) == b.argmax(1)).float().mean() > 0.9
    assert torch.equal(b, c)  # ... and a fresh stride-2 block is exactly the identity on it
    r2.train()
    r2(x).square().mean().backward()
    assert r2.refine2[-1].weight.grad is not None and r2.refine2[-1].weight.grad.abs().sum() > 0
    assert "output_stride=2, refine=6, refine2=3" in repr(r2)
    assert FCN8s(5, width=1 / 16, output_stride=2).refine is None  # FCN-2s without either block
    with pytest.raises(ValueError, match="refine2 .* needs output_stride 2, got 4"):
        FCN8s(5, width=1 / 16, output_stride=4, refine2=3)
    with pytest.raises(ValueError, match="refine2 must be a number of channels"):
        FCN8s(5, width=1 / 16, output_stride=2, refine2=-3)


def test_fixed_upsampling_is_bilinear() -> None:
    # Inside the image the 8x transposed convolution equals F.interpolate(bilinear, align_corners=False).
    net = FCN8s(3, width=1 / 16)
    x = torch.randn(1, 3, 6, 7)
    up = net.upscore8(x)
    ref = torch.nn.functional.interpolate(x, scale_factor=8, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape
    assert torch.allclose(up[..., 8:-8, 8:-8], ref[..., 8:-8, 8:-8], atol=1e-5)
    assert bilinear_kernel(16).sum().item() == pytest.approx(64.0)
    assert "upscore8.weight" not in net.state_dict()  # fixed, not shipped


def test_score_layers_start_at_zero_and_gradients_flow() -> None:
    torch.manual_seed(0)
    net = FCN8s(4, width=1 / 16, batch_norm=True)
    out = net(torch.randn(2, 3, 24, 40))
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised score layers, as Long et al.
    out.sum().backward()
    assert net.score_fr.weight.grad is not None and net.score_fr.weight.grad.abs().sum() > 0


def test_invalid_arguments_fire() -> None:
    with pytest.raises(ValueError, match="width"):
        FCN8s(19, width=0)
    with pytest.raises(ValueError, match="num_classes"):
        FCN8s(0)
    with pytest.raises(ValueError, match="fc6_kernel"):
        FCN8s(19, fc6_kernel=4)
    with pytest.raises(ValueError, match="B, C, H, W"):
        FCN8s(19, width=1 / 16)(torch.rand(3, 8, 8))


def _save_tiny(tmp_path: Path, name: str = "tiny") -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    net = FCN8s(19, width=1 / 16, batch_norm=True)
    with torch.no_grad():  # non-trivial weights everywhere, BN statistics included
        for p in net.parameters():
            p.normal_(0, 0.1)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)  # type: ignore[operator]
                m.running_var.uniform_(0.5, 1.5)  # type: ignore[operator]
    card = save_model(
        net, tmp_path / name, arch="fcn8s", arch_kwargs={"width": 1 / 16, "batch_norm": True},
        mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3), num_classes=19, description="tiny test model\nsecond line",
        extra={"val": {"miou": 0.5, "iou": torch.tensor([0.5, float("nan")])}},
    )  # fmt: skip
    return net.eval(), card


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    net, card_path = _save_tiny(tmp_path)
    card = json.loads(card_path.read_text())
    assert card["sha256"] == sha256_file(tmp_path / "tiny.safetensors")
    assert card["val"]["iou"] == [0.5, None]  # NaN written as null
    assert available(weights_dir=tmp_path) == {"tiny": "tiny test model"}

    model = load("tiny", weights_dir=tmp_path)
    assert isinstance(model, sa.PixelModel)
    assert not model.net.training
    for key, value in net.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value), key
    images = torch.rand(2, 3, 37, 61)
    mean = torch.tensor([0.3, 0.4, 0.5]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net((images - mean) / std)
    assert torch.allclose(model(images), expected, atol=1e-5)


def test_checksum_mismatch_fires(tmp_path: Path) -> None:
    _save_tiny(tmp_path)
    weights = tmp_path / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    expected = json.loads((tmp_path / "tiny.json").read_text())["sha256"]
    with pytest.raises(ValueError, match="checksum mismatch") as info:
        load("tiny", weights_dir=tmp_path)
    message = str(info.value)
    assert str(weights) in message and expected in message and sha256_file(weights) in message


def test_unknown_name_lists_available(tmp_path: Path) -> None:
    _save_tiny(tmp_path, "first")
    _save_tiny(tmp_path, "second")
    with pytest.raises(ValueError, match="unknown model 'nope'.*first, second"):
        load("nope", weights_dir=tmp_path)
    with pytest.raises(ValueError, match="model name"):
        load("../first", weights_dir=tmp_path)


def test_mismatched_architecture_fires(tmp_path: Path) -> None:
    _save_tiny(tmp_path)
    card_path = tmp_path / "tiny.json"
    card = json.loads(card_path.read_text())
    card["arch_kwargs"]["width"] = 1 / 8
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="do not match architecture"):
        load("tiny", weights_dir=tmp_path)


def test_available_skips_cards_without_weights(tmp_path: Path) -> None:
    _save_tiny(tmp_path)
    (tmp_path / "tiny.safetensors").unlink()
    assert available(weights_dir=tmp_path) == {}
    assert available(weights_dir=tmp_path / "missing") == {}


def test_shipped_models_load() -> None:
    # Whatever is shipped must load and verify (the directory may still be empty).
    for name in available():
        model = load(name)
        assert model.predict(torch.rand(1, 3, 32, 64)).shape == (1, 32, 64)


@pytest.mark.parametrize("name", sorted(sa.zoo.RETIRED_MODELS))
def test_a_retired_model_is_refused_naming_the_page_that_reproduces_it(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stages of the default's training history left the package on 2026-12-06: their names are refused with
    one line that says so and names the documentation page whose commands retrain them, not as unknown models."""
    root = Path(__file__).resolve().parents[1]
    page = sa.zoo.RETIRED_MODELS[name]
    assert (root / page).is_file() and (root / "docs" / "zoo-history" / f"{name}.md").is_file()
    assert f"`{name}`" in (root / page).read_text(encoding="utf-8")
    assert name not in available() and not (sa.zoo.WEIGHTS_DIR / f"{name}.safetensors").exists()
    with pytest.raises(ConfigError) as info:
        load(name)
    message = str(info.value)
    assert "\n" not in message and f"{name!r} was retired from the package" in message and page in message
    assert f"zoo:runs/<dir>/export/{name}.json" in message and sa.zoo.DEFAULT_MODEL in message
    capsys.readouterr()
    assert main(["eval", "--model", f"zoo:{name}", "--data", "synthetic:1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "retired" in err and page in err and "Traceback" not in err


def test_the_default_cards_retired_init_is_refused_by_train_and_unknown_elsewhere(tmp_path: Path) -> None:
    """The default's card records ``--init zoo:fcn2s-synth-w8-r16`` for its first run: ``train`` refuses it with the
    same line, and the card says where that init is reproduced. Only the shipped zoo knows the retired names: a
    folder of exports without one says "unknown model"."""
    card = sa.zoo.find_card(sa.zoo.DEFAULT_MODEL)
    assert "--init zoo:fcn2s-synth-w8-r16 " in card.extra["commands_before"][0]
    assert card.extra["retired_init"]["reproduced_by"] == sa.zoo.RETIRED_MODELS["fcn2s-synth-w8-r16"]
    config = TrainConfig(out_dir=str(tmp_path / "run"), init="zoo:fcn2s-synth-w8-r16", dropout=0.1, output_stride=2,
                         refine=32, refine2=24)  # fmt: skip
    with pytest.raises(ConfigError, match=r"init zoo:fcn2s-synth-w8-r16: .*retired.*docs/zoo-history/index\.md"):
        check_init(config)
    with pytest.raises(ConfigError, match="unknown model 'fcn8s-synth-w8'"):
        load("fcn8s-synth-w8", weights_dir=tmp_path)
