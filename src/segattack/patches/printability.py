"""Printability and smoothness of a patch: the non-printability score of Sharif, Bhagavatula, Bauer and Reiter (CCS
2016, "Accessorize to a Crime"), a loader for printable colour sets, and the smoothness (total variation) term that
Sharif et al. and Nesti et al. (WACV 2022) add to the loss.

Non-printability score, for a patch p with pixels p_i (RGB in [0, 1]) and a set P of printable colours c:

    NPS(p) = (1 / n) sum_i prod_{c in P} || p_i - c ||_2

Sharif et al. sum over the pixels; here the sum is divided by the number of pixels n (a mean), so that the score
does not grow with the patch's size (a weight chosen for one size holds for another). A pixel equal to a printable
colour contributes exactly 0, so a patch made only of printable colours has NPS exactly 0.

>>> import torch
>>> nps(DEFAULT_PRINTABLE[:4].T.reshape(3, 2, 2)).item()
0.0
"""

from __future__ import annotations

import itertools
import math
import os
import re
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError, DataNotFoundError, InputError
from .placement import check_patch

__all__ = ["DEFAULT_PRINTABLE", "nps", "total_variation", "load_printable_colours", "check_colours"]

#: The default printable colours, (30, 3) float64 in [0, 1]. Invented for segattack, not measured: no printer's
#: calibrated gamut was at hand. Sharif et al. printed a colour palette and photographed it to find the colours a
#: printer reproduces; Nesti et al. read theirs from a text file they did not publish. This set is the 27 points of
#: the grid {0, 0.5, 1}^3 of the RGB cube (black, white, the primaries and secondaries and their half tones, which a
#: CMYK printer can approximate) plus the greys 0.25 and 0.75 and a mid skin tone (0.75, 0.5, 0.25). For a real
#: print, measure your printer's colours and load them with ``load_printable_colours``.
DEFAULT_PRINTABLE: Tensor = torch.tensor(
    [*itertools.product((0.0, 0.5, 1.0), repeat=3), (0.25, 0.25, 0.25), (0.75, 0.75, 0.75), (0.75, 0.5, 0.25)],
    dtype=torch.float64,
)


def check_colours(colours: Tensor) -> Tensor:
    """A printable colour set: (N, 3) float in [0, 1], N >= 1 (``InputError`` otherwise); returned as float64."""
    if not isinstance(colours, Tensor) or colours.ndim != 2 or colours.shape[1] != 3 or colours.shape[0] < 1:
        raise InputError(f"printable colours must be a tensor (N, 3) of RGB in [0, 1] with N >= 1, got "
                         f"{tuple(getattr(colours, 'shape', ()))}")  # fmt: skip
    c = colours.detach().to(torch.float64)
    if not bool(((c >= 0) & (c <= 1)).all()):
        raise InputError("printable colours must lie in [0, 1]; load 0-255 triples with load_printable_colours")
    return c


def nps(patch: Tensor, colours: Tensor | None = None) -> Tensor:
    """The non-printability score of Sharif et al. (2016), a mean over pixels (module docstring).

    Args:
        patch: (3, h, w) in [0, 1] (may require grad).
        colours: (N, 3) printable colours in [0, 1]; None: ``DEFAULT_PRINTABLE``.

    Returns:
        A scalar tensor in the patch's dtype, >= 0; exactly 0 when every pixel is one of the colours. Its gradient
        is finite everywhere (0 at a pixel on a printable colour).

    >>> nps(torch.full((3, 1, 1), 0.5), torch.tensor([[0.5, 0.5, 0.5]])).item()
    0.0
    """
    check_patch(patch)
    c = check_colours(DEFAULT_PRINTABLE if colours is None else colours).to(patch.device, patch.dtype)
    diff = patch.flatten(1).T[:, None, :] - c[None]  # (n, N, 3)
    sq = diff.pow(2).sum(-1)
    # sqrt with a gradient of 0 (not NaN) at 0: a pixel exactly on a colour
    dist = torch.where(sq > 0, sq.clamp(min=torch.finfo(sq.dtype).tiny).sqrt(), torch.zeros_like(sq))
    return dist.prod(1).mean()


def total_variation(patch: Tensor) -> Tensor:
    """Smoothness of a patch (Nesti et al.'s smoothness loss, the squared form of Sharif et al.'s total variation):
    the sum over channels and over pairs of vertical and horizontal neighbours of the squared difference, divided by
    the number of pixels h * w. 0 for a constant patch.

    >>> total_variation(torch.tensor([[[0.0, 1.0]]]).expand(3, 1, 2)).item()
    1.5
    """
    check_patch(patch)
    dv = (patch[:, 1:, :] - patch[:, :-1, :]).pow(2).sum()
    dh = (patch[:, :, 1:] - patch[:, :, :-1]).pow(2).sum()
    return (dv + dh) / (patch.shape[1] * patch.shape[2])


_SPLIT = re.compile(r"[\s,;]+")


def load_printable_colours(path: str | os.PathLike[str], *, scale: str = "auto") -> Tensor:
    """Read printable colours from a text file: one RGB triple a line, separated by commas, semicolons or spaces,
    optionally in parentheses (Nesti et al.'s "(r, g, b)"); blank lines and ``#`` comments skipped.

    ``scale``: "255" (8-bit levels 0..255), "1" (values in [0, 1]) or "auto": 0..255 when any value exceeds 1, else
    [0, 1] (so a file of only 0s and 1s reads as [0, 1]; say scale="255" for such a file in levels).

    Returns:
        (N, 3) float64 in [0, 1]. ``DataNotFoundError`` for a missing file, ``DataError`` (a ValueError) naming the
        file and line for anything else (not three numbers, out of range, no colour at all).
    """
    if scale not in ("auto", "255", "1"):
        raise InputError(f"scale takes 'auto', '255' or '1', got {scale!r}")
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"printable colour file {str(p)!r} does not exist (a text file of RGB triples)")
    rows: list[tuple[float, float, float]] = []
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        text = line.split("#", 1)[0].strip().strip("()[]").strip()
        if not text:
            continue
        parts = [t for t in _SPLIT.split(text.replace("(", " ").replace(")", " ")) if t]
        if len(parts) != 3:
            raise DataError(f"{p}:{n}: expected three numbers r, g, b, got {line.strip()!r}")
        try:
            r, g, b = (float(t) for t in parts)
        except ValueError:
            raise DataError(f"{p}:{n}: {line.strip()!r} holds something that is not a number") from None
        if not all(math.isfinite(v) and 0 <= v <= 255 for v in (r, g, b)):
            raise DataError(f"{p}:{n}: values must lie in 0..255 (or [0, 1]), got {line.strip()!r}")
        rows.append((r, g, b))
    if not rows:
        raise DataError(f"{p} holds no colour (one r, g, b triple a line)")
    c = torch.tensor(rows, dtype=torch.float64)
    levels = scale == "255" or (scale == "auto" and bool((c > 1).any()))
    if not levels and bool((c > 1).any()):
        raise DataError(f"{p}: scale='1' but values exceed 1 (max {float(c.max()):g}); use scale='255' or 'auto'")
    return c / 255 if levels else c
