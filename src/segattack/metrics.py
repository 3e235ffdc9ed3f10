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
    "WorstCaseMiou",
    "worst_case_miou",
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


@dataclass(frozen=True)
class WorstCaseMiou:
    """What ``worst_case_miou`` found: the data set's mean IoU under the chosen losses, the loss chosen for each
    image ((N,) int64 indices into the first axis of the confusion matrices), the mean IoU the descent started from,
    and the rounds over the images it took (the last round changed nothing, unless ``max_rounds`` stopped it)."""

    miou: float
    choice: Tensor
    start: float
    rounds: int


def _miou_of(inter: Tensor, union: Tensor, keep: Tensor) -> Tensor:
    """Mean IoU over the last axis (classes) from summed intersections and unions: classes with a union > 0 that
    ``keep`` allows; NaN where none is left. Shapes (..., K) -> (...)."""
    present = (union > 0) & keep
    iou_k = torch.where(present, inter / union.clamp(min=1), torch.zeros_like(inter))
    n = present.sum(-1)
    return torch.where(n > 0, iou_k.sum(-1) / n.clamp(min=1), torch.full_like(iou_k[..., 0], math.nan))


def worst_case_miou(
    confusions: Tensor, *, exclude: Sequence[int] = (), seed: int = 0, max_rounds: int = 1000
) -> WorstCaseMiou:
    """SEA's worst-case mean IoU over several attacks (Croce, Singh and Hein 2024, "Towards reliable evaluation and
    fast training of robust semantic segmentation models", Sec. 3.6): the mean IoU of a data set when, for every
    image, the attack (loss) whose adversarial image hurts the data set's mean IoU most is chosen. mIoU is not a sum
    over images, so the choice is made greedily for the data set, not image by image.

    ``confusions``: (L, N, K, K) counts, L attacks, N images, rows ground truth, columns prediction (``ignore_index``
    pixels already left out, as ``confusion_matrix`` leaves them). ``exclude``: output classes left out of the mean
    (as ``mean_iou``). Per class IoU = TP / (TP + FP + FN) over the data set; the mean is over the classes whose union
    is > 0 under the current choice.

    What is matched from SEA's ``tools/worse_only.py`` (``worst_case_miou``): per-image, per-class intersections and
    unions for every loss; a running data-set intersection and union; rounds that visit the images in a random order,
    try every loss for the image by swapping its contribution in the running sums, and keep a change that lowers the
    data set's mean IoU; rounds repeat until one no longer helps, at most ``max_rounds`` (their 1000). What differs,
    each on purpose:

    - start: SEA starts every image at its first loss (masked balanced CE); here the start is the lowest of the L
      single-attack assignments and the per-image choice of the lowest pixel accuracy (the latest attack on a tie), so
      the result is never above any of them (the descent only lowers it);
    - acceptance: SEA compares each candidate with the mean IoU at the start of the round (recomputed only after the
      round), so a change within a round can raise the current value, and it tries the losses one after another; here
      the image gets the loss with the lowest mean IoU given all other images' current choices, kept only if it is
      strictly lower than the current value (ties keep the current choice): every change lowers the mean IoU;
    - classes: SEA's candidate value leaves out classes whose running union was 0 before the change (a class the
      change makes appear counts only from the next round); here every candidate is the exact mean IoU it would give,
      without SEA's 1e-8 in the denominator;
    - ignored pixels: SEA's union counts predictions of a class on pixels labelled 255 too; here such pixels are left
      out entirely (the confusion matrices of ``confusion_matrix``, as the Cityscapes benchmark and ``evaluate``);
    - order and stop: the image order of each round is a ``torch.randperm`` seeded with ``seed`` (SEA: Python's
      ``random`` with seed 225); the descent stops after a round that changed nothing (a local minimum: no single
      image's change lowers the mean IoU) rather than after one that lowered it by at most 1e-6.

    >>> cm = torch.zeros(2, 2, 2, 2, dtype=torch.int64)  # 2 attacks, 2 images, 2 classes
    >>> cm[0, 0] = torch.tensor([[4, 0], [0, 4]]); cm[1, 0] = torch.tensor([[2, 2], [0, 4]])
    >>> cm[0, 1] = torch.tensor([[4, 0], [2, 2]]); cm[1, 1] = torch.tensor([[4, 0], [0, 4]])
    >>> w = worst_case_miou(cm)
    >>> w.choice.tolist(), round(w.miou, 4), round(mean_iou(cm[0].sum(0)), 4), round(mean_iou(cm[1].sum(0)), 4)
    ([1, 0], 0.6, 0.775, 0.775)
    """
    if not isinstance(confusions, Tensor) or confusions.ndim != 4 or confusions.shape[-1] != confusions.shape[-2]:
        shape = tuple(confusions.shape) if isinstance(confusions, Tensor) else type(confusions).__name__
        raise InputError(f"confusions must be an (L, N, K, K) tensor of counts (L attacks, N images), got {shape}")
    if confusions.shape[0] < 1 or confusions.shape[1] < 1:
        raise InputError(f"confusions needs at least one attack and one image, got shape {tuple(confusions.shape)}")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise InputError(f"max_rounds must be a positive integer, got {max_rounds!r}")
    n_att, n_img, k = confusions.shape[0], confusions.shape[1], confusions.shape[2]
    cm = confusions.detach().to("cpu", torch.float64)
    inter = cm.diagonal(dim1=-2, dim2=-1)  # (L, N, K)
    union = cm.sum(-1) + cm.sum(-2) - inter
    keep = torch.ones(k, dtype=torch.bool)
    if exclude:
        keep[list(exclude)] = False
    # the candidates to start from: each attack for every image, and the per-image lowest pixel accuracy
    total = cm.sum((-2, -1))
    acc = torch.where(total > 0, inter.sum(-1) / total.clamp(min=1), torch.full_like(total, math.inf))
    flipped = acc.flip(0)  # argmin takes the first minimum: on the flipped axis, the latest attack on a tie
    by_accuracy = (n_att - 1) - flipped.argmin(0)
    starts = [torch.full((n_img,), a, dtype=torch.int64) for a in range(n_att)] + [by_accuracy]
    cols = torch.arange(n_img)

    def sums(choice: Tensor) -> tuple[Tensor, Tensor]:
        return inter[choice, cols].sum(0), union[choice, cols].sum(0)

    values = [float(_miou_of(*sums(c), keep)) for c in starts]
    best = min(range(len(starts)), key=lambda j: (math.inf if math.isnan(values[j]) else values[j], j))
    choice = starts[best].clone()
    run_i, run_u = sums(choice)
    current = values[best]
    start = current
    g = torch.Generator().manual_seed(int(seed))
    rounds = 0
    while rounds < max_rounds and n_att > 1:
        rounds += 1
        changed = False
        for i in torch.randperm(n_img, generator=g).tolist():
            c = int(choice[i])
            cand = _miou_of(run_i - inter[c, i] + inter[:, i], run_u - union[c, i] + union[:, i], keep)  # (L,)
            cand = torch.where(cand.isnan(), torch.full_like(cand, math.inf), cand)
            a = int(cand.argmin())
            if a != c and float(cand[a]) < current:
                run_i = run_i - inter[c, i] + inter[a, i]
                run_u = run_u - union[c, i] + union[a, i]
                choice[i] = a
                current = float(_miou_of(run_i, run_u, keep))
                changed = True
        if not changed:
            break
    return WorstCaseMiou(miou=current, choice=choice, start=start, rounds=rounds)
