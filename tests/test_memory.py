"""segattack.memory: the probe, the run estimate against measured memory, the refusal, image sizes from headers."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import Tensor, nn

import segattack as sa
from segattack.errors import ModelError, ResourceError, UnreadableImageError
from segattack.memory import (
    BACKWARD_TRANSIENTS,
    SAFETY_FACTOR,
    MemoryModel,
    _cgroup_available,
    _measure,
    _resident,
    activation_bytes_per_pixel,
    available_bytes,
    check_fits,
    estimate_run_bytes,
    fitting_size,
    format_bytes,
    image_size_of,
)
from segattack.zoo import FCN8s

from .conftest import TinyConvNet

CPU = torch.device("cpu")


def small_fcn() -> sa.PixelModel:
    torch.manual_seed(0)
    return sa.PixelModel(FCN8s(19, width=0.125, batch_norm=True), mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2))


@pytest.fixture(scope="module")
def fcn_memory() -> MemoryModel:
    return activation_bytes_per_pixel(small_fcn(), device=CPU)


class GlobalHead(nn.Module):
    """Per-pixel convolutions plus an image-level branch (global pooling into a wide MLP) added to every pixel:
    part of its memory does not grow with the image."""

    def __init__(self, classes: int = 4, hidden: int = 50_000) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, classes, 1))
        self.head = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.head(x.mean(dim=(2, 3)))
        return self.body(x) + pooled[:, :, None, None]


# --- the probe --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [small_fcn, lambda: sa.PixelModel(TinyConvNet())], ids=["fcn8s", "tiny"])
def test_probe_counts_memory_per_pixel(make: Callable[[], sa.PixelModel]) -> None:
    mem = activation_bytes_per_pixel(make(), device=CPU)
    assert mem.bytes_per_pixel > 0
    assert mem.fixed_bytes >= 0
    assert mem.param_bytes > 0
    # at least the logits (float32, K channels), their log-softmax and the input gradient (3 float32) per pixel
    k = 19 if mem.param_bytes > 10**6 else 5
    assert mem.bytes_per_pixel >= 2 * 4 * k + 12


def test_probe_separates_a_fixed_part_and_predicts_a_third_size() -> None:
    torch.manual_seed(0)
    model = sa.PixelModel(GlobalHead())
    mem = activation_bytes_per_pixel(model, device=CPU)
    assert mem.fixed_bytes > 50_000 * 4  # the MLP's hidden activation, whatever the image size
    measured, largest, _ = _measure(model, (96, 160), CPU, torch.float32, _resident(model)[0])
    assert largest == 96 * 160 * 8 * 4  # the largest storage is the 8-channel feature map, not the MLP's
    predicted = mem.activation_bytes(height=96, width=160)
    assert predicted == pytest.approx(measured + BACKWARD_TRANSIENTS * largest, rel=0.01)


def test_probe_leaves_the_model_as_it_was() -> None:
    model = small_fcn()
    net = model.net
    assert isinstance(net, FCN8s)
    net.train()
    net.block1.eval()
    net.score_fr.weight.requires_grad_(False)
    modes = [m.training for m in net.modules()]
    flags = [p.requires_grad for p in net.parameters()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    activation_bytes_per_pixel(model, device=CPU)
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    assert model.training  # the PixelModel's own flag too
    assert all(p.grad is None for p in net.parameters())  # no gradients left, no graph kept
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())  # BatchNorm statistics unchanged
    assert torch.equal(torch.get_rng_state(), rng)  # the probe uses its own generator


def test_probe_of_a_bare_module_and_float64() -> None:
    net = TinyConvNet().double()
    mem = activation_bytes_per_pixel(net, device=CPU, probe_size=(32, 48))
    mem32 = activation_bytes_per_pixel(TinyConvNet(), device=CPU, probe_size=(32, 48))
    assert mem.bytes_per_pixel == pytest.approx(2 * mem32.bytes_per_pixel, rel=0.05)


class Broken(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("shapes do not match")


def test_probe_of_a_failing_model() -> None:
    with pytest.raises(ModelError, match=r"failed on a 64x64 test image .*RuntimeError: shapes do not match"):
        activation_bytes_per_pixel(Broken(), device=CPU)


def test_probe_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="probe_size"):
        activation_bytes_per_pixel(TinyConvNet(), device=CPU, probe_size=(0, 8))


# --- the estimate -----------------------------------------------------------------------------------------------------


def test_estimate_scales_with_pixels(fcn_memory: MemoryModel) -> None:
    kw: dict[str, Any] = {"batch_size": 2, "n_eps": 5, "n_modes": 2}
    small = estimate_run_bytes(fcn_memory, height=128, width=256, **kw)
    large = estimate_run_bytes(fcn_memory, height=256, width=512, **kw)
    assert 3.5 * small <= large <= 4.5 * small
    per_pixel_part = fcn_memory.bytes_per_pixel * 256 * 512 * 2
    assert 3.5 * per_pixel_part / 4 <= large - small <= 4.5 * per_pixel_part
    assert estimate_run_bytes(fcn_memory, height=128, width=256, batch_size=4, n_eps=5, n_modes=2) > small
    assert estimate_run_bytes(fcn_memory, height=128, width=256, keep_images=False, **kw) < small
    with_params = estimate_run_bytes(fcn_memory, height=128, width=256, count_params=True, **kw)
    assert with_params - small == pytest.approx(fcn_memory.param_bytes * SAFETY_FACTOR, abs=2)


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_estimate_rejects_bad_counts(fcn_memory: MemoryModel, bad: object) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        estimate_run_bytes(fcn_memory, height=8, width=8, batch_size=bad, n_eps=1, n_modes=1)  # type: ignore[arg-type]


def test_a_huge_run_is_refused_with_the_fix(fcn_memory: MemoryModel) -> None:
    need = estimate_run_bytes(fcn_memory, height=100_000, width=100_000, batch_size=4, n_eps=5, n_modes=2)
    have = available_bytes(CPU)
    assert need > have
    size = fitting_size(fcn_memory, height=100_000, width=100_000, available=have, batch_size=4, n_eps=5, n_modes=2)
    assert size is not None and size[0] == size[1]
    hint = f"pass --size {size[0]}x{size[1]} (resize) or a smaller --batch-size"
    with pytest.raises(ResourceError) as err:
        check_fits(need_bytes=need, device=CPU, what="run at 100000x100000 with batch size 4", hint=hint)
    message = str(err.value)
    assert "\n" not in message
    assert "--size" in message and "--batch-size" in message
    assert re.fullmatch(
        r"run at 100000x100000 with batch size 4 needs about [\d.]+ TB of memory, cpu has [\d.]+ [kMGT]?B "
        r"available; pass --size \d+x\d+ \(resize\) or a smaller --batch-size",
        message,
    ), message
    assert isinstance(err.value, MemoryError)


def test_a_realistic_run_fits(fcn_memory: MemoryModel) -> None:
    need = estimate_run_bytes(fcn_memory, height=256, width=512, batch_size=4, n_eps=5, n_modes=2)
    assert need < 4 * 10**9
    check_fits(need_bytes=need, device=CPU, what="run at 256x512 with batch size 4", hint="unused")


def test_fitting_size_is_the_largest_that_fits(fcn_memory: MemoryModel) -> None:
    kw: dict[str, Any] = {"batch_size": 4, "n_eps": 5, "n_modes": 2}
    budget = 2 * 10**9
    h, w = fitting_size(fcn_memory, height=1024, width=2048, available=budget, **kw) or (0, 0)
    assert h % 8 == 0 and w % 8 == 0 and w == 2 * h
    assert estimate_run_bytes(fcn_memory, height=h, width=w, **kw) <= budget
    assert estimate_run_bytes(fcn_memory, height=h + 16, width=w + 32, **kw) > budget
    assert fitting_size(fcn_memory, height=100, width=75, available=budget, **kw) == (100, 75)  # fits as it is
    assert fitting_size(fcn_memory, height=1024, width=2048, available=1000, **kw) is None


#: Peak memory of a fresh process around one step: glibc's free memory handed back (malloc_trim) and the kernel's
#: high-water mark reset (clear_refs 5) first, so that neither memory freed after the imports (reused without growing
#: the RSS) nor their peak (which ru_maxrss would keep) hides the step; ru_maxrss where /proc does not allow it.
_PEAK = r"""
import ctypes, gc, re, resource
def _status(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\s+(\d+) kB", f.read()).group(1)) * 1024
def peak_growth(fn):
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status("VmRSS")
        fn()
        return _status("VmHWM") - before
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        fn()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
"""

_PASS_SCRIPT = """
import torch, torch.nn.functional as F, segattack as sa
from segattack.zoo import FCN8s
h, w = {h}, {w}
torch.manual_seed(0)
model = sa.PixelModel(FCN8s(19, width=0.125, batch_norm=True), mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2))
def step(x, y):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x, check=False), y)
    return torch.autograd.grad(loss, x)[0]
step(torch.rand(1, 3, 16, 16), torch.zeros(1, 16, 16, dtype=torch.long))  # libraries and kernels loaded
x, y = torch.rand(1, 3, h, w), torch.randint(0, 19, (1, h, w))
print(peak_growth(lambda: step(x, y)))
"""


def _peak_growth(script: str, timeout: float) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PEAK + script], capture_output=True, text=True, check=True, timeout=timeout
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and ru_maxrss in kB are Linux's")
def test_estimate_matches_the_measured_peak_of_a_pass(fcn_memory: MemoryModel) -> None:
    """Peak memory growth of one forward+loss+backward of the small FCN8s at 128x256 in a fresh process against
    the activation estimate (no safety factor); measured here: 26-29 MB against 21.7 MB."""
    growth = _peak_growth(_PASS_SCRIPT.format(h=128, w=256), timeout=120)
    estimate = fcn_memory.activation_bytes(height=128, width=256)
    assert growth > 0
    assert growth / 3 <= estimate <= 3 * growth, (format_bytes(estimate), format_bytes(growth))


_RUN_SCRIPT = """
import torch, segattack as sa
from segattack.zoo import FCN8s
from segattack.pipeline import AttackSpec, HideGoal, attack_batch
h, w = {h}, {w}
torch.manual_seed(0)
net = FCN8s(19, width=0.125, batch_norm=True)
for score in (net.score_fr, net.score_pool4, net.score_pool3):  # random, so that the prediction is mixed
    torch.nn.init.normal_(score.weight, std=0.5)
model = sa.PixelModel(net)
def run(x):
    pred = model.predict(x)
    goal = HideGoal((int(pred.flatten().mode().values),))
    eps = [2 / 255, 4 / 255, 8 / 255]
    attack_batch(model, x, attack=AttackSpec("illm"), goal=goal, eps=eps, modes=("full", "posthoc"), pred=pred)
run(torch.rand(1, 3, 16, 16))
print(peak_growth(lambda: run(torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8).float() / 255)))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in kB is Linux's convention")
@pytest.mark.parametrize("size", [(128, 256), (512, 1024)])
def test_run_estimate_matches_the_measured_peak_of_an_attack(fcn_memory: MemoryModel, size: tuple[int, int]) -> None:
    """The whole estimate (safety factor included) against the peak RSS growth of ``attack_batch`` (illm, three
    budgets, modes full and posthoc) on one image; measured here: 43-53 MB against 41 MB, 629 MB against 650 MB."""
    h, w = size
    growth = _peak_growth(_RUN_SCRIPT.format(h=h, w=w), timeout=300)
    estimate = estimate_run_bytes(fcn_memory, height=h, width=w, batch_size=1, n_eps=3, n_modes=2)
    assert growth / 2 <= estimate <= 2 * growth, (format_bytes(estimate), format_bytes(growth))


# --- what the device has ----------------------------------------------------------------------------------------------


def test_available_bytes_on_cpu() -> None:
    have = available_bytes(CPU)
    assert 10**8 < have < 2**50
    assert available_bytes("cpu") > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_available_bytes_and_probe_on_cuda() -> None:
    dev = torch.device("cuda")
    free, total = torch.cuda.mem_get_info(dev)
    assert free <= available_bytes(dev) <= total
    model = small_fcn().to(dev)
    mem = activation_bytes_per_pixel(model, device=dev)
    cpu = activation_bytes_per_pixel(small_fcn(), device=CPU)
    assert mem.bytes_per_pixel == pytest.approx(cpu.bytes_per_pixel, rel=0.25)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit(tmp_path: Path) -> None:
    _write(tmp_path / "proc_cgroup", "0::/job\n")
    _write(tmp_path / "cg" / "memory.max", "max\n")  # the root: no limit
    _write(tmp_path / "cg" / "job" / "memory.max", "1000000000\n")
    _write(tmp_path / "cg" / "job" / "memory.current", "400000000\n")
    _write(tmp_path / "cg" / "job" / "memory.stat", "anon 300000000\ninactive_file 100000000\n")
    assert _cgroup_available(tmp_path / "cg", tmp_path / "proc_cgroup") == 700_000_000


def test_cgroup_v1_limit_and_no_limit(tmp_path: Path) -> None:
    _write(tmp_path / "proc_cgroup", "4:memory:/\n1:cpu:/\n")
    _write(tmp_path / "cg" / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")  # v1's "unlimited"
    assert _cgroup_available(tmp_path / "cg", tmp_path / "proc_cgroup") is None
    _write(tmp_path / "cg" / "memory" / "memory.limit_in_bytes", "2000000000\n")
    _write(tmp_path / "cg" / "memory" / "memory.usage_in_bytes", "2500000000\n")
    _write(tmp_path / "cg" / "memory" / "memory.stat", "total_inactive_file 1000000000\n")
    assert _cgroup_available(tmp_path / "cg", tmp_path / "proc_cgroup") == 500_000_000
    assert _cgroup_available(tmp_path / "none", tmp_path / "missing") is None


def test_format_bytes() -> None:
    assert format_bytes(5.2e12) == "5.2 TB"
    assert format_bytes(812_000_000) == "812 MB"
    assert format_bytes(18_100_000_000) == "18.1 GB"
    assert format_bytes(999_999) == "1.0 MB"


# --- image sizes from headers -----------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bilevel_png(path: Path, height: int, width: int) -> None:
    """A valid 1-bit greyscale PNG, all black except the first pixel, compressed row by row (a few hundred kB for
    12000x12000, written in well under a second)."""
    row_bytes = (width + 7) // 8
    comp = zlib.compressobj(9)
    first = b"\x00\x80" + bytes(row_bytes - 1)
    row = bytes(1 + row_bytes)  # filter type 0, all zero bits
    parts = [comp.compress(first)] + [comp.compress(row) for _ in range(height - 1)] + [comp.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    path.write_bytes(data)


def write_header_only_png(path: Path, height: int, width: int) -> None:
    """A PNG whose header says RGB height x width and whose pixel data is cut short: it cannot be decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(64))))


def test_bilevel_png_writer_makes_valid_pngs(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    write_bilevel_png(path, 30, 41)
    with Image.open(path) as im:
        im.load()
        assert im.mode == "1" and im.size == (41, 30)
        assert im.getpixel((0, 0)) == 255 and im.getpixel((1, 0)) == 0 and im.getpixel((40, 29)) == 0


def test_size_of_a_12000_square_png_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    t0 = time.perf_counter()
    write_bilevel_png(path, 12000, 12000)
    assert time.perf_counter() - t0 < 5
    assert path.stat().st_size < 2 * 10**6
    limit = Image.MAX_IMAGE_PIXELS
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning (144 M pixels) must not escape
        assert image_size_of(path) == (12000, 12000)
    assert time.perf_counter() - t0 < 1  # decoding 144 M pixels would take far longer
    assert Image.MAX_IMAGE_PIXELS == limit


def test_size_of_a_decompression_bomb_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    write_header_only_png(path, 100_000, 200_000)  # 2e10 pixels: Pillow raises DecompressionBombError on open
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert image_size_of(path) == (100_000, 200_000)  # from the header alone: the pixel data is not even there
    assert Image.MAX_IMAGE_PIXELS == limit


def test_size_of_unreadable_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    with pytest.raises(UnreadableImageError, match="notes.png"):
        image_size_of(text)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR")  # the header is cut short
    with pytest.raises(UnreadableImageError):
        image_size_of(broken)
    with pytest.raises(FileNotFoundError):
        image_size_of(tmp_path / "missing.png")
    ok = tmp_path / "ok.png"
    Image.new("RGB", (7, 5)).save(ok)
    assert image_size_of(str(ok)) == (5, 7)
