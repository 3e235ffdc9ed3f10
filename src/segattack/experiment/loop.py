"""The experiment's batch loop: one batch through ``pipeline.attack_batch`` for every attack, the survival
transforms, and the rows (``measure``, norms, SSIM) made by jobs that can run on a measuring thread; also the rows
found on resume and the per-image seeds."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import rundir
from ..instances import instance_fields
from ..metrics import perturbation_norms, ssim
from ..pipeline import AttackSpec, BatchOutcome, HideGoal, attack_batch, clean_instances, measure, transformed_outcome
from ..rundir import DEFAULT_ATTACK, ROW_FIELDS
from ..targets import hidden_mask
from .config import ExperimentConfig, ExperimentError, number
from .figure1 import Figure1Writer
from .outputs import save_adversarial_images, write_run_thumbnails
from .reading import Batch, Group, Item, image_size, load_item

__all__ = ["BatchRunner", "row_fields", "RowKey", "prepare_results"]

log = logging.getLogger(__name__)


def row_fields(*, gt_instances: bool = False) -> tuple[str, ...]:
    """The fields of every result row, in order: ``ROW_FIELDS`` (ending in ``transform``, ``ssim`` and the instance
    counts of ``instance_fields()``) and, for a data set with ground-truth instances,
    ``instance_fields("gt_instances")``."""
    gt = instance_fields("gt_instances") if gt_instances else ()
    return (*ROW_FIELDS, *gt)


#: A row's key within its (image, attack) group: (eps, mode, attack, transform); "" for the plain rows (and the rows
#: written before rows had a transform).
RowKey = tuple[float, str, str, str]


def _row_key(row: Mapping[str, Any]) -> RowKey:
    return (
        float(row["eps"]),
        str(row["mode"]),
        str(row.get("attack") or DEFAULT_ATTACK),
        str(row.get("transform") or ""),
    )


def prepare_results(
    path: Path, ids: Sequence[str], keys: Mapping[str, set[RowKey]]
) -> tuple[dict[int, set[str]], list[dict[str, Any]]]:
    """Per image, the attacks whose rows are complete (``keys``: the row keys each attack needs), and the rows kept;
    rewrites the file without torn lines, invalid rows (``rundir``'s row schema), partial (image, attack) groups and
    rows of attacks ``keys`` does not name (what an earlier configuration of the directory left)."""
    rows, raw, dropped = rundir.parse_results(path)
    groups: dict[tuple[int, str], list[int]] = {}
    for pos, row in enumerate(rows):
        groups.setdefault((int(row["index"]), str(row["attack"])), []).append(pos)
    done: dict[int, set[str]] = {}
    keep: list[int] = []
    for (index, attack), positions in groups.items():
        got = [_row_key(rows[p]) for p in positions]
        want = keys.get(attack)
        complete = (
            want is not None
            and 0 <= index < len(ids)
            and len(got) == len(want)
            and set(got) == want
            and all(rows[p].get("image_id") == ids[index] for p in positions)
        )
        if complete:
            done.setdefault(index, set()).add(attack)
            keep.extend(positions)
        else:
            dropped = True
            if want is not None:
                log.info("image %d, %s: %d of %d rows found; redone", index, attack, len(got), len(want))
    keep.sort()
    if dropped:
        rundir.rewrite_jsonl(path, [raw[p] for p in keep])
    return done, [rows[p] for p in keep]


#: Images per ``ssim`` call when the rows are made (several budgets at once: the whole-image perturbations of one
#: image share their box, so they go through the window in one batch).
SSIM_CHUNK = 8


def _ssim_all(advs: Tensor, xs: Tensor) -> Tensor:
    """``metrics.ssim`` of every budget's adversarial images (K, B, C, H, W) to ``xs`` (B, C, H, W): (K, B), in
    calls of at most ``SSIM_CHUNK`` images."""
    k, b = advs.shape[:2]
    step = max(1, SSIM_CHUNK // b)
    parts = []
    for k0 in range(0, k, step):
        chunk = advs[k0 : k0 + step]
        n = chunk.shape[0]
        parts.append(ssim(chunk.flatten(0, 1), xs.unsqueeze(0).expand(n, *xs.shape).flatten(0, 1)).view(n, b))
    return torch.cat(parts)


class BatchRunner:
    """Batches of one run through the attacks: ``assemble`` (read items into a ``Batch``), ``prepare`` (predict,
    target), ``attack`` (the model's work) and ``measure`` (the rows); Figure 1 through ``figure1``."""

    def __init__(
        self, model: Any, device: torch.device, config: ExperimentConfig, out: Path, num_classes: int,
        reference: str | None, label_names: Sequence[str], *, gt_instances: bool = False,
    ) -> None:  # fmt: skip
        self.model, self.device, self.config, self.out = model, device, config, out
        self.goal = config.goal_obj
        self.attacks = list(config.attacks)
        self.eps = list(config.eps)
        self.modes = tuple(config.modes or ())
        self.transforms = list(config.survive)
        self.batch_size, self.seed = config.batch_size, config.seed
        self.num_classes, self.reference, self.label_names = num_classes, reference, list(label_names)
        self.gt_instances = gt_instances
        self.fields = row_fields(gt_instances=gt_instances)
        self.pixels: dict[int, int] = {}  # image index -> H * W, for the images read in this run
        self.figure1 = Figure1Writer(model, device, config, out, num_classes, self.label_names, read=self._read)

    def pixels_of(self, dataset: Any, index: int) -> int:
        """H * W of image ``index``: known if this run read it, else its header (``image_size``) or the image."""
        if index not in self.pixels:
            h, w = image_size(dataset, index)
            self.pixels[index] = h * w
        return self.pixels[index]

    def _status_rows(
        self, index: int, image_id: str, status: str, class_pixels: int | None, attacks: list[str]
    ) -> list[dict[str, Any]]:
        """Rows of an image that was not attacked: every measure null."""
        rows = []
        for a in self.attacks:
            if a.name not in attacks:
                continue
            for e in self.eps:
                for m in self.modes:
                    for t in [None, *self.transforms]:
                        row: dict[str, Any] = dict.fromkeys(self.fields)
                        row.update(image_id=image_id, index=index, attack=a.name, eps=number(e), mode=m, steps=0)
                        row.update(class_pixels=class_pixels, time_s=0.0, status=status)
                        row["transform"] = None if t is None else t.name
                        rows.append(row)
        return rows

    def _read(
        self, dataset: Any, i: int, image_id: str, instance_ids: dict[int, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Item ``i`` as (uint8 image, label), checked; its ground-truth instance ids into ``instance_ids`` where
        the data set has them and a dict is given."""
        image, label, ids = load_item(dataset, i, self.gt_instances and instance_ids is not None)
        return self._accept(i, image_id, image, label, ids, instance_ids)

    def _accept(
        self, i: int, image_id: str, image: Any, label: Any, ids: Any, instance_ids: dict[int, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """Check item ``i`` as read (here or in a reading process) and keep its pixel count and instance ids."""
        if not isinstance(image, Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise ExperimentError(
                f"data set item {i} ({image_id}) is not a uint8 (3, H, W) image tensor: the data set breaks the "
                "segattack.data contract"
            )
        self.pixels[i] = int(image.shape[1]) * int(image.shape[2])
        if ids is not None and instance_ids is not None:
            ids = torch.as_tensor(ids)
            if tuple(ids.shape) != tuple(image.shape[1:]):
                raise ExperimentError(
                    f"data set item {i} ({image_id}): instance ids {tuple(ids.shape)} and image {tuple(image.shape)} "
                    "differ in size: instance_ids(i) must match the image (H, W)"
                )
            instance_ids[i] = ids.to(torch.int64)
        return image, torch.as_tensor(label)

    def assemble(self, todo: Mapping[int, list[str]], items: Sequence[Item], ids: list[str]) -> Batch:
        """The batch of ``todo`` from its items as ``Items`` gives them (here or in reading processes), checked and
        grouped by size; unreadable ones get their status rows."""
        batch = Batch(todo=todo)
        for i, image, label, instance_ids, unreadable in items:
            if unreadable is not None:
                log.warning("skipping unreadable image %s: %s", ids[i], unreadable)
                batch.rows[i] = self._status_rows(i, ids[i], "unreadable", None, todo[i])
                continue
            image, label = self._accept(i, ids[i], image, label, instance_ids, batch.instance_ids)
            batch.groups.setdefault(tuple(image.shape), []).append((i, image, label))
        return batch

    def prepare(self, batch: Batch, ids: list[str]) -> Batch:
        """Predict ``batch`` and make its labels and clean instances (targets: a distance transform per image, on
        the CPU); the images without the class get their status rows. ``attack`` does it first unless it was done:
        the pipelined experiment does it on its reader thread, so that the CPU work overlaps the previous batch's
        attack on a GPU. Returns ``batch``."""
        if batch.prepared is None:
            batch.prepared = [self._prepare_group(items, ids, batch) for items in batch.groups.values()]
        return batch

    def attack(self, batch: Batch, ids: list[str]) -> None:
        """Attack ``batch`` (the model's work, on the calling thread; predicted and targeted first unless
        ``prepare`` did so); the per-image measures are left in ``batch.jobs`` for ``measure`` (on this thread or a
        worker)."""
        t0 = time.perf_counter()
        self.prepare(batch, ids)
        assert batch.prepared is not None
        for group in batch.prepared:
            self._run_group(group, ids, batch)
        batch.attack_s = time.perf_counter() - t0

    @staticmethod
    def measure(batch: Batch, *, overlapped: bool = False) -> dict[int, list[dict[str, Any]]]:
        """Run the measuring jobs of an attacked batch (metrics, SSIM, instances, thumbnails, saved images) and
        return its rows; ``time_s`` of an image is its share of the batch's attack and measuring time, or with
        ``overlapped`` (measured while the next batch attacks) of its attack time alone, so that the rows' times
        add up to the run's."""
        t0 = time.perf_counter()
        for job in batch.jobs:
            job()
        batch.jobs.clear()
        measured = 0.0 if overlapped else time.perf_counter() - t0
        share = (batch.attack_s + measured) / max(1, len(batch.todo))
        for i in batch.todo:
            for r in batch.rows[i]:
                if r["status"] == "ok":
                    r["time_s"] = round(share, 4)
        return batch.rows

    def _prepare_group(self, items: list[tuple[int, Tensor, Tensor]], ids: list[str], batch: Batch) -> Group:
        """One group of equally sized images of ``batch`` on the device, predicted, the images without the class
        given their status rows, the others' labels and clean instances made."""
        todo, rows = batch.todo, batch.rows
        x8 = torch.stack([img for _, img, _ in items])
        if self.device.type == "cuda":  # page-locked, so the copy to the GPU is one DMA transfer, not staged
            x8 = x8.pin_memory()
        x = x8.to(self.device, non_blocking=True).to(torch.float32) / 255
        pred = self.model.predict(x, batch_size=self.batch_size)
        ok: list[int] = list(range(len(items)))
        if isinstance(self.goal, HideGoal):
            hidden = hidden_mask(pred, self.goal.class_ids)
            counts = hidden.flatten(1).sum(1).tolist()
            n_pix = pred[0].numel()
            ok = []
            for b, (i, _, _) in enumerate(items):
                if counts[b] == 0:
                    rows[i] = self._status_rows(i, ids[i], "absent", 0, todo[i])
                elif counts[b] == n_pix:
                    rows[i] = self._status_rows(i, ids[i], "all_hidden", int(n_pix), todo[i])
                else:
                    ok.append(b)
        if not ok:
            return Group(items, ok)
        sel = torch.tensor(ok, device=self.device)
        xs, ps = x[sel], pred[sel]
        truth = None
        if self.reference == "truth":
            truth = torch.stack([items[b][2] for b in ok]).to(self.device, torch.int64)
        inst = [batch.instance_ids[items[b][0]] for b in ok] if self.gt_instances else None
        return Group(items, ok, xs, ps, truth, self.goal.labels(ps, truth), clean_instances(self.goal, ps, inst))

    def _run_group(self, group: Group, ids: list[str], batch: Batch) -> None:
        """Attack the images of a prepared group; their rows are made by the jobs it leaves in ``batch.jobs``
        (status rows at once)."""
        todo, rows, jobs = batch.todo, batch.rows, batch.jobs
        items, ok = group.items, group.ok
        if not ok:
            return
        xs, ps, truth, labels = group.xs, group.ps, group.truth, group.labels
        assert xs is not None and ps is not None and labels is not None
        ok_ids = [ids[items[b][0]] for b in ok]
        per: dict[int, list[dict[str, Any]]] = {items[b][0]: [] for b in ok}
        rows.update(per)  # filled in by the jobs
        for spec in self.attacks:
            sub = [j for j, b in enumerate(ok) if spec.name in todo[items[b][0]]]
            if not sub:
                continue
            pick = torch.tensor(sub, device=self.device)
            sub_ids = [ok_ids[j] for j in sub]
            inst = None
            if self.gt_instances:
                inst = [batch.instance_ids[items[ok[j]][0]] for j in sub]
            picked_instances = {k: None if v is None else [v[j] for j in sub] for k, v in group.instances.items()}
            outcome = attack_batch(
                self.model, xs[pick], attack=spec, goal=self.goal, eps=self.config.eps01,
                modes=self.modes, pred=ps[pick], truth=None if truth is None else truth[pick],
                batch_size=self.batch_size, labels=labels[pick], instances=picked_instances,
                seeds=[self.config.image_seed(iid) for iid in sub_ids],
            )  # fmt: skip
            picked = [ok[j] for j in sub]
            jobs.append(functools.partial(self._rows, spec, outcome, xs[pick], picked, items, ids, per))
            for t in self.transforms:  # survival: the model's predictions here, the measures in a job
                seeds = [self.config.transform_seed(iid, t.name) for iid in sub_ids]
                out_t, clean_t = transformed_outcome(
                    self.model, outcome, xs[pick], t, goal=self.goal, seeds=seeds, batch_size=self.batch_size,
                    instance_ids=inst,
                )  # fmt: skip
                jobs.append(functools.partial(self._rows, spec, out_t, clean_t, picked, items, ids, per,
                                              transform=t.name))  # fmt: skip
                del out_t, clean_t
            if spec is self.attacks[0] and isinstance(self.goal, HideGoal) and "full" in self.modes:
                k = self.eps.index(self.figure1.eps)
                jobs.append(
                    functools.partial(
                        write_run_thumbnails,
                        self.out,
                        sub_ids,
                        xs[pick],
                        ps[pick],
                        outcome,
                        k=k,
                        num_classes=self.num_classes,
                        label_names=self.label_names,
                    )
                )
                if "posthoc" in self.modes and self.figure1.wants_candidates:
                    jobs.append(functools.partial(self.figure1.save_candidates, sub_ids, xs[pick], outcome))
            if self.config.save_images:
                folder = Path("images") / spec.name if len(self.attacks) > 1 else Path("images")
                jobs.append(
                    functools.partial(
                        save_adversarial_images,
                        self.out / folder,
                        outcome,
                        xs[pick],
                        sub_ids,
                        eps=self.eps,
                        modes=self.modes,
                    )
                )

    def _rows(
        self,
        spec: AttackSpec,
        outcome: BatchOutcome,
        xs: Tensor,
        ok: list[int],
        items: list[tuple[int, Tensor, Tensor]],
        ids: list[str],
        per: dict[int, list[dict[str, Any]]],
        transform: str | None = None,
    ) -> None:
        """Append the rows of ``outcome`` to ``per``; ``xs`` (B, 3, H, W): the images the perturbation is measured
        against (the clean images, or T(clean) for the survival rows of ``transform``)."""
        sims = {m: _ssim_all(outcome.advs[m], xs) for m in self.modes}
        for k, e in enumerate(self.eps):
            passes = spec.passes(e / 255)
            for m in self.modes:
                measures = measure(self.goal, outcome, m, k, num_classes=self.num_classes,
                                   instance_threshold=self.config.instance_threshold)  # fmt: skip
                norms = perturbation_norms(outcome.advs[m][k], xs)  # and PSNR
                sim = sims[m][k]
                for j, b in enumerate(ok):
                    i = items[b][0]
                    row: dict[str, Any] = dict.fromkeys(self.fields)
                    row.update(image_id=ids[i], index=i, attack=spec.name, eps=number(e), mode=m, steps=passes)
                    row["transform"] = transform
                    row.update({key: rundir.json_safe(v) for key, v in measures[j].items()})
                    row.update(
                        linf=rundir.json_safe(round(float(norms["linf"][j]), 4)),
                        l2=rundir.json_safe(round(float(norms["l2"][j]), 4)),
                        mean_abs=rundir.json_safe(round(float(norms["mean_abs"][j]), 4)),
                        psnr=rundir.json_safe(round(float(norms["psnr"][j]), 4)),
                        ssim=rundir.json_safe(round(float(sim[j]), 6)),
                        time_s=0.0,
                        status="ok",
                    )
                    per[i].append(row)
