"""Memory estimates made before a run starts, so that a job too large for the machine is refused with the fix.

A run at ``--size 100000x100000``, or on a 12000x12000 image read at full size, would otherwise grow until the
kernel kills it (CPU) or fail with an out-of-memory traceback (GPU). This module estimates what a run needs from the
image size, the batch size and the number of budgets and modes, before any image is generated or decoded, and
``check_fits`` refuses with a ``ResourceError`` that gives the estimate and the fix (``--size HxW``, a smaller
``--batch-size``).

Method
------

The attacks spend their memory on one forward and backward pass of the network on a batch, and on the images they
keep. ``activation_bytes_per_pixel`` measures the first on the actual model: it runs one forward pass, a
cross-entropy loss against random labels and a backward pass to the input (the attacks' gradient) on a small random
probe, under ``torch.autograd.graph.saved_tensors_hooks``. What is counted:

- every tensor the autograd graph saves for the backward pass (the activations that stay alive from the forward
  pass until the backward pass frees them), once per storage (a view, or a tensor modified in place by
  ``ReLU(inplace=True)``, shares the storage of its base and is counted once, at the storage's full size);
- the output logits, and the gradient with respect to the input;
- the gradients in flight during the backward pass, as ``BACKWARD_TRANSIENTS`` (2: the gradient arriving at a layer
  and the one it produces) times the largest storage counted above (in practice the logits or their
  log-softmax, or the first full-resolution feature map).

Not counted: the model's parameters and buffers (they are in memory already when the check runs after the model is
loaded; ``MemoryModel.param_bytes`` has them for a check made before), other temporaries that live inside one
operation (im2col and oneDNN scratch space on CPU, cuDNN workspaces on GPU), the CUDA context, and fragmentation of
the allocator (PyTorch's caching allocator on GPU, glibc's malloc on CPU). These are why the estimate is multiplied
by a safety factor (``SAFETY_FACTOR``, 1.3).

The probe runs twice, at ``probe_size`` and at twice its area; a straight line through the two measurements
separates a per-pixel part (``bytes_per_pixel``, what convolutional feature maps cost) from a part that does not
grow with the image (``fixed_bytes``: what global pooling, attention over a fixed number of tokens or a
classification head costs). Both are per image; a batch of B images costs B times as much.

``estimate_run_bytes`` adds the images an experiment holds (see its docstring for every term), ``available_bytes``
says what the device has free (honouring a cgroup memory limit on CPU), ``check_fits`` compares the two, and
``image_size_of`` (from ``segattack.data.folder``) reads an image's size from its header without decoding its pixels.

>>> format_bytes(5.2e12), format_bytes(812e6)
('5.2 TB', '812 MB')
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.folder import image_size_of
from .errors import InputError, ModelError, ResourceError
from .models import PixelModel, model_errors, restored_flags

__all__ = [
    "SAFETY_FACTOR",
    "ATTACK_BUFFERS",
    "BACKWARD_TRANSIENTS",
    "MemoryModel",
    "available_bytes",
    "activation_bytes_per_pixel",
    "estimate_run_bytes",
    "fitting_size",
    "check_fits",
    "check_run_memory",
    "format_bytes",
    "image_size_of",
]

log = logging.getLogger(__name__)

#: The estimate is multiplied by this factor for what is not counted (transient buffers inside operations and the
#: backward pass, convolution scratch space, cuDNN workspaces, allocator fragmentation). On CPU, for the small FCN8s
#: running illm (3 budgets, 2 modes), the measured peak was 0.79-0.97 of the estimate (factor included) for runs of 0.6
#: to 2.6 GB; runs below ~200 MB measured up to 1.4 times the estimate (glibc keeps tensors under its 32 MB mmap
#: threshold in fragmented heaps), which does not matter where the check decides anything.
SAFETY_FACTOR = 1.3

#: Image-sized float32 buffers an attack keeps while it runs (the clean image in levels, the perturbation, the
#: gradient, the best perturbation so far, and APGD's momentum and checkpoint copies): 8 covers the heaviest (APGD).
ATTACK_BUFFERS = 8

#: Gradient buffers alive at once during the backward pass (the gradient arriving at a layer and the one it
#: produces), counted at the size of the largest saved tensor.
BACKWARD_TRANSIENTS = 2

#: The answer of ``available_bytes`` where nothing is known about the device's free memory: "plenty".
UNKNOWN_AVAILABLE = 2**62

_FLOAT32 = 4
_INT64 = 8
_UNLIMITED = 2**60  # cgroup limits at or above this mean "no limit" (v1 writes 2**63 rounded down to a page)


# ---------------------------------------------------------------------------------------------------------------------
# What the device has


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes, None where the file or the field is missing."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            try:
                value = int(parts[1])
            except (IndexError, ValueError):
                return None
            unit = parts[2].lower() if len(parts) > 2 else "b"
            return value * 1024 if unit == "kb" else value
    return None


def _sysconf_available() -> int | None:
    """Free physical pages times the page size, None where the platform does not say."""
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages < 0 or size <= 0:
        return None
    return int(pages) * int(size)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_field(path: Path, *names: str) -> int:
    """The first of ``names`` found in a cgroup ``memory.stat`` file (0 where none is)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    fields = dict(line.split(maxsplit=1) for line in lines if len(line.split()) == 2)
    for name in names:
        if name in fields:
            with contextlib.suppress(ValueError):
                return int(fields[name])
    return 0


def _cgroup_available(root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Room left under the tightest cgroup memory limit (limit minus usage), None where no limit is set.

    Looks at cgroup v2 (``memory.max``, ``memory.current``) and v1 (``memory/memory.limit_in_bytes``,
    ``memory/memory.usage_in_bytes``), both at the mount's root (what a container sees as its own group) and at the
    process's own group named in /proc/self/cgroup. Inactive file pages (page cache the kernel reclaims before it
    kills anyone) are not counted as used.
    """
    own_v2: list[str] = []
    own_v1: list[str] = []
    try:
        for line in self_cgroup.read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3 or not parts[2].startswith("/"):
                continue
            if parts[0] == "0" and parts[1] == "":
                own_v2.append(parts[2])
            elif "memory" in parts[1].split(","):
                own_v1.append(parts[2])
    except OSError:
        pass
    rooms: list[int] = []
    v1_root = root / "memory"
    # (the hierarchy's root, this process's own groups, the limit's file, the usage's file, the inactive page cache)
    layouts = (
        (root, own_v2, "memory.max", "memory.current", ("inactive_file",)),  # cgroup v2
        (v1_root, own_v1, "memory.limit_in_bytes", "memory.usage_in_bytes", ("total_inactive_file", "inactive_file")),
    )
    for top, own, limit_file, usage_file, inactive in layouts:
        for d in [top] + [top / p.lstrip("/") for p in own if p.strip("/")]:
            limit = _read_int(d / limit_file)
            if limit is None or limit >= _UNLIMITED:
                continue
            used = _read_int(d / usage_file) or 0
            used -= _stat_field(d / "memory.stat", *inactive)
            rooms.append(limit - max(0, used))
    return max(0, min(rooms)) if rooms else None


def available_bytes(device: torch.device | str) -> int:
    """Bytes the device can still give this process.

    - CUDA: the free memory ``torch.cuda.mem_get_info`` reports, plus what PyTorch's caching allocator holds
      reserved but unused (this process can reuse it; the driver counts it as taken).
    - CPU: ``MemAvailable`` of /proc/meminfo (fallback: free physical pages times the page size), capped by the room
      left under a cgroup memory limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) where one is set and tighter.
    - Anything else, or a CPU that says nothing: ``UNKNOWN_AVAILABLE`` (a very large number), logged at debug level.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        return int(free) + max(0, int(cached))
    if dev.type != "cpu":
        log.debug("free memory of a %s device is not known; assuming plenty", dev.type)
        return UNKNOWN_AVAILABLE
    host = _meminfo_available()
    if host is None:
        host = _sysconf_available()
    group = _cgroup_available()
    known = [v for v in (host, group) if v is not None]
    if not known:
        log.debug("free memory of the CPU is not known (no /proc/meminfo, sysconf or cgroup limit); assuming plenty")
        return UNKNOWN_AVAILABLE
    return min(known)


# ---------------------------------------------------------------------------------------------------------------------
# What the model needs


@dataclass(frozen=True)
class MemoryModel:
    """Memory of one attack pass (forward, loss, backward to the input) of a model, per image.

    ``bytes_per_pixel``: what grows with the image (feature maps, logits, the input gradient), per pixel.
    ``fixed_bytes``: what does not grow with the image, per image (global pooling, fixed-size heads); at least 0.
    ``param_bytes``: the model's parameters and buffers, not part of the other two (already in memory when the
    check is made after loading the model).
    """

    fixed_bytes: float
    bytes_per_pixel: float
    param_bytes: int = 0

    def activation_bytes(self, *, height: int, width: int, batch_size: int = 1) -> int:
        """Bytes of one attack pass on ``batch_size`` images of ``height`` x ``width``, without the safety factor."""
        return math.ceil((self.bytes_per_pixel * height * width + self.fixed_bytes) * batch_size)


def _storage_key(t: Tensor) -> tuple[int, int]:
    """(data pointer, bytes) of a tensor's storage; a tensor without one counts at its own size."""
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):
        return id(t), t.numel() * t.element_size()


def _probe_dtype(model: nn.Module | Callable[..., Any]) -> torch.dtype:
    """The floating dtype of the wrapped network's first floating parameter or buffer (float32 if none)."""
    if isinstance(model, nn.Module):
        inner = model.net if hasattr(model, "net") and isinstance(model.net, nn.Module) else model
        for t in (*inner.parameters(), *inner.buffers()):
            if t.is_floating_point():
                return t.dtype
    return torch.float32


@contextlib.contextmanager
def _state_kept(model: object) -> Iterator[None]:
    """``models.restored_flags`` for a module; nothing for a plain callable."""
    if not isinstance(model, nn.Module):
        yield
        return
    with restored_flags(model):
        yield


def _resident(model: object) -> tuple[set[int], int]:
    """The storages of a module's parameters and buffers (already in memory; not counted by the probe) and their
    total size."""
    ptrs: set[int] = set()
    total = 0
    if isinstance(model, nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            ptr, nbytes = _storage_key(t)
            if ptr not in ptrs:
                ptrs.add(ptr)
                total += nbytes
    return ptrs, total


def _measure(call: Callable[[Tensor], Any], size: tuple[int, int], device: torch.device, dtype: torch.dtype,
             skip: set[int]) -> tuple[float, int, int]:  # fmt: skip
    """One forward+loss+backward on a (1, 3, h, w) probe: the bytes of the saved tensors, logits and input gradient;
    the largest of those storages; the number of classes."""
    h, w = size
    gen = torch.Generator(device=device).manual_seed(0)  # a private generator: the global RNG is not advanced
    x = torch.rand(1, 3, h, w, generator=gen, device=device, dtype=dtype).requires_grad_(True)
    seen: set[int] = set(skip)
    seen.add(x.untyped_storage().data_ptr())
    total = 0
    largest = 0

    def count(t: Tensor) -> None:
        nonlocal total, largest
        ptr, nbytes = _storage_key(t)
        if ptr not in seen:
            seen.add(ptr)
            total += nbytes
            largest = max(largest, nbytes)

    def pack(t: Tensor) -> Tensor:
        count(t)
        return t

    def unpack(t: Tensor) -> Tensor:
        return t

    with torch.enable_grad():
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            out = call(x)
            if not isinstance(out, Tensor) or out.ndim != 4:
                raise ModelError(f"model returned {type(out).__name__} for the memory probe; expected (B, K, H, W)")
            labels = torch.randint(0, out.shape[1], (1, *out.shape[-2:]), generator=gen, device=device)
            loss = F.cross_entropy(out, labels)
        count(out)
        k = int(out.shape[1])
        del out, labels
        (grad,) = torch.autograd.grad(loss, x)  # frees the graph (no retain_graph)
    total += grad.numel() * grad.element_size()
    del grad, loss, x
    return float(total), largest, k


def activation_bytes_per_pixel(
    model: nn.Module | Callable[..., Any], *, device: torch.device | str, probe_size: tuple[int, int] = (64, 64)
) -> MemoryModel:
    """Measure the memory of one attack pass of ``model`` per image pixel (see the module docstring).

    ``model``: a ``segattack.PixelModel`` (images in [0, 1] (B, 3, H, W) -> logits (B, K, H, W)); a bare
    ``nn.Module`` is wrapped in one without normalisation. It must be on ``device`` already. Two probes run, at
    ``probe_size`` and at twice its width; the model's train/eval flags and ``requires_grad`` flags are left as
    they were, the global random state is not touched and no graph stays alive afterwards.
    """
    dev = torch.device(device)
    h, w = (int(v) for v in probe_size)
    if h < 1 or w < 1:
        raise InputError(f"probe_size must be two positive integers (H, W), got {probe_size!r}")
    if isinstance(model, nn.Module) and not isinstance(model, PixelModel):
        model = PixelModel(model)
    dtype = _probe_dtype(model)
    skip, param_bytes = _resident(model)
    call = functools.partial(model, check=False) if isinstance(model, PixelModel) else model
    sizes = ((h, w), (h, 2 * w))
    measured: list[float] = []
    largest = 0
    with _state_kept(model):
        for size in sizes:
            with model_errors(on=f"a {size[0]}x{size[1]} test image", when="before the run estimates its memory"):
                try:
                    b, largest, _ = _measure(call, size, dev, dtype, skip)
                except (torch.cuda.OutOfMemoryError, MemoryError) as err:
                    raise ResourceError(f"the memory probe (one forward and backward pass at {size[0]}x{size[1]}) "
                                        f"ran out of memory on {dev}: the device is full already") from err  # fmt: skip
            measured.append(b)
    p1, p2 = h * w, h * 2 * w
    slope = (measured[1] - measured[0]) / (p2 - p1)
    if slope <= 0:  # a model whose memory does not grow with the image: all of it per pixel, conservatively
        slope, fixed = measured[1] / p2, 0.0
    else:
        fixed = max(0.0, measured[0] - slope * p1)
    # gradients in flight, at the size of the largest storage of the larger probe, taken as growing with the image
    # (exact where that storage is a feature map or the logits, which is the rule; conservative where it is not)
    slope += BACKWARD_TRANSIENTS * largest / p2
    log.debug("memory probe: %.0f and %.0f bytes at %s -> %.1f B/pixel + %.0f B", *measured, sizes, slope, fixed)
    return MemoryModel(fixed_bytes=fixed, bytes_per_pixel=slope, param_bytes=param_bytes)


def estimate_run_bytes(
    mem_model: MemoryModel,
    *,
    height: int,
    width: int,
    batch_size: int,
    n_eps: int,
    n_modes: int,
    keep_images: bool = True,
    count_params: bool = False,
) -> int:
    """Bytes an experiment needs at its peak for batches of ``batch_size`` images of ``height`` x ``width``.

    With P = height * width and B = batch_size, the terms are:

    - activations of one attack pass on the batch: ``(bytes_per_pixel * P + fixed_bytes) * B`` (measured by
      ``activation_bytes_per_pixel``; the clean and adversarial predictions run without gradients and need less);
    - the clean batch, float32, 3 channels: ``12 * P * B``;
    - the attack's working state, ``ATTACK_BUFFERS`` (8) image-sized float32 buffers: ``8 * 12 * P * B``;
    - the adversarial images kept, float32, 3 channels, one batch per budget and mode: ``12 * P * B * n_eps *
      n_modes``, plus one mode's budgets again while ``torch.stack`` joins them: ``12 * P * B * n_eps``
      (``keep_images=False``: only the batch in flight, ``12 * P * B``);
    - predictions, int64 per pixel: the adversarial ones of every budget and mode ``8 * P * B * n_eps * n_modes``
      (``keep_images=False``: one), the clean prediction and the attack's labels ``2 * 8 * P * B``, and the class
      mask, bool, ``P * B``;
    - the data set's items: a uint8 (3, H, W) image and an int64 (H, W) label per image: ``(3 + 8) * P * B``;
    - ``count_params=True``: the model's parameters and buffers (for a check made before the model is loaded);

    and the sum is multiplied by ``SAFETY_FACTOR`` (1.3) for what is not counted (see the module docstring).

    >>> m = MemoryModel(fixed_bytes=0.0, bytes_per_pixel=1000.0)
    >>> estimate_run_bytes(m, height=100, width=100, batch_size=1, n_eps=1, n_modes=1) / 1e6
    15.184
    """
    for name, value in (("height", height), ("width", width), ("batch_size", batch_size), ("n_eps", n_eps),
                        ("n_modes", n_modes)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    p = height * width
    b = batch_size
    image = 3 * _FLOAT32 * p * b  # one float32 (B, 3, H, W) batch
    kept = n_eps * n_modes if keep_images else 1
    total = mem_model.activation_bytes(height=height, width=width, batch_size=b)
    total += image  # clean batch
    total += ATTACK_BUFFERS * image  # attack working state
    total += kept * image  # adversarial images
    if keep_images:
        total += n_eps * image  # torch.stack of one mode's budgets
    total += kept * _INT64 * p * b  # adversarial predictions
    total += 2 * _INT64 * p * b + p * b  # clean prediction, labels, class mask
    total += (3 + _INT64) * p * b  # data set items: uint8 image, int64 label
    if count_params:
        total += mem_model.param_bytes
    return math.ceil(total * SAFETY_FACTOR)


def fitting_size(
    mem_model: MemoryModel,
    *,
    height: int,
    width: int,
    available: int,
    batch_size: int,
    n_eps: int,
    n_modes: int,
    keep_images: bool = True,
    multiple: int = 8,
) -> tuple[int, int] | None:
    """The largest (H, W) with the aspect ratio of ``height`` x ``width``, both multiples of ``multiple``, whose
    ``estimate_run_bytes`` fits in ``available`` bytes (for the hint ``--size HxW``): the size itself if it fits,
    None if not even ``multiple`` x ``multiple`` fits. The estimate is affine in the pixel count, so this is solved,
    not searched.

    >>> m = MemoryModel(fixed_bytes=0.0, bytes_per_pixel=1000.0)
    >>> fitting_size(m, height=100000, width=200000, available=16 * 10**9, batch_size=4, n_eps=5, n_modes=2)
    (1048, 2096)
    """

    def need(h: int, w: int) -> int:
        return estimate_run_bytes(mem_model, height=h, width=w, batch_size=batch_size, n_eps=n_eps,
                                  n_modes=n_modes, keep_images=keep_images)  # fmt: skip

    if need(height, width) <= available:
        return height, width
    base = need(1, 1)
    per_pixel = max(1, need(2, 2) - base) / 3
    pixels = max(0.0, (available - base) / per_pixel + 1)
    scale = min(1.0, math.sqrt(pixels / (height * width)))
    while True:
        h = int(height * scale) // multiple * multiple
        w = int(width * scale) // multiple * multiple
        if h < multiple or w < multiple:
            return None
        if need(h, w) <= available:
            break
        scale *= 0.99  # the ceil of each term can push the solved size a few bytes over
    return min(h, height), min(w, width)


def format_bytes(n: float) -> str:
    """A byte count for people, in decimal units (1 kB = 1000 B), three significant digits at most.

    >>> [format_bytes(v) for v in (0, 999, 1536, 812e6, 18.1e9, 5.2e12, 3e20)]
    ['0 B', '999 B', '1.5 kB', '812 MB', '18.1 GB', '5.2 TB', '300 EB']
    """
    value = float(n)
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    i = 0
    while abs(value) >= 999.5 and i < len(units) - 1:
        value /= 1000
        i += 1
    if i == 0 or abs(value) >= 99.95:
        return f"{value:.0f} {units[i]}"
    return f"{value:.1f} {units[i]}"


def check_fits(*, need_bytes: int, device: torch.device | str, what: str, hint: str) -> None:
    """Raise ``ResourceError`` when ``need_bytes`` exceed ``available_bytes(device)``, as one line:
    ``"<what> needs about 5.2 TB of memory, cpu has 18.1 GB available; <hint>"``.

    ``what`` names the job (``"run at 100000x100000 with batch size 4"``), ``hint`` the fix (``"pass --size
    512x1024 (resize) or a smaller --batch-size"``).
    """
    dev = torch.device(device)
    have = available_bytes(dev)
    if need_bytes > have:
        name = str(dev) if dev.index is not None else dev.type
        raise ResourceError(
            f"{what} needs about {format_bytes(need_bytes)} of memory, {name} has {format_bytes(have)} available; "
            f"{hint}"
        )
    log.debug("%s needs about %s of memory, %s available", what, format_bytes(need_bytes), format_bytes(have))


def check_run_memory(
    model: nn.Module | Callable[..., Any],
    *,
    device: torch.device | str,
    height: int,
    width: int,
    batch_size: int,
    n_eps: int,
    n_modes: int,
    what: str = "run",
) -> int:
    """Refuse (``ResourceError``) a job of batches of ``batch_size`` images of ``height`` x ``width`` with
    ``n_eps`` budgets and ``n_modes`` modes that would not fit on ``device``; return the estimate in bytes.

    The model is probed (``activation_bytes_per_pixel``), the job estimated (``estimate_run_bytes``) and, where it
    does not fit, the message names the largest ``--size`` that does (``fitting_size``) and a smaller
    ``--batch-size`` where the batch holds more than one image.
    """
    mem = activation_bytes_per_pixel(model, device=device)
    need = estimate_run_bytes(mem, height=height, width=width, batch_size=batch_size, n_eps=n_eps, n_modes=n_modes)
    have = available_bytes(device)
    if need <= have:
        log.debug("%s at %dx%d needs about %s of memory, %s available", what, height, width, format_bytes(need),
                  format_bytes(have))  # fmt: skip
        return need
    fit = fitting_size(mem, height=height, width=width, available=have, batch_size=batch_size, n_eps=n_eps,
                       n_modes=n_modes)  # fmt: skip
    fixes = []
    if fit is not None and fit != (height, width):
        fixes.append(f"pass --size {fit[0]}x{fit[1]} (resize)")
    if batch_size > 1:
        fixes.append("a smaller --batch-size")
    if not fixes:
        fixes.append("use a device with more memory, fewer budgets (--eps) or a smaller --size")
    where = f"{what} at {height}x{width}" + (f" with batch size {batch_size}" if batch_size > 1 else "")
    check_fits(need_bytes=need, device=device, what=where, hint=" or ".join(fixes))
    return need
