"""A tiny model with known behaviour and tiny street-like images, for end-to-end experiment and CLI tests.

``--model tests.models_for_cli:tiny_fcn`` names the model on the command line (the tests run from the repository
root, which ``segattack.specs`` puts on the import path).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

import segattack as sa

#: Class prototypes (RGB in [0, 1]) of the nearest-colour classifier, in Cityscapes train ids.
PROTOTYPES = {
    0: (0.5, 0.5, 0.5),  # road: grey
    2: (0.3, 0.25, 0.2),  # building: dark brown
    8: (0.2, 0.6, 0.2),  # vegetation: green
    10: (0.4, 0.6, 0.9),  # sky: blue
    11: (0.8, 0.15, 0.15),  # person: red
}


class TinyFCN(nn.Module):
    """3x3 box blur, then a 1x1 conv that is exactly a nearest-colour classifier over ``PROTOTYPES``.

    logit_k = 2 s c_k . x - s |c_k|^2 (= -s |x - c_k|^2 up to a per-pixel constant), plus small seeded noise; the 14
    other classes get a bias far below. Reddish pixels are persons, so hiding them is a real but easy attack.
    """

    def __init__(self, scale: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        self.blur = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False, padding_mode="replicate")
        self.head = nn.Conv2d(3, 19, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.blur.weight.fill_(1 / 9)
            w = 0.05 * torch.randn(19, 3, generator=g)
            b = torch.full((19,), -3 * scale) + 0.05 * torch.randn(19, generator=g)
            for k, c in PROTOTYPES.items():
                ct = torch.tensor(c)
                w[k] += 2 * scale * ct
                b[k] = -scale * float(ct.pow(2).sum())
            self.head.weight.copy_(w.view(19, 3, 1, 1))
            self.head.bias.copy_(b)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blur(x))


def tiny_fcn_module() -> nn.Module:
    """The bare network (expects images in [0, 1]: pass ``--mean 0,0,0 --std 1,1,1``)."""
    return TinyFCN()


def tiny_fcn() -> sa.PixelModel:
    """The network wrapped with its normalisation (none)."""
    return sa.PixelModel(TinyFCN(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def five_class_module() -> nn.Module:
    """A network with 5 output classes (does not fit the 19-class label space)."""
    return nn.Conv2d(3, 5, 1)


class _Misbehaving(nn.Module):
    """TinyFCN whose output goes wrong in the way ``kind`` names (for the command line's error table)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net = TinyFCN()
        self.kind = kind

    def forward(self, x: Tensor) -> object:
        logits = self.net(x)
        if self.kind == "tuple":
            return (logits, None)
        if self.kind == "integer":
            return logits.argmax(1, keepdim=True).expand(-1, 19, -1, -1)
        if self.kind == "batch":
            return torch.cat([logits, logits])
        raise RuntimeError("the network's own failure")


def returns_tuple() -> nn.Module:
    return _Misbehaving("tuple")


def returns_integers() -> nn.Module:
    return _Misbehaving("integer")


def returns_wrong_batch() -> nn.Module:
    return _Misbehaving("batch")


def raises_in_forward() -> nn.Module:
    return _Misbehaving("raise")


def factory_raises() -> nn.Module:
    raise KeyError("no config for this network")


def street_image(index: int, size: tuple[int, int] = (32, 64), person: bool = True) -> np.ndarray:
    """(H, W, 3) uint8: sky on top, vegetation left, road below, and (if ``person``) a reddish figure whose colour
    lies between road grey and person red, so small budgets hide part of it."""
    h, w = size
    rng = np.random.default_rng(index)
    img = np.empty((h, w, 3))
    img[:] = PROTOTYPES[0]
    img[: h // 3] = PROTOTYPES[10]
    img[h // 3 :, : w // 4] = PROTOTYPES[8]
    if person:
        top, left = h // 4, w // 3 + 3 * index
        t = 0.5 + 0.06 * rng.random((h // 2, w // 6, 1))
        img[top : top + h // 2, left : left + w // 6] = (1 - t) * np.array(PROTOTYPES[0]) + t * np.array(PROTOTYPES[11])
    img += 0.02 * rng.standard_normal(img.shape)
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


def write_street_pngs(root: Path, n: int = 4, size: tuple[int, int] = (32, 64), absent: tuple[int, ...] = ()) -> Path:
    """Write ``n`` street images ``img_<i>.png`` into ``root``; those in ``absent`` have no person."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(street_image(i, size, person=i not in absent)).save(root / f"img_{i}.png")
    return root


class ListDataset(torch.utils.data.Dataset[tuple[Tensor, Tensor]]):
    """In-memory data set following ``segattack.data.base``; ``bad`` indices raise UnreadableImageError."""

    has_labels = False

    def __init__(self, images: list[np.ndarray], bad: tuple[int, ...] = ()) -> None:
        self.images = images
        self.bad = bad

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if index in self.bad:
            raise sa.data.UnreadableImageError(f"image {index} is corrupt")
        img = torch.from_numpy(self.images[index]).permute(2, 0, 1).contiguous()
        return img, torch.full(img.shape[1:], 255, dtype=torch.int64)

    def image_id(self, index: int) -> str:
        return f"img_{index}"


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command line on ``argv``: it must exit 2 with one line on stderr and no traceback; return stderr."""
    from segattack.cli import main

    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def interrupt_after(n: int) -> Callable[[Any], None]:
    """A ``run_experiment`` progress callback that raises KeyboardInterrupt once ``n`` images are reported done, as
    Ctrl-C would."""
    seen: list[str] = []

    def progress(p: Any) -> None:
        if p.image_id is not None:
            seen.append(p.image_id)
            if len(seen) == n:
                raise KeyboardInterrupt

    return progress


#: How the tests' shorthand ``experiment`` splits its keywords: ``ExperimentConfig`` fields (by their old keyword
#: names too), ``run_experiment``'s own keywords, and ``RunOptions``.
_CONFIG_KEYS = {"class_ids": "classes", "classes": "classes", "eps_levels": "eps", "eps": "eps", "attacks": "attacks",
                "goal": "goal", "modes": "modes", "batch_size": "batch_size", "limit": "limit",
                "save_images": "save_images", "figure1_ids": "figure1", "figure1": "figure1", "seed": "seed",
                "label_names": "label_names", "instance_threshold": "instance_threshold", "survive": "survive"}
_OPTION_KEYS = ("check_memory", "overlap", "read_workers", "report")


def experiment(model: Any, data: Any, out: Path, **kw: Any) -> Path:
    """The tests' shorthand for ``run_experiment(model, data, ExperimentConfig(...), out, ..., options=...)``: the
    keywords go to the configuration, the run or its options by name. Returns ``out``."""
    from segattack.experiment import ExperimentConfig, RunOptions, run_experiment

    config = {_CONFIG_KEYS[k]: kw.pop(k) for k in list(kw) if k in _CONFIG_KEYS}
    options = {k: kw.pop(k) for k in list(kw) if k in _OPTION_KEYS}
    run_experiment(model, data, ExperimentConfig(**config), out, options=RunOptions(**options), **kw)
    return out
