"""The paper's Figure 1 for a run: the representative images, chosen once the results are known (the median hidden
share, the hardest, then quantiles), and their files ``figure1_<id>.npz`` (what the 11 panels need, at the budget
nearest 10 levels)."""

from __future__ import annotations

import json
import logging
import math
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import UnreadableImageError
from ..formatting import pct
from ..pipeline import BatchOutcome, attack_batch, measure
from ..rundir import DEFAULT_ATTACK, FIGURE1_CACHE_DIR, FIGURE1_PREFIX, atomic_open, figure1_path, output_name
from .config import ExperimentConfig, number
from .outputs import labels_np, to_uint8

__all__ = ["Figure1Pick", "Figure1Writer", "figure1_eps", "figure1_min_pixels", "pick_figure1", "figure1_files",
           "remove_figure1", "FIGURE1_KEYS", "FIGURE1_CACHE_MB"]  # fmt: skip

log = logging.getLogger(__name__)


def figure1_eps(eps_levels: Sequence[float]) -> float:
    """The budget Figure 1 shows: the one nearest 10 levels (the paper's), the larger one on a tie.

    >>> figure1_eps([1, 2, 8, 12]), figure1_eps([1, 2, 4])
    (12, 4)
    """
    return min(eps_levels, key=lambda e: (abs(e - 10), -e))


FIGURE1_MIN_PIXELS = 500
FIGURE1_MIN_SHARE = 0.01
#: What every Figure 1 file holds (``adv_during``/``pred_during`` as well when mode ``during`` was run).
FIGURE1_KEYS = (
    "image_id", "attack", "attack_options", "eps", "class_ids", "label_names", "reason", "image", "adv",
    "adv_restricted", "target", "pred", "pred_adv", "pred_restricted",
)  # fmt: skip
_NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
#: Figure 1 candidates are saved during a run (``rundir.FIGURE1_CACHE_DIR``) up to this many MB in all (the demo's 20
#: scenes at 256x512 take 35 MB); an image chosen beyond it is attacked again when Figure 1 is written.
FIGURE1_CACHE_MB = 256


@dataclass(frozen=True)
class Figure1Pick:
    """An image chosen for Figure 1: its index and id, why it was chosen, and its row's hidden share (None for an
    image chosen by hand whose row is not known)."""

    index: int
    image_id: str
    reason: str
    fooled: float | None = None


def figure1_min_pixels(image_pixels: int) -> int:
    """The class pixels an image needs to be chosen as representative: 500, or 1% of its pixels if fewer.

    >>> figure1_min_pixels(1024 * 2048), figure1_min_pixels(32 * 64)
    (500, 21)
    """
    return min(FIGURE1_MIN_PIXELS, math.ceil(FIGURE1_MIN_SHARE * image_pixels))


def pick_figure1(
    spec: int | tuple[str, ...],
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    *,
    attack: str,
    eps: float,
    mode: str,
    class_names: Sequence[str],
    pixels: Callable[[int], int],
) -> list[Figure1Pick]:
    """The images Figure 1 shows, from the result rows of ``attack`` at ``eps`` in ``mode`` (status ``ok``).

    A tuple of ids: those images, "chosen by hand" (ids without an attacked row are left out with a warning).
    A count N: representative images, ranked by hidden share (``fooled``; ties by index), among those with at least
    ``figure1_min_pixels`` class pixels (all attacked images if none has that many): first the median (for an even
    number the lower of the two middle images), then the hardest (lowest hidden share), then, for N > 2, the
    images at the evenly spaced quantiles j/(N-1), j = 1..N-1, of which the one nearest 0.5 is the median already.
    A rank already taken moves to the nearest free one. ``pixels(i)``: the pixels of image ``i``.
    """
    by_index = _attacked(rows, ids, attack=attack, eps=eps, mode=mode)
    cls = "/".join(class_names) if class_names else "class"
    if isinstance(spec, tuple):
        return _by_hand(spec, ids, by_index, cls)
    if spec == 0 or not by_index:
        return []
    cands = [(float(row["fooled"]), i, int(row["class_pixels"] or 0)) for i, row in by_index.items()]
    cands = [c for c in cands if math.isfinite(c[0])]
    if not cands:
        return []
    pool, what, note = _pool(cands, pixels, cls)
    m = len(pool)
    picks = []
    for n_pick, r in enumerate(_ranks(min(spec, m), m)):
        f, i, _ = pool[r]
        if n_pick == 0:
            also = " and hardest" if r == 0 and m > 1 else ""
            reason = f"median{also} hidden share: {pct(f)} (image {r + 1} of {m} {what}, lowest first{note})"
        elif r == 0:
            reason = f"hardest: {pct(f)} hidden (lowest of {m} images {what}{note})"
        elif r == m - 1:
            reason = f"easiest: {pct(f)} hidden (highest of {m} images {what}{note})"
        else:
            q = r / (m - 1)
            reason = f"quantile {q:.2f} of hidden share: {pct(f)} (image {r + 1} of {m} {what}, lowest first{note})"
        picks.append(Figure1Pick(i, ids[i], reason, f))
    return picks


def _attacked(
    rows: Sequence[Mapping[str, Any]], ids: Sequence[str], *, attack: str, eps: float, mode: str
) -> dict[int, Mapping[str, Any]]:
    """The ``ok`` rows of ``attack`` at ``eps`` in ``mode`` by image index (rows of images of this run only)."""
    by_index: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        i = int(row["index"])
        if (
            str(row.get("attack") or DEFAULT_ATTACK) == attack
            and float(row["eps"]) == float(eps)
            and row["mode"] == mode
            and row["status"] == "ok"
            and 0 <= i < len(ids)
            and row.get("image_id") == ids[i]
        ):
            by_index[i] = row
    return by_index


def _by_hand(
    spec: tuple[str, ...], ids: Sequence[str], by_index: Mapping[int, Mapping[str, Any]], cls: str
) -> list[Figure1Pick]:
    """The images named by hand that were attacked (the others left out with a warning)."""
    where = {iid: i for i, iid in enumerate(ids)}
    picks = []
    for iid in spec:
        at = where.get(iid)
        if at is None:
            log.warning("Figure 1: image %s is not among the %d images of this run; left out", iid, len(ids))
        elif at not in by_index:
            log.warning("Figure 1: image %s was not attacked (no %s pixels predicted, or unreadable); left out",
                        iid, cls)  # fmt: skip
        else:
            f = float(by_index[at]["fooled"])
            picks.append(Figure1Pick(at, iid, "chosen by hand", f if math.isfinite(f) else None))
    return picks


def _pool(
    cands: list[tuple[float, int, int]], pixels: Callable[[int], int], cls: str
) -> tuple[list[tuple[float, int, int]], str, str]:
    """The candidates (hidden share, index, class pixels) with enough class pixels, sorted, and the words that say
    which: (pool, what, note); all of them (and a note) if none has enough."""
    # an image with FIGURE1_MIN_PIXELS class pixels takes part whatever its size: sizes are looked up for the
    # others only, and for all once one of them is small (the bar then depends on the size; small images are cheap)
    need = {i: figure1_min_pixels(pixels(i)) for _, i, c in cands if c < FIGURE1_MIN_PIXELS}
    if any(v < FIGURE1_MIN_PIXELS for v in need.values()):
        need = {i: need[i] if i in need else figure1_min_pixels(pixels(i)) for _, i, _ in cands}
    pool = sorted(c for c in cands if c[2] >= need.get(c[1], FIGURE1_MIN_PIXELS))
    levels = sorted(set(need.values()) | ({FIGURE1_MIN_PIXELS} if len(need) < len(cands) else set()))
    rule = f">= {levels[0]}" if len(levels) == 1 else f">= min({FIGURE1_MIN_PIXELS}, 1% of the image)"
    if pool:
        return pool, f"with {rule} {cls} pixels", ""
    return sorted(cands), f"with {cls} pixels", f"; none has {rule}"


def _ranks(k: int, m: int) -> list[int]:
    """The ranks (0 = lowest hidden share) of ``k`` picks among ``m``: the median (the lower middle one), the
    hardest, then the evenly spaced quantiles j/(k-1) but the one nearest 0.5; a rank taken moves to the nearest
    free one.

    >>> _ranks(1, 9), _ranks(2, 9), _ranks(5, 9), _ranks(3, 2)
    ([4], [4, 0], [4, 0, 2, 6, 8], [0, 1])
    """
    median = (m - 1) // 2
    if k == 1:
        wanted = [median]
    elif k == 2:
        wanted = [median, 0]
    else:
        jm = min(range(1, k), key=lambda j: (abs(2 * j - (k - 1)), j))  # j/(k-1) nearest 0.5, exactly
        wanted = [median, 0] + [(2 * j * (m - 1) + (k - 1)) // (2 * (k - 1)) for j in range(1, k) if j != jm]
    taken: list[int] = []
    for r in wanted:
        for d in range(m):
            free = [x for x in (r - d, r + d) if 0 <= x < m and x not in taken]
            if free:
                taken.append(free[0])
                break
    return taken


def figure1_files(out: Path) -> dict[str, Path]:
    """The readable ``figure1_*.npz`` of ``out`` by image id; a corrupt one (a disk fault, a copy cut short) is
    removed with its PNG and a warning (its image, if still chosen, is drawn again)."""
    found: dict[str, Path] = {}
    for path in sorted(out.glob(f"{FIGURE1_PREFIX}*.npz")):
        try:
            with np.load(path) as z:
                found[str(z["image_id"])] = path
                continue
        except _NPZ_ERRORS as err:
            reason = f"{type(err).__name__}: {err}"
        log.warning("%s cannot be read (%s); removed (drawn again if its image is still chosen)", path, reason)
        path.unlink()
        path.with_suffix(".png").unlink(missing_ok=True)
    return found


def remove_figure1(out: Path, keep: set[str], files: Mapping[str, Path] | None = None) -> None:
    """Remove the Figure 1 files (``.npz`` and its ``.png``) of images not in ``keep``."""
    for iid, path in (figure1_files(out) if files is None else files).items():
        if iid not in keep:
            log.info("Figure 1 of %s removed: the image is no longer chosen", iid)
            path.unlink()
            path.with_suffix(".png").unlink(missing_ok=True)


class Figure1Writer:
    """The Figure 1 files of one run: candidates saved while it runs (``save_candidates``, the arrays of this run's
    own attack at the Figure 1 budget, up to ``FIGURE1_CACHE_MB``), then ``update`` once the representative images
    are chosen (files kept, taken from the candidates, or attacked again)."""

    def __init__(
        self, model: Any, device: torch.device, config: ExperimentConfig, out: Path, num_classes: int,
        label_names: Sequence[str], *, read: Callable[[Any, int, str], tuple[Tensor, Tensor]],
    ) -> None:  # fmt: skip
        self.model, self.device, self.out, self.read, self.config = model, device, out, read, config
        self.attack, self.goal, self.modes = config.attacks[0], config.goal_obj, tuple(config.modes or ())
        self.eps_all = list(config.eps)
        self.eps = figure1_eps(config.eps)
        self.batch_size, self.seed = config.batch_size, config.seed
        self.num_classes, self.label_names = num_classes, list(label_names)
        self.cache_left = FIGURE1_CACHE_MB * 2**20  # bytes of candidates this process may still save
        # every image when the representative ones are chosen, else the named ones (none for 0)
        self.candidates: set[str] | None = (
            (None if config.figure1 > 0 else set()) if isinstance(config.figure1, int) else set(config.figure1)
        )

    @property
    def wants_candidates(self) -> bool:
        return self.candidates != set()

    def save_candidates(self, image_ids: list[str], xs: Tensor, outcome: BatchOutcome) -> None:
        """Save each image's Figure 1 arrays at the Figure 1 eps (from this run's attack) while the size budget
        lasts, so that ``update_figure1`` need not attack the chosen images again."""
        k = self.eps_all.index(self.eps)
        folder = self.out / FIGURE1_CACHE_DIR
        for j, iid in enumerate(image_ids):
            if self.candidates is not None and iid not in self.candidates:
                continue
            arrays = self._arrays(iid, "", xs[j], outcome, k, j)
            size = sum(a.nbytes for a in arrays.values())
            if size > self.cache_left:
                return
            self.cache_left -= size
            folder.mkdir(exist_ok=True)
            with atomic_open(folder / f"{output_name(iid)}.npz") as fh:  # uncompressed: a temporary file
                np.savez(fh, **arrays)  # type: ignore[arg-type]

    def _arrays(
        self, image_id: str, reason: str, x: Tensor, outcome: BatchOutcome, k: int, j: int
    ) -> dict[str, np.ndarray]:
        """What a Figure 1 file holds for image ``j`` of ``outcome`` at its eps index ``k``."""
        nc = self.num_classes
        arrays = {
            **self._meta(image_id, reason),
            "image": to_uint8(x),
            "adv": to_uint8(outcome.advs["full"][k, j]),
            "adv_restricted": to_uint8(outcome.advs["posthoc"][k, j]),
            "target": labels_np(outcome.labels[j], nc),
            "pred": labels_np(outcome.pred[j], nc),
            "pred_adv": labels_np(outcome.preds["full"][k, j], nc),
            "pred_restricted": labels_np(outcome.preds["posthoc"][k, j], nc),
        }
        if "during" in outcome.advs:
            arrays["adv_during"] = to_uint8(outcome.advs["during"][k, j])
            arrays["pred_during"] = labels_np(outcome.preds["during"][k, j], nc)
        return arrays

    def _meta(self, image_id: str, reason: str) -> dict[str, Any]:
        spec = self.attack
        return {
            "image_id": np.array(image_id),
            "attack": np.array(spec.name),
            "attack_options": np.array(json.dumps(spec.describe()["options"], sort_keys=True)),
            "eps": np.array(self.eps),
            "class_ids": np.array(getattr(self.goal, "class_ids", ())),
            "label_names": np.array(self.label_names, dtype=str),
            "reason": np.array(reason),
        }

    def _current(self, path: Path, pick: Figure1Pick) -> dict[str, np.ndarray] | None:
        """The arrays of an existing Figure 1 file if they are those of ``pick`` now (same attack, options, budget,
        classes and modes), else None (drawn again)."""
        try:
            with np.load(path) as z:
                data = {k: z[k] for k in z.files}
        except _NPZ_ERRORS:
            return None
        want = self._meta(pick.image_id, pick.reason)
        keys = set(FIGURE1_KEYS) | ({"adv_during", "pred_during"} if "during" in self.modes else set())
        if not keys <= data.keys() or ("adv_during" in data) != ("during" in self.modes):
            return None
        for k in ("image_id", "attack", "attack_options", "eps", "class_ids", "label_names"):
            if not np.array_equal(data[k], want[k]):
                return None
        return data

    def update(self, dataset: Any, picks: Sequence[Figure1Pick]) -> None:
        """Bring the Figure 1 files up to date with ``picks``: remove those of images no longer chosen (and corrupt
        ones), keep those still current (a changed reason is rewritten), take the others from the candidates saved
        during the run, attack the rest again and write them; then drop the candidates."""
        files = figure1_files(self.out)
        remove_figure1(self.out, keep={p.image_id for p in picks}, files=files)
        redo: list[Figure1Pick] = []
        cache = self.out / FIGURE1_CACHE_DIR
        for pick in picks:
            path = files.get(pick.image_id)
            data = self._current(path, pick) if path is not None else None
            fresh = data is None
            if data is None:  # saved during the run (the same attack), else attacked again below
                candidate = cache / f"{output_name(pick.image_id)}.npz"
                data = self._current(candidate, pick) if candidate.is_file() else None
            if data is None:
                redo.append(pick)
            elif fresh or str(data["reason"]) != pick.reason:
                data["reason"] = np.array(pick.reason)
                self._write(pick.image_id, data)
        shutil.rmtree(cache, ignore_errors=True)
        if not redo:
            return
        log.info("Figure 1: attacking %d image(s) again at eps %s: %s", len(redo), number(self.eps),
                 ", ".join(p.image_id for p in redo))  # fmt: skip
        groups: dict[tuple[int, ...], list[tuple[Figure1Pick, Tensor]]] = {}
        for pick in redo:
            try:
                image, _ = self.read(dataset, pick.index, pick.image_id)
            except UnreadableImageError as err:
                log.warning("Figure 1 of %s left out: the image cannot be read now: %s", pick.image_id, err)
                continue
            groups.setdefault(tuple(image.shape), []).append((pick, image))
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                self._attack_again([p for p, _ in chunk], torch.stack([img for _, img in chunk]))

    def _attack_again(self, picks: list[Figure1Pick], images: Tensor) -> None:
        x = images.to(self.device, torch.float32) / 255
        outcome = attack_batch(
            self.model, x, attack=self.attack, goal=self.goal, eps=[self.eps / 255], modes=self.modes,
            batch_size=self.batch_size, keep=("full", "posthoc"),
            seeds=[self.config.image_seed(p.image_id) for p in picks],
        )  # fmt: skip
        mode = "full" if "full" in self.modes else self.modes[0]
        measured = measure(self.goal, outcome, mode, 0, num_classes=self.num_classes)
        for j, pick in enumerate(picks):
            fooled = float(measured[j]["fooled"])
            if pick.fooled is not None and abs(fooled - pick.fooled) > 1e-9:
                log.info("Figure 1 of %s: attacked again, %s of the class pixels are hidden against %s in the results "
                         "(an attack with random starts, or GPU kernels that add in varying order); the figure "
                         "shows the new attack", pick.image_id, pct(fooled), pct(pick.fooled))  # fmt: skip
            self._write(pick.image_id, self._arrays(pick.image_id, pick.reason, x[j], outcome, 0, j))

    def _write(self, image_id: str, arrays: Mapping[str, Any]) -> None:
        with atomic_open(figure1_path(self.out, image_id)) as fh:
            np.savez_compressed(fh, **arrays)
        figure1_path(self.out, image_id, ".png").unlink(missing_ok=True)  # drawn again by the report
