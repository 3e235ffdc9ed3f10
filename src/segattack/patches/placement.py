"""Where a patch goes in an image, and the pasting itself (pure tensor maths, differentiable in the patch).

A placement (``Placement``) says how large the patch is (pixels, or a share of the image's area), where its box is
(fixed top-left corner, centred, or anywhere on a region of given classes of the clean prediction) and whether it is
seen in perspective (``tilt``: a billboard beside the road, its far edge shorter). The box and the tilt give a
quadrilateral (its four corners, ``quad_of``), or the quad is given outright (``corners``), and ``paste`` warps the
rectangular patch onto it:

- the 3x3 homography between the patch's corners and the quad's comes from the 8x8 direct linear transform
  (``homography``, solved in float64);
- every destination pixel centre is mapped back into the patch by the inverse homography (computed directly from
  the swapped point pairs) and the patch is sampled there with ``torch.nn.functional.grid_sample`` (bilinear, so
  the pasted image is differentiable in the patch);
- the coverage mask m (B, 1, H, W) is 1 where the pixel centre falls inside the patch, else 0, and the result is
  ``image * (1 - m) + warped * m``: every pixel outside the mask is bit for bit the input.

Coordinates: x to the right, y down, in pixels, with pixel (i, j)'s centre at (j + 0.5, i + 0.5); corners are
listed top-left, top-right, bottom-right, bottom-left, as (x, y). A quad that is an axis-aligned box of whole pixels
the size of the patch is pasted by copying (the patch's values exactly, no resampling).

>>> import torch
>>> images, patch = torch.zeros(1, 3, 6, 8), torch.ones(3, 2, 3)
>>> out, mask = paste(images, patch, quad_of((1, 2, 2, 3))[None])
>>> mask[0, 0].nonzero().tolist()
[[1, 2], [1, 3], [1, 4], [2, 2], [2, 3], [2, 4]]
>>> Placement(size=(2, 3), at=(1, 2)).boxes((6, 8))
[(1, 2, 2, 3)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, InputTypeError
from ..models import check_images
from ..targets import check_prediction, class_id_tuple, hidden_mask

__all__ = ["Placement", "Box", "homography", "quad_of", "paste", "check_patch", "region_positions"]

#: A patch's box in an image: (top, left, height, width) in pixels.
Box = tuple[int, int, int, int]


def check_patch(patch: Any, *, name: str = "patch") -> None:
    """A patch: a float tensor (3, h, w) with values in [0, 1] (``InputError`` / ``InputTypeError`` otherwise)."""
    if not isinstance(patch, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor (3, h, w) in [0, 1], got {type(patch).__name__}")
    if patch.ndim != 3 or patch.shape[0] != 3 or not patch.is_floating_point():
        raise InputError(f"{name} must be a float tensor (3, h, w) in [0, 1], got {patch.dtype} {tuple(patch.shape)}")
    if min(patch.shape[1:]) < 1:
        raise InputError(f"{name} is empty: {tuple(patch.shape)}")
    lo, hi = (float(v) for v in patch.detach().aminmax())
    if not (lo >= 0 and hi <= 1):
        raise InputError(
            f"{name} must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); a patch is an image, not a delta"
        )


def _check_corners(pts: Tensor) -> None:
    """(B, 4, 2): refuse any three of four points on one line (twice the triangle's area below 1e-9 of the span^2)."""
    span = (pts.amax(1) - pts.amin(1)).amax(-1).clamp(min=1e-300)
    for i, j, k in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)):
        a, b = pts[:, j] - pts[:, i], pts[:, k] - pts[:, i]
        area2 = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).abs()
        if bool((area2 <= 1e-9 * span**2).any()) or not bool(torch.isfinite(pts).all()):
            raise InputError("homography: degenerate corners (three of the four points on one line, or not finite)")


def homography(src: Tensor, dst: Tensor) -> Tensor:
    """The 3x3 homography H mapping each of 4 points ``src`` onto ``dst`` (H [x, y, 1]^T ~ [u, v, 1]^T), by the
    direct linear transform with h33 = 1: an 8x8 linear system per batch item, solved in float64.

    Args:
        src, dst: (4, 2) or (B, 4, 2) point pairs (x, y); no three of either set on one line.

    Returns:
        (3, 3) or (B, 3, 3) float64.

    >>> sq = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    >>> H = homography(sq, 2 * sq + 3)
    >>> (H @ torch.tensor([1.0, 1, 1], dtype=torch.float64)).tolist()
    [5.0, 5.0, 1.0]
    """
    single = src.ndim == 2
    s = src.to(torch.float64).reshape(-1, 4, 2)
    d = dst.to(torch.float64).reshape(-1, 4, 2)
    if s.shape != d.shape:
        raise InputError(f"homography needs as many source as destination points, got {tuple(src.shape)} and "
                         f"{tuple(dst.shape)}")  # fmt: skip
    for pts in (s, d):
        _check_corners(pts)
    x, y, u, v = s[..., 0], s[..., 1], d[..., 0], d[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1)  # (B, 8, 8)
    b = torch.cat([u, v], 1)  # (B, 8)
    try:
        h = torch.linalg.solve(a, b)
    except RuntimeError:  # torch.linalg.LinAlgError: a singular system
        raise InputError("homography: degenerate corners (three of the four points on one line)") from None
    out = torch.cat([h, torch.ones_like(h[:, :1])], 1).reshape(-1, 3, 3)
    return out[0] if single else out


def quad_of(box: Box, tilt: float = 0.0) -> Tensor:
    """The quad (4, 2) of corners (x, y) (top-left, top-right, bottom-right, bottom-left) of a box
    (top, left, height, width), seen in perspective by ``tilt`` in (-1, 1): a positive tilt shortens the right edge to
    (1 - tilt) of the box's height (centred vertically, as a billboard whose right end is farther from the camera), a
    negative one the left edge; 0: the box itself.

    >>> quad_of((0, 0, 4, 2), 0.5).tolist()
    [[0.0, 0.0], [2.0, 1.0], [2.0, 3.0], [0.0, 4.0]]
    """
    top, left, h, w = (float(v) for v in box)
    inset_r = h * max(tilt, 0.0) / 2
    inset_l = h * max(-tilt, 0.0) / 2
    return torch.tensor(
        [
            [left, top + inset_l],
            [left + w, top + inset_r],
            [left + w, top + h - inset_r],
            [left, top + h - inset_l],
        ],
        dtype=torch.float64,
    )


def _exact_box(quad: Tensor, ph: int, pw: int) -> Box | None:
    """The box (top, left, ph, pw) when ``quad`` is exactly that axis-aligned box of whole pixels, else None."""
    q = quad.to(torch.float64)
    if not bool((q == q.round()).all()):
        return None
    left, top = float(q[0, 0]), float(q[0, 1])
    expect = quad_of((int(top), int(left), ph, pw))
    return (int(top), int(left), ph, pw) if bool((q == expect).all()) else None


def _warp_one(patch: Tensor, quad: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """One image's warped patch (3, H, W) and coverage mask (1, H, W), both in the patch's dtype. Only the quad's
    bounding box (clipped to the image) is sampled: the cost follows the patch's size, not the image's."""
    c, ph, pw = patch.shape
    h, w = size
    q = quad.to(torch.float64).cpu()
    x0, y0 = max(0, math.floor(float(q[:, 0].min()))), max(0, math.floor(float(q[:, 1].min())))
    x1, y1 = min(w, math.ceil(float(q[:, 0].max()))), min(h, math.ceil(float(q[:, 1].max())))
    if x1 <= x0 or y1 <= y0:  # wholly outside the image
        return patch.new_zeros((c, h, w)), patch.new_zeros((1, h, w))
    corners = torch.tensor([[0.0, 0.0], [pw, 0.0], [pw, ph], [0.0, ph]], dtype=torch.float64)
    inv = homography(q, corners)  # image -> patch coordinates
    # the sign of the projective denominator inside the quad (the line where it is 0 never crosses the quad)
    centre = torch.cat([q.mean(0), torch.ones(1, dtype=torch.float64)]) @ inv.T
    inv = (inv if float(centre[2]) > 0 else -inv).to(patch.device)
    ys = torch.arange(y0, y1, dtype=torch.float64, device=patch.device) + 0.5
    xs = torch.arange(x0, x1, dtype=torch.float64, device=patch.device) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], -1) @ inv.T  # (y1 - y0, x1 - x0, 3)
    den = pts[..., 2]
    px, py = pts[..., 0] / den, pts[..., 1] / den
    inside = (den > 0) & (px >= 0) & (px < pw) & (py >= 0) & (py < ph)
    grid = torch.stack([2 * px / pw - 1, 2 * py / ph - 1], -1).where(inside[..., None], torch.zeros(()).to(px))
    crop = F.grid_sample(patch[None], grid[None].to(patch.dtype), mode="bilinear", padding_mode="border",
                         align_corners=False)[0]  # fmt: skip
    pad = (x0, w - x1, y0, h - y1)
    return F.pad(crop, pad), F.pad(inside[None].to(patch.dtype), pad)


def paste(images: Tensor, patch: Tensor, quads: Tensor | Sequence[Tensor | None]) -> tuple[Tensor, Tensor]:
    """Paste a patch onto every image, warped onto that image's quad.

    Args:
        images: (B, C, H, W) float in [0, 1]; not modified.
        patch: (3, h, w) in [0, 1] (may require grad: the result is differentiable in it), or (B, 3, h, w): one
            (transformed) patch per image.
        quads: (B, 4, 2) corners (x, y) in pixels, top-left, top-right, bottom-right, bottom-left (``quad_of``); or
            a sequence with None for an image that gets no patch (its mask is all 0).

    Returns:
        (pasted (B, C, H, W) in the images' dtype, mask (B, 1, H, W) of 0 and 1): ``images * (1 - m) + warped * m``,
        so every pixel where m = 0 is bit for bit the input.
    """
    check_images(images)
    b, _, h, w = images.shape
    per_image = patch.ndim == 4
    if per_image and patch.shape[0] != b:
        raise InputError(f"{patch.shape[0]} patches for {b} images: pass one patch (3, h, w) or one per image")
    for j in range(patch.shape[0] if per_image else 1):
        check_patch(patch[j] if per_image else patch)
    if len(quads) != b:
        raise InputError(f"{len(quads)} quads for {b} images: give one (4, 2) quad (or None) per image")
    warped_all: list[Tensor] = []
    masks: list[Tensor] = []
    for j in range(b):
        pj = (patch[j] if per_image else patch).to(images.dtype)
        quad = quads[j]
        if quad is None:
            warped_all.append(torch.zeros_like(images[j]))
            masks.append(torch.zeros_like(images[j, :1]))
            continue
        if tuple(quad.shape) != (4, 2):
            raise InputError(f"a quad is 4 corners (x, y): shape (4, 2), got {tuple(quad.shape)}")
        box = _exact_box(quad, int(pj.shape[1]), int(pj.shape[2]))
        if box is not None and box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= h and box[1] + box[3] <= w:
            top, left, ph, pw = box
            canvas = F.pad(pj.to(images.device), (left, w - left - pw, top, h - top - ph))
            mask = torch.zeros((1, h, w), dtype=pj.dtype, device=images.device)
            mask[:, top : top + ph, left : left + pw] = 1
            warped_all.append(canvas)
            masks.append(mask)
            continue
        warped, mask = _warp_one(pj.to(images.device), quad, (h, w))
        warped_all.append(warped)
        masks.append(mask)
    m = torch.stack(masks).detach()
    warped_b = torch.stack(warped_all)
    return images * (1 - m) + warped_b * m, m


def region_positions(pred: Tensor, classes: Sequence[int], size: tuple[int, int]) -> Tensor:
    """(B, H - h + 1, W - w + 1) bool: the top-left corners (y, x) whose box of ``size`` = (h, w) lies wholly on
    pixels of ``classes`` in the prediction ``pred`` (B, H, W) (an empty last axes where the box is larger than the
    image).

    >>> pred = torch.tensor([[[1, 1, 0], [1, 1, 0], [0, 0, 0]]])
    >>> region_positions(pred, (1,), (2, 2)).tolist()
    [[[True, False], [False, False]]]
    """
    check_prediction(pred)
    h, w = size
    b, hh, ww = pred.shape
    if h > hh or w > ww:
        return torch.zeros((b, max(hh - h + 1, 0), max(ww - w + 1, 0)), dtype=torch.bool)
    region = hidden_mask(pred, class_id_tuple(tuple(classes))).to(torch.float64)[:, None]
    sums = F.avg_pool2d(region, (h, w), stride=1) * (h * w)
    return (sums[:, 0] >= h * w - 0.5).cpu()


def _check_size(size: Any) -> tuple[int, int] | float:
    if isinstance(size, bool):
        raise InputTypeError(f"size takes (height, width) in pixels or a share of the image's area, got {size!r}")
    if isinstance(size, int):
        size = (size, size)
    if isinstance(size, float):
        if not (math.isfinite(size) and 0 < size < 1):
            raise InputError(f"size as a share of the image's area must lie in (0, 1) (e.g. 0.05), got {size!r}")
        return size
    if (
        isinstance(size, Sequence)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        if min(size) < 1:
            raise InputError(f"size in pixels must be at least 1x1, got {tuple(size)}")
        return (int(size[0]), int(size[1]))
    raise InputTypeError(f"size takes (height, width) in pixels, a side in pixels or a share of the area in (0, 1), "
                         f"got {size!r}")  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """Where the patch goes (checked at construction: ``InputError`` / ``InputTypeError``, naming the argument).

    Fields:
        size: (height, width) in pixels (an int: a square), or a float in (0, 1): the share of the image's area the
            patch's box covers (its aspect ratio is the patch's, ``box_size``).
        at: the box's top-left corner (y, x) in pixels; None: centred (or, with ``classes``, drawn on the region).
        classes: a region: the box must lie wholly on pixels of these classes of the clean prediction (e.g.
            building, wall, road); its top-left corner is drawn uniformly among the positions where it fits, and an
            image with no such position is skipped (its box is None). Empty: no region.
        tilt: perspective in (-1, 1) (``quad_of``): the far edge is (1 - |tilt|) of the near edge's height; 0: none.
        corners: instead of a box, the quad itself: four corners (x, y) in pixels, top-left, top-right,
            bottom-right, bottom-left of the patch as it appears (a billboard whose corners are known); its box is
            the quad's bounding box. Not with ``at``, ``classes`` or ``tilt``.
    """

    size: tuple[int, int] | float = (32, 32)
    at: tuple[int, int] | None = None
    classes: tuple[int, ...] = ()
    tilt: float = 0.0
    corners: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _check_size(self.size))
        if self.at is not None:
            at = self.at
            if not (isinstance(at, Sequence) and len(at) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                      for v in at)):  # fmt: skip
                raise InputTypeError(f"at takes the top-left corner (y, x) in whole pixels, got {at!r}")
            if min(at) < 0:
                raise InputError(f"at: the top-left corner (y, x) must not be negative, got {tuple(at)}")
            object.__setattr__(self, "at", (int(at[0]), int(at[1])))
        if self.classes:
            if self.at is not None:
                raise InputError("give either at (a fixed box) or classes (a region), not both")
            try:
                object.__setattr__(self, "classes", class_id_tuple(self.classes))
            except (TypeError, ValueError) as err:
                raise InputError(f"classes: {err}") from None
        else:
            object.__setattr__(self, "classes", ())
        tilt = self.tilt
        if isinstance(tilt, bool) or not isinstance(tilt, int | float) or not (-1 < tilt < 1):
            raise InputError(f"tilt must be a number in (-1, 1) (0: no perspective, 0.3: far edge 30% shorter), "
                             f"got {tilt!r}")  # fmt: skip
        object.__setattr__(self, "tilt", float(tilt))
        if self.corners is not None:
            try:
                q = torch.tensor(self.corners, dtype=torch.float64)
            except (TypeError, ValueError):
                raise InputTypeError(f"corners takes four (x, y) points, got {self.corners!r}") from None
            if tuple(q.shape) != (4, 2):
                raise InputError(f"corners takes four (x, y) points, got shape {tuple(q.shape)}")
            _check_corners(q[None])
            if self.at is not None or self.classes or self.tilt != 0:
                raise InputError("corners give the quad itself: drop at, classes and tilt")
            object.__setattr__(self, "corners", tuple((float(x), float(y)) for x, y in q.tolist()))

    @property
    def kind(self) -> str:
        """The kind of placement: "region" (``classes``), "box" (``at``), "quad" (``corners``) or "centre"."""
        if self.corners is not None:
            return "quad"
        return "region" if self.classes else "box" if self.at is not None else "centre"

    def box_size(self, image_size: tuple[int, int], patch_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """The box's (height, width) in pixels in an image of ``image_size`` (H, W); for a share of the area, with
        the aspect ratio of ``patch_size`` (h, w) (square when None), rounded, at least 1 pixel and at most the
        image.

        >>> Placement(size=0.25).box_size((40, 40))
        (20, 20)
        """
        hh, ww = image_size
        if isinstance(self.size, tuple):
            h, w = self.size
        else:
            ph, pw = patch_size if patch_size is not None else (1, 1)
            area = self.size * hh * ww
            h = max(1, round(math.sqrt(area * ph / pw)))
            w = max(1, round(area / h))
        if h > hh or w > ww:
            raise InputError(f"the patch's box is {h}x{w} pixels but the images are {hh}x{ww}; use a smaller size")
        return min(h, hh), min(w, ww)

    def boxes(
        self,
        image_size: tuple[int, int],
        patch_size: tuple[int, int] | None = None,
        *,
        pred: Tensor | None = None,
        generators: Sequence[torch.Generator] | None = None,
        batch: int = 1,
    ) -> list[Box | None]:
        """One box (top, left, height, width) per image; None where a region placement finds no position.

        ``pred`` (B, H, W): the clean prediction, needed by a region placement (and it sets the batch size);
        ``generators``: one per image for the region's draw (None: torch's global RNG). A fixed box must fit in the
        image (``InputError`` otherwise).
        """
        hh, ww = image_size
        h, w = self.box_size(image_size, patch_size)
        if self.kind != "region":
            n = pred.shape[0] if pred is not None else batch
            if self.corners is not None:
                q = torch.tensor(self.corners)
                top, left = max(0, math.floor(float(q[:, 1].min()))), max(0, math.floor(float(q[:, 0].min())))
                bottom, right = min(hh, math.ceil(float(q[:, 1].max()))), min(ww, math.ceil(float(q[:, 0].max())))
                if bottom <= top or right <= left:
                    raise InputError(f"the corners {self.corners} lie outside the {hh}x{ww} image")
                return [(top, left, bottom - top, right - left)] * n
            if self.at is None:
                top, left = (hh - h) // 2, (ww - w) // 2
            else:
                top, left = self.at
                if top + h > hh or left + w > ww:
                    raise InputError(f"the patch's box {h}x{w} at (y, x) = ({top}, {left}) leaves the {hh}x{ww} "
                                     "image; move it (at) or make it smaller (size)")  # fmt: skip
            return [(top, left, h, w)] * n
        if pred is None:
            raise InputError("a region placement (classes) needs the clean prediction pred (B, H, W)")
        ok = region_positions(pred, self.classes, (h, w))
        out: list[Box | None] = []
        for j in range(pred.shape[0]):
            where = ok[j].flatten().nonzero()[:, 0]
            if where.numel() == 0:
                out.append(None)
                continue
            gen = generators[j] if generators is not None else None
            k = int(where[int(torch.randint(where.numel(), (1,), generator=gen))])
            out.append((k // ok.shape[2], k % ok.shape[2], h, w))
        return out

    def quads(self, boxes: Sequence[Box | None]) -> list[Tensor | None]:
        """The quad (4, 2) of each box with this placement's tilt, or the ``corners`` (None stays None)."""
        if self.corners is not None:
            quad = torch.tensor(self.corners, dtype=torch.float64)
            return [None if bx is None else quad.clone() for bx in boxes]
        return [None if bx is None else quad_of(bx, self.tilt) for bx in boxes]
