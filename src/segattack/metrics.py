"""Measures: hiding metrics of Fischer et al. (2017), perturbation norms, PSNR, SSIM, confusion matrix and IoU.

Every quantity is defined once here and reused by attacks, experiments, reports and tests. Rates are fractions in
[0, 1] (reports print them as percentages); per-image values come back as (B,) tensors.

>>> import torch
>>> clean = torch.tensor([[[11, 11, 0, 0]]])
>>> adv = torch.tensor([[[11, 0, 0, 1]]])
>>> m = hiding_metrics(clean, adv, class_id=11)
>>> m.fooled.tolist(), m.preserved.tolist(), m.class_pixels.tolist()
([0.5], [0.5], [2])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InputError
from .targets import check_prediction, class_id_tuple, hidden_mask, hide_class_target

__all__ = [
    "HidingMetrics",
    "hiding_metrics",
    "Summary",
    "summarize",
    "perturbation_norms",
    "psnr",
    "ssim",
    "SSIM_WINDOW",
    "SSIM_SIGMA",
    "confusion_matrix",
    "sparse_confusion",
    "dense_confusion",
    "iou",
    "mean_iou",
    "pixel_accuracy",
    "pixel_success",
]


@dataclass(frozen=True)
class HidingMetrics:
    """Per-image hiding measures, each a (B,) tensor.

    fooled: share of the pixels predicted as a hidden class on the clean image that are predicted as no hidden class
        on the adversarial image; NaN for an image without such pixels (count those apart, never average them in).
    preserved: share of the other pixels whose adversarial prediction equals the clean prediction; NaN if none.
    target_hit: share of all pixels whose adversarial prediction equals the adversarial target.
    class_pixels: number of hidden-class pixels in the clean prediction (int64).
    """

    fooled: Tensor
    preserved: Tensor
    target_hit: Tensor
    class_pixels: Tensor

    def rows(self) -> list[dict[str, float | int]]:
        """One plain dict per image (NaN stays NaN)."""
        return [
            {"fooled": float(f), "preserved": float(p), "target_hit": float(t), "class_pixels": int(c)}
            for f, p, t, c in zip(
                self.fooled.tolist(),
                self.preserved.tolist(),
                self.target_hit.tolist(),
                self.class_pixels.tolist(),
                strict=True,
            )
        ]


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    den_f = den.to(torch.float64)
    return torch.where(den > 0, num.to(torch.float64) / den_f.clamp(min=1), torch.full_like(den_f, math.nan))


def hiding_metrics(
    clean_pred: Tensor, adv_pred: Tensor, *, class_id: int | Sequence[int], target: Tensor | None = None
) -> HidingMetrics:
    """Hiding measures of Fischer et al. (2017) for predictions (B, H, W) on clean and adversarial images.

    ``target`` defaults to ``hide_class_target(clean_pred, class_id=class_id)``; for an image that is all hidden
    class (no target exists) target_hit is NaN.
    """
    check_prediction(clean_pred, name="clean_pred")
    check_prediction(adv_pred, name="adv_pred")
    if clean_pred.shape != adv_pred.shape:
        raise InputError(f"clean_pred {tuple(clean_pred.shape)} and adv_pred {tuple(adv_pred.shape)} differ in shape")
    ids = class_id_tuple(class_id)
    hidden = hidden_mask(clean_pred, ids)
    adv_hidden = hidden_mask(adv_pred, ids)
    class_pixels = hidden.flatten(1).sum(1)
    fooled = _ratio((hidden & ~adv_hidden).flatten(1).sum(1), class_pixels)
    rest = ~hidden
    preserved = _ratio((rest & (adv_pred == clean_pred)).flatten(1).sum(1), rest.flatten(1).sum(1))
    n_pix = clean_pred[0].numel()
    if target is None:
        hit = torch.full((clean_pred.shape[0],), math.nan, dtype=torch.float64)
        ok = ~hidden.flatten(1).all(1)
        if bool(ok.any()):
            tgt = hide_class_target(clean_pred[ok], class_id=ids)
            hit[ok.cpu()] = (adv_pred[ok] == tgt).flatten(1).sum(1).to(torch.float64).cpu() / n_pix
        hit = hit.to(clean_pred.device)
    else:
        check_prediction(target, name="target")
        if target.shape != clean_pred.shape:
            raise InputError(f"target {tuple(target.shape)} and clean_pred {tuple(clean_pred.shape)} differ in shape")
        hit = (adv_pred == target).flatten(1).sum(1).to(torch.float64) / n_pix
    return HidingMetrics(fooled=fooled, preserved=preserved, target_hit=hit, class_pixels=class_pixels)


@dataclass(frozen=True)
class Summary:
    """Mean and standard deviation (population, ddof=0, as numpy's default) over the finite values.

    count: how many values entered; missing: how many were NaN (e.g. images without the hidden class).
    """

    mean: float
    std: float
    count: int
    missing: int


def summarize(values: Tensor | Iterable[float]) -> Summary:
    """Aggregate per-image values into mean, std (ddof=0) and counts, leaving NaN out and counting it.

    >>> summarize([0.5, 1.0, float("nan")])
    Summary(mean=0.75, std=0.25, count=2, missing=1)
    """
    t = (
        values.detach().to(torch.float64).flatten().cpu()
        if isinstance(values, Tensor)
        else torch.tensor([float(v) for v in values], dtype=torch.float64)
    )
    finite = t[~torch.isnan(t)]
    missing = int(t.numel() - finite.numel())
    if finite.numel() == 0:
        return Summary(math.nan, math.nan, 0, missing)
    return Summary(float(finite.mean()), float(finite.std(unbiased=False)), int(finite.numel()), missing)


def perturbation_norms(adv: Tensor, images: Tensor) -> dict[str, Tensor]:
    """Per-image norms of ``adv - images`` in 8-bit levels: ``linf``, ``l2`` (over all C*H*W values), ``mean_abs``,
    and ``psnr`` (as ``psnr`` gives it, from the same difference: one pass less for a caller that needs both).

    Shapes: (B, C, H, W) -> (B,) float64 each.
    """
    if adv.shape != images.shape:
        raise InputError(f"adv {tuple(adv.shape)} and images {tuple(images.shape)} differ in shape")
    d = (adv.detach().to(torch.float64) - images.detach().to(torch.float64)).flatten(1)
    mse = d.pow(2).mean(1)
    d = d.abs_().mul_(255)
    return {"linf": d.amax(1), "l2": mse.mul(d.shape[1]).sqrt().mul(255), "mean_abs": d.mean(1), "psnr": _psnr(mse)}


def _psnr(mse: Tensor) -> Tensor:
    """PSNR in dB of images in [0, 1] from their mean squared difference; +inf where it is 0."""
    return torch.where(mse > 0, -10 * torch.log10(mse.clamp(min=1e-300)), torch.full_like(mse, math.inf))


def psnr(adv: Tensor, images: Tensor) -> Tensor:
    """Per-image peak signal-to-noise ratio in dB for images in [0, 1]; +inf where identical. (B,) float64."""
    if adv.shape != images.shape:
        raise InputError(f"adv {tuple(adv.shape)} and images {tuple(images.shape)} differ in shape")
    return _psnr((adv.detach().to(torch.float64) - images.detach().to(torch.float64)).pow(2).flatten(1).mean(1))


#: SSIM's Gaussian window (Wang et al. 2004): 11 x 11 pixels, sigma 1.5 pixels; constants K1 = 0.01, K2 = 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def ssim(adv: Tensor, images: Tensor) -> Tensor:
    """Per-image structural similarity (Wang et al. 2004) of ``adv`` to ``images``, (B, 3, H, W) in [0, 1] ->
    (B,) float64, 1 where identical.

    Both are first rounded to 8-bit levels (what a saved PNG holds), then compared with ``pytorch_msssim.ssim`` at
    ``data_range=1``: a Gaussian window of ``SSIM_WINDOW`` = 11 pixels with sigma ``SSIM_SIGMA`` = 1.5, applied
    without padding (only windows fully inside the image count), K1 = 0.01, K2 = 0.03, the SSIM map averaged over
    pixels and then over the colour channels. Images under 11 pixels on a side use the largest odd window that fits.
    No gradient; float32 (float64 where the images are).

    Cost: windows that see no changed pixel have SSIM exactly 1, so each image is computed on the bounding box of its
    changed pixels widened by the window (a perturbation restricted to person pixels costs a fraction of a whole
    image), images with the same box in one call, in channels-last memory (depthwise convolutions there run several
    times faster on the CPU).

    >>> import torch
    >>> x = torch.rand(1, 3, 16, 16)
    >>> float(ssim(x, x)[0])
    1.0
    """
    from pytorch_msssim import ssim as _ssim

    if adv.shape != images.shape:
        raise InputError(f"adv {tuple(adv.shape)} and images {tuple(images.shape)} differ in shape")
    if adv.ndim != 4:
        raise InputError(f"ssim takes (B, C, H, W) images, got shape {tuple(adv.shape)}")
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    h, w = adv.shape[-2:]
    win = min(SSIM_WINDOW, h, w)
    win -= 1 - win % 2  # odd
    full = (h - win + 1) * (w - win + 1)
    out = torch.ones(adv.shape[0], dtype=torch.float64)
    with torch.no_grad():
        x = (adv.detach().to(dtype) * 255).round().clamp(0, 255)
        y = (images.detach().to(dtype) * 255).round().clamp(0, 255)
        changed = (x != y).any(1)  # (B, H, W)
        boxes: dict[tuple[int, int, int, int], list[int]] = {}  # images with the same box go in one call
        for j in range(adv.shape[0]):
            rows = changed[j].any(1).nonzero()
            if rows.numel() == 0:
                continue  # identical: SSIM 1
            cols = changed[j].any(0).nonzero()
            r0, r1 = max(0, int(rows[0]) - win + 1), min(h, int(rows[-1]) + win)
            c0, c1 = max(0, int(cols[0]) - win + 1), min(w, int(cols[-1]) + win)
            boxes.setdefault((r0, r1, c0, c1), []).append(j)
        for (r0, r1, c0, c1), js in boxes.items():
            pick = torch.tensor(js, device=x.device)
            xs = (x[pick, :, r0:r1, c0:c1] / 255).contiguous(memory_format=torch.channels_last)
            ys = (y[pick, :, r0:r1, c0:c1] / 255).contiguous(memory_format=torch.channels_last)
            values = _ssim(xs, ys, data_range=1.0, size_average=False, win_size=win, win_sigma=SSIM_SIGMA)
            inside = (r1 - r0 - win + 1) * (c1 - c0 - win + 1)  # windows in the crop; all others are exactly 1
            out[js] = 1 - inside / full * (1 - values.detach().to("cpu", torch.float64))
    return out.to(adv.device)


def confusion_matrix(pred: Tensor, truth: Tensor, *, num_classes: int, ignore_index: int = 255) -> Tensor:
    """(K, K) int64 counts, rows = ground truth, columns = prediction; ``ignore_index`` pixels of ``truth`` skipped.

    Ground-truth ids other than ``ignore_index`` outside 0..K-1 raise; predictions must lie in 0..K-1.
    """
    if pred.shape != truth.shape:
        raise InputError(f"pred {tuple(pred.shape)} and truth {tuple(truth.shape)} differ in shape")
    keep = truth != ignore_index
    t = truth[keep].to(torch.int64)
    p = pred[keep].to(torch.int64)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise InputError(f"ground truth holds ids outside 0..{num_classes - 1} and not {ignore_index} (ignore)")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise InputError(f"prediction holds ids outside 0..{num_classes - 1}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


def sparse_confusion(cm: Tensor) -> list[list[int]]:
    """A (K, K) confusion matrix as its non-zero ``[truth, prediction, count]`` triples (compact JSON, one per
    result row).

    >>> sparse_confusion(torch.tensor([[3, 0], [1, 0]]))
    [[0, 0, 3], [1, 0, 1]]
    """
    nz = cm.nonzero().tolist()
    return [[int(t), int(p), int(cm[t, p])] for t, p in nz]


def dense_confusion(triples: Sequence[Sequence[int]], num_classes: int) -> Tensor:
    """The inverse of ``sparse_confusion``: (K, K) int64; triples of several rows add up (a data set's matrix from
    its images' rows)."""
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for t, p, n in triples:
        cm[int(t), int(p)] += int(n)
    return cm


def iou(cm: Tensor) -> Tensor:
    """Per-class intersection over union from a confusion matrix; NaN for classes absent from both.

    The mean IoU over present classes is ``iou(cm).nanmean()``.

    >>> iou(torch.tensor([[3, 1], [0, 0]])).tolist()
    [0.75, 0.0]
    """
    cm = cm.to(torch.float64)
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, math.nan))


def mean_iou(cm: Tensor, *, exclude: Sequence[int] = ()) -> float:
    """Mean of ``iou(cm)`` over the classes present in ground truth or prediction, leaving out ``exclude`` (a void
    output class: its pixels still count as misses of the true class, as in the Cityscapes benchmark); NaN if no
    class is left.

    >>> mean_iou(torch.tensor([[3, 1], [0, 0]]))
    0.375
    >>> mean_iou(torch.tensor([[3, 1], [0, 0]]), exclude=[1])
    0.75
    """
    values = iou(cm)
    if exclude:
        values = values.clone()
        values[list(exclude)] = math.nan
    return float(values.nanmean()) if bool((~values.isnan()).any()) else math.nan


def pixel_accuracy(cm: Tensor) -> float:
    """Share of counted (non-ignored) pixels predicted right, from a confusion matrix; NaN if none was counted.

    >>> pixel_accuracy(torch.tensor([[3, 1], [0, 0]]))
    0.75
    """
    total = int(cm.sum())
    return float(cm.diag().sum()) / total if total else math.nan


def pixel_success(pred: Tensor, labels: Tensor, *, targeted: bool, ignore_index: int = 255) -> Tensor:
    """Per-image share of the counted pixels (``labels != ignore_index``) where an attack succeeds: the prediction
    equals the target (``targeted=True``) or differs from the labels (``targeted=False``). NaN where no pixel counts.

    This is the objective by which attacks keep their best iterate and ``worst_case`` picks its result.
    Shapes: (B, H, W) and (B, H, W) -> (B,) float64.

    >>> labels = torch.tensor([[[1, 1, 2, 255]]])
    >>> pixel_success(torch.tensor([[[1, 0, 0, 0]]]), labels, targeted=False).tolist()
    [0.6666666666666666]
    >>> pixel_success(torch.tensor([[[1, 0, 0, 0]]]), labels, targeted=True).tolist()
    [0.3333333333333333]
    """
    if pred.shape != labels.shape:
        raise InputError(f"pred {tuple(pred.shape)} and labels {tuple(labels.shape)} differ in shape")
    valid = labels != ignore_index
    hit = (pred == labels) if targeted else (pred != labels)
    return _ratio((hit & valid).flatten(1).sum(1), valid.flatten(1).sum(1))
