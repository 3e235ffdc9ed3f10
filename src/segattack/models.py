"""PixelModel: a segmentation network seen from pixel space.

Attacks work on images in [0, 1]; networks want normalised inputs and return logits in many shapes. ``PixelModel``
puts the normalisation inside, accepts the common output conventions (a tensor, a mapping with ``'out'`` as in
torchvision, an object with ``.logits`` as in Hugging Face) and upsamples logits that are smaller than the input
bilinearly (differentiably) to input size.

The wrapped network always runs in eval mode with parameter gradients off, and its own state is restored after
every call: a ``PixelModel`` never changes the module it wraps (train/eval flags, ``requires_grad`` flags,
parameters and buffers stay as they were).

>>> import torch
>>> net = torch.nn.Conv2d(3, 5, kernel_size=1)
>>> model = PixelModel(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
>>> model(torch.rand(2, 3, 8, 12)).shape
torch.Size([2, 5, 8, 12])
>>> model.predict(torch.rand(2, 3, 8, 12)).dtype
torch.int64
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError, InputError, InputTypeError, ModelError, ModelTypeError, SegattackError

__all__ = [
    "AMP_DTYPES",
    "chunk_size",
    "predict_slice",
    "PixelModel",
    "check_images",
    "classes_of",
    "extract_logits",
    "first_pass",
    "model_errors",
    "model_fingerprint",
    "restored_flags",
]

#: ``amp=`` names -> the autocast dtype of the network's forward (and so of its backward).
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def classes_of(logits: Tensor) -> Tensor:
    """The predicted class per pixel, (B, K, H, W) -> (B, H, W) int64: the argmax over classes (the first on a
    tie). ``max(1).indices`` gives the same ids as ``argmax(1)`` and is several times faster on CPU for (B, K, H, W)
    logits, where argmax reduces over a strided axis."""
    return logits.detach().max(dim=1).indices


def check_images(images: Tensor, *, name: str = "images") -> None:
    """Validate a batch of images: (B, C, H, W) floating point with values in [0, 1] (``InputError`` otherwise, an
    ``InputTypeError`` for a wrong type or dtype)."""
    if not isinstance(images, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor of shape (B, 3, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise InputError(
            f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}; add a batch axis with images[None]"
        )
    if not images.is_floating_point():
        raise InputTypeError(
            f"{name} must be floating point in [0, 1], got {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )
    if images.numel():
        lo, hi = (float(v) for v in images.detach().aminmax())  # one pass; NaN propagates into both
        if not (lo >= 0 and hi <= 1):
            raise InputError(
                f"{name} must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); "
                "PixelModel normalises internally, so pass raw images scaled to [0, 1], not mean/std-normalised ones"
            )


@contextlib.contextmanager
def _flags_kept(net: nn.Module, *, freeze: bool) -> Iterator[None]:
    """Every module's train/eval flag and every parameter's ``requires_grad`` as they were before the block,
    whatever the block does to them; with ``freeze``, eval mode and no parameter gradients inside it. Only the flags
    that differ are set (an attack freezes the network on every pass, usually already frozen: setting every flag
    twice per pass cost 0.7 ms of a 50 ms pass)."""
    modules = list(net.modules())
    params = list(net.parameters())
    modes = [m.training for m in modules]
    flags = [p.requires_grad for p in params]
    try:
        if freeze:
            if any(modes):
                net.eval()
            for p, flag in zip(params, flags, strict=True):
                if flag:
                    p.requires_grad_(False)
        yield
    finally:
        for m, training in zip(modules, modes, strict=True):
            if m.training != training:
                m.training = training
        for p, flag in zip(params, flags, strict=True):
            if p.requires_grad != flag:
                p.requires_grad_(flag)


def restored_flags(net: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Every module's train/eval flag and every parameter's ``requires_grad`` as they were before the block,
    whatever the block does to them."""
    return _flags_kept(net, freeze=False)


def frozen(net: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Eval mode and no parameter gradients for the duration; the caller's flags are restored afterwards."""
    return _flags_kept(net, freeze=True)


def extract_logits(out: object) -> Tensor:
    """The logits tensor of a network's output: the tensor itself, ``out["out"]`` (torchvision), ``out["logits"]``
    or ``out.logits`` (Hugging Face); ``ModelTypeError`` (a TypeError) naming what was returned otherwise."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, Mapping):
        if "out" in out and isinstance(out["out"], Tensor):
            return out["out"]
        if "logits" in out and isinstance(out["logits"], Tensor):
            return out["logits"]
        raise ModelTypeError(
            f"model returned a mapping with keys {sorted(map(str, out))}; expected a tensor under 'out'"
        )
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    raise ModelTypeError(
        f"model returned {type(out).__name__}; expected a logits tensor (B, K, h, w), a mapping with 'out' "
        "(torchvision) or an object with .logits (Hugging Face)"
    )


def _numbers(values: object, name: str) -> tuple[float, ...]:
    """``mean=``/``std=`` as a tuple of floats, one per channel; ``ModelError`` for anything else."""
    example = "(0.485, 0.456, 0.406)" if name == "mean" else "(0.229, 0.224, 0.225)"
    try:
        if isinstance(values, (str, bytes)):
            raise TypeError(name)
        out = tuple(float(v) for v in values)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ModelTypeError(
            f"{name} must be a sequence of numbers, one per image channel, e.g. {name}={example}, got {values!r}"
        ) from None
    if not out:
        raise ModelError(f"{name} is empty; give one number per image channel, e.g. {name}={example}")
    return out


class PixelModel(nn.Module):
    """Wrap a segmentation network so that it maps images in [0, 1] to logits at input size.

    Args:
        net: any ``nn.Module`` taking normalised (B, C, H, W) images.
        mean: per-channel mean of the normalisation applied inside, in [0, 1] units: ``(x - mean) / std``, given in
            the channel order the network takes (B, G, R with ``bgr=True``). A network that normalises in 0-255
            units, ``(x255 - m255) / s255``, takes ``mean = m255 / 255`` and ``std = s255 / 255``.
        std: per-channel standard deviation of that normalisation, in the same units and order (a std above 1 is
            legal).
        num_classes: if given, the number of output channels is checked on every call (``None`` with
            ``class_names``: their number).
        bgr: for networks trained on OpenCV-read (B, G, R) images: the channels of the RGB input are flipped first,
            then normalised with ``mean``/``std`` (in B, G, R order). Images stay RGB everywhere else (attacks,
            budgets, saved PNGs).
        class_names: the name of every output class, in output order (optional; ``segattack.data.labels.
            label_names`` gives the defaults); kept as ``self.class_names`` for reports and ``--hide``.

    ``forward(images)``: (B, C, H, W) float in [0, 1] -> logits (B, K, H, W), differentiable w.r.t. the images.
    Images of another floating dtype than the network's (float64 images, a float32 network) are cast to the
    network's dtype inside, so any float images in [0, 1] work; integer images are refused (divide uint8 by 255).
    ``predict(images)``: (B, H, W) int64, the argmax of the logits, computed without gradients.

    Fast path (``set_fast_path``; off by default): ``amp`` ("bf16" or "fp16") runs the network's forward under
    autocast, so its backward runs in that precision too. ``predict`` stays float32, so what is measured is the
    network's own prediction; only the attacks' gradients change. The images, the normalisation and the returned
    logits stay float32, so losses, gradients to the images and the perturbation arithmetic of the attacks stay
    exact in 8-bit levels. ``channels_last`` feeds the network NHWC tensors (and converts its parameters).
    ``compile`` runs the network through ``torch.compile`` (compiled on the first call of each input shape; the
    state dict and ``model_fingerprint`` are those of the wrapped network).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        num_classes: int | None = None,
        bgr: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise ModelTypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        mean, std = _numbers(mean, "mean"), _numbers(std, "std")
        if len(mean) != len(std):
            raise ModelError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        if any(not 0 <= m <= 1 for m in mean):  # NaN and inf fail this too
            fix = "give finite numbers"
            if all(math.isfinite(m) for m in mean):
                fix = f"a mean in 0-255 units divides by 255: {tuple(round(m / 255, 4) for m in mean)}"
            raise ModelError(f"mean must be in [0, 1] units (images are in [0, 1]), got {tuple(mean)}; {fix}")
        if any(not (0 < v < math.inf) for v in std):  # NaN fails this too
            raise ModelError(
                f"std must be positive finite numbers in [0, 1] units, got {tuple(std)}; e.g. std=(0.229, 0.224, 0.225)"
            )
        if num_classes is not None:
            try:
                k = operator.index(num_classes) if not isinstance(num_classes, bool) else 0
            except TypeError:
                k = 0
            if k < 1:
                raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
            num_classes = k
        if bgr and len(mean) != 3:
            raise ModelError(f"bgr=True flips 3 colour channels, but mean/std have {len(mean)} values")
        names = tuple(str(n) for n in class_names) if class_names is not None else None
        if names is not None:
            if num_classes is None:
                num_classes = len(names)
            if len(names) != num_classes:
                raise ModelError(f"{len(names)} class names given for num_classes={num_classes}; give one per class")
        self.net = net
        self.num_classes = num_classes
        self.bgr = bool(bgr)
        self.class_names: tuple[str, ...] | None = names
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.amp: str | None = None
        self.channels_last = False
        self._compiled: nn.Module | None = None

    def set_fast_path(
        self, *, amp: str | None = None, channels_last: bool = False, compile: bool = False
    ) -> PixelModel:
        """Configure the GPU fast path (see the class docstring) and return ``self``. ``amp``: None, "bf16" or
        "fp16"; ``channels_last`` also converts the wrapped network's parameters to channels-last (values unchanged);
        ``compile`` wraps the network with ``torch.compile`` (the wrapper is kept outside the module tree, so the
        state dict is unchanged)."""
        if amp is not None and amp not in AMP_DTYPES:
            raise ConfigError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
        self.amp = amp
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # Not an attribute nn.Module registers: the compiled wrapper would add "_orig_mod." keys to the state dict.
        object.__setattr__(self, "_compiled", torch.compile(self.net) if compile else None)
        return self

    def extra_repr(self) -> str:
        parts = ["bgr=True"] if self.bgr else []
        if self.amp is not None:
            parts.append(f"amp={self.amp}")
        if self.channels_last:
            parts.append("channels_last=True")
        if self._compiled is not None:
            parts.append("compiled=True")
        return ", ".join(parts)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def input_dtype(self) -> torch.dtype | None:
        """The floating dtype of the wrapped network's first parameter (or buffer), which ``forward`` casts images
        to; None for a network without floating tensors (images then pass in their own dtype)."""
        for p in self.net.parameters():
            if p.is_floating_point():
                return p.dtype
        for b in self.net.buffers():
            if b.is_floating_point():
                return b.dtype
        return None

    def forward(self, images: Tensor, *, check: bool = True, amp: bool = True) -> Tensor:
        """(B, C, H, W) in [0, 1] -> logits (B, K, H, W). Images of any floating dtype are taken: float64 (or
        float16) images are cast to the network's dtype (``input_dtype``) on the way in, differentiably, so
        gradients reach them in their own dtype and attacks on float64 images return float64 images.
        ``check=False`` skips the value checks (range of the input, NaN and probability-like outputs) but never the
        shape checks; attacks use it after their first step, when the images are known to be valid. ``amp=False``
        runs this call in float32 even when the fast path's autocast is on (``predict`` does)."""
        if check:
            check_images(images)
        elif images.ndim != 4:
            raise InputError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
        if images.shape[1] != self.mean.shape[1]:
            raise InputError(
                f"images have {images.shape[1]} channels but mean/std have {self.mean.shape[1]}; "
                "pass mean=/std= with one value per channel"
            )
        dtype = self.input_dtype()
        if dtype is not None and images.dtype != dtype:
            images = images.to(dtype)  # float64 (or float16) images into a float32 network: cast, differentiably
        if self.bgr:
            images = images.flip(1)  # RGB -> BGR, then the normalisation in the network's channel order
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        net = self._compiled if self._compiled is not None else self.net
        with frozen(self.net):
            if self.amp is None or not amp:
                logits = extract_logits(net(x))
            else:
                with torch.autocast(x.device.type, dtype=AMP_DTYPES[self.amp]):
                    logits = extract_logits(net(x))
                logits = logits.float()  # losses and their gradients to the images in float32
        return self._check_logits(logits, images, values=check)

    def _check_logits(self, logits: Tensor, images: Tensor, *, values: bool = True) -> Tensor:
        if logits.ndim != 4:
            raise ModelError(
                f"model output must be logits of shape (B, K, h, w), got shape {tuple(logits.shape)}; "
                "a classification network or a flattened output cannot be attacked pixel-wise"
            )
        if logits.shape[0] != images.shape[0]:
            raise ModelError(f"model returned a batch of {logits.shape[0]} for {images.shape[0]} images")
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            named = f" ({len(self.class_names)} class names)" if self.class_names is not None else ""
            raise ModelError(
                f"model returned {logits.shape[1]} classes but num_classes={self.num_classes}{named}; "
                "check that the weights match the label space"
            )
        if not logits.is_floating_point():
            raise ModelTypeError(f"model output must be floating point logits, got {logits.dtype}")
        if values:
            with torch.no_grad():
                lo, hi = (float(v) for v in logits.aminmax())  # one pass; NaN and inf show up here
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    raise ModelError("model output contains NaN or infinite values")
                if logits.shape[1] > 1 and lo >= 0 and hi <= 1:
                    sums = logits.sum(dim=1)
                    if torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
                        raise ModelError(
                            "model output looks like probabilities (non-negative, summing to 1 over classes); "
                            "PixelModel needs logits: remove the final softmax"
                        )
        if logits.shape[-2:] != images.shape[-2:]:
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def predict(self, images: Tensor, *, batch_size: int | None = None) -> Tensor:
        """Argmax prediction (B, H, W) int64 for images (B, C, H, W) in [0, 1], in chunks of ``batch_size``.
        Always in float32: with the fast path's ``amp`` only the attacks' gradient passes run in lower precision,
        so clean and adversarial predictions (what is measured) are those of the network itself."""
        size = chunk_size(images.shape[0], batch_size)
        if size == images.shape[0]:
            return classes_of(self(images, amp=False))
        # The input is checked whole; the output's value checks (NaN, probabilities) on the first chunk only: they
        # concern the model, and cost a pass over the logits each.
        check_images(images)
        return torch.cat([classes_of(self(chunk, amp=False, check=j == 0))
                          for j, chunk in enumerate(images.split(size))])  # fmt: skip


def chunk_size(total: int, batch_size: int | None) -> int:
    """The images per call ``PixelModel.predict`` makes of ``total`` images: all of them, or ``batch_size``.

    >>> chunk_size(10, 4), chunk_size(3, 4), chunk_size(5, None)
    (4, 3, 5)
    """
    return total if batch_size is None or total <= batch_size else batch_size


def predict_slice(model: PixelModel, images: Tensor, *, start: int, total: int, batch_size: int | None) -> Tensor:
    """The prediction (n, H, W) of ``images`` (n, C, H, W) as ``model.predict`` makes it for them at positions
    ``start .. start + n`` of ``total`` images: every call that would hold some of them is rebuilt at its size and
    place (the other places zero-filled, which changes no other image's output), so the prediction is bit for bit
    that of the whole batch even where a kernel's rounding depends on the batch (the diagonal of a transfer matrix
    equals the experiment's rows this way)."""
    n = images.shape[0]
    size = chunk_size(total, batch_size)
    stop = start + n
    parts = []
    for c0 in range(0, total, size):
        c1 = min(c0 + size, total)
        lo, hi = max(c0, start), min(c1, stop)
        if lo >= hi:
            continue
        chunk = images.new_zeros((c1 - c0, *images.shape[1:]))
        chunk[lo - c0 : hi - c0] = images[lo - start : hi - start]
        parts.append(model.predict(chunk)[lo - c0 : hi - c0])
    return torch.cat(parts)


@contextlib.contextmanager
def model_errors(*, on: str, name: str | None = None, when: str | None = None) -> Iterator[None]:
    """Turn what the user's model raises inside the block into one ``ModelError`` line that names the model and the
    input it ran on (the traceback stays as the error's cause, shown with ``--verbose``).

    ``on``: the input (``"image 0003"``, ``"a 64x64 test image"``); ``name``: the model as the user named it (its
    ``spec``), or None for "the model"; ``when``: what the pass was for, added to the message. A ``ValueError``
    (an output that does not fit: probabilities, a wrong class count or shape) reads ``<model> does not fit (on <on>,
    <when>): <error>``; anything else ``<model> failed on <on> (<when>): <type>: <error>``. segattack's own errors
    pass unchanged, except that a named model's ``ModelError`` without a ``spec`` is said to be that model's.
    """
    who = "the model" if name is None else f"model {name}"
    fit = f"(on {on}, {when})" if when else f"(on {on})"
    failed = f"on {on} ({when})" if when else f"on {on}"
    try:
        yield
    except ModelError as err:  # PixelModel's checks of the output: name the model where the user named it
        if name is None or err.spec is not None:
            raise
        raise ModelError(f"{who} does not fit {fit}: {err}", spec=name) from err
    except SegattackError:
        raise
    except ValueError as err:
        raise ModelError(f"{who} does not fit {fit}: {err}", spec=name) from err
    except Exception as err:  # the user's network itself failed: one line here, the traceback with --verbose
        raise ModelError(f"{who} failed {failed}: {type(err).__name__}: {err}", spec=name) from err


def first_pass(model: Callable[[Tensor], Any], images: Tensor, *, on: str, name: str | None = None) -> Tensor:
    """Run the user's model once, without gradients, before a job starts: its logits (B, K, H, W) for ``images``
    (B, 3, H, W) in [0, 1], so that a model that fails or does not fit is refused in one line naming the model
    and the image (``model_errors``) before anything is written.
    """
    with model_errors(on=on, name=name), torch.no_grad():
        logits: Tensor = model(images)
    return logits


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over a model's state dict (names, shapes, dtypes and values) and, for a ``PixelModel``, its
    normalisation (and channel order): two runs with the same fingerprint used the same network."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        t = value.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if isinstance(model, PixelModel):
        digest.update(repr((model.mean.flatten().tolist(), model.std.flatten().tolist())).encode())
        if model.bgr:  # only then, so that the fingerprints of RGB models stay what they were
            digest.update(b"|bgr")
    return digest.hexdigest()
