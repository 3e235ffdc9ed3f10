"""Reading the data set for the experiment: image ids and sizes, the memory check and the model's first pass before
anything is written, and the batches of images (read here, or ahead of time in worker processes)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import UnreadableImageError
from ..memory import check_run_memory
from ..models import first_pass
from .config import ExperimentError

__all__ = ["image_id_of", "image_size", "check_memory", "first_readable", "probe_model", "default_read_workers",
           "Batch", "Group", "Items", "Item", "load_item", "read_batches"]  # fmt: skip

log = logging.getLogger(__name__)


def image_id_of(dataset: Any, index: int) -> str:
    """A data set's stable id of item ``index`` (``image_id(i)``, else ``name(i)``, else the index)."""
    for attr in ("image_id", "name"):
        fn = getattr(dataset, attr, None)
        if callable(fn):
            return str(fn(index))
    return str(index)


def image_size(dataset: Any, index: int) -> tuple[int, int]:
    """(H, W) of item ``index``: from ``dataset.image_size`` (file headers, nothing decoded) where it has one, else
    from the item itself."""
    sizer = getattr(dataset, "image_size", None)
    if callable(sizer):
        h, w = sizer(index)
    else:
        h, w = torch.as_tensor(dataset[index][0]).shape[-2:]
    return int(h), int(w)


def check_memory(
    model: Any,
    dataset: Any,
    n: int,
    ids: list[str],
    device: torch.device,
    *,
    batch_size: int,
    n_eps: int,
    n_modes: int,
) -> None:
    """Refuse a run that would not fit in memory, before any image is generated or decoded: the largest image the
    data set will return (``image_size``; a data set without it is checked on its first image) in full batches."""
    from_header = callable(getattr(dataset, "image_size", None))
    sizes: list[tuple[int, int]] = []
    for i in range(n):
        try:
            sizes.append(image_size(dataset, i))
        except UnreadableImageError:
            continue  # skipped and counted where the image is used
        if not from_header:
            break
    if not sizes:
        return
    h, w = max(sizes, key=lambda s: s[0] * s[1])
    check_run_memory(model, device=device, height=h, width=w, batch_size=min(batch_size, n), n_eps=n_eps,
                     n_modes=n_modes, what="this run")  # fmt: skip


def first_readable(dataset: Any, n: int, device: torch.device) -> tuple[int, Tensor] | None:
    """The first of the ``n`` items of ``dataset`` that can be read: (its index, the image (1, 3, H, W) in [0, 1] on
    ``device``), or None if none can."""
    for i in range(n):
        try:
            image, _ = dataset[i]
        except UnreadableImageError:
            continue
        return i, torch.as_tensor(image)[None].to(device, torch.float32) / 255
    return None


def probe_model(
    model: Any, dataset: Any, n: int, class_ids: tuple[int, ...], ids: list[str], device: torch.device
) -> int:
    """Run the model once on the first readable image: its errors (wrong class count, probabilities, ...) and a
    class id it cannot predict surface before anything is written. Returns the number of classes."""
    first = first_readable(dataset, n, device)
    if first is not None:
        i, x = first
        logits = first_pass(model, x, on=f"image {ids[i]}")
        k = int(logits.shape[1])
        if class_ids and max(class_ids) >= k:
            raise ExperimentError(f"class id {max(class_ids)} to hide, but the model predicts only {k} classes")
        return k
    raise ExperimentError(f"none of the {n} images can be read")


@dataclass
class Batch:
    """One batch on its way through the pipeline: read (``groups``: images by size), attacked (``jobs``: the
    measures left to make, ``attack_s``), measured (``rows``: every image's rows)."""

    todo: Mapping[int, list[str]]
    groups: dict[tuple[int, ...], list[tuple[int, Tensor, Tensor]]] = field(default_factory=dict)
    instance_ids: dict[int, Tensor] = field(default_factory=dict)
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    jobs: list[Callable[[], None]] = field(default_factory=list)
    attack_s: float = 0.0
    prepared: list[Group] | None = None  # once ``prepare`` has run: the groups' images, predictions and labels


@dataclass
class Group:
    """One group of equally sized images of a batch, prepared for the attack: the images on the device, their clean
    prediction, the images to attack (``ok``: positions in ``items``), their labels and clean instances."""

    items: list[tuple[int, Tensor, Tensor]]
    ok: list[int]
    xs: Tensor | None = None  # (len(ok), 3, H, W) in [0, 1]
    ps: Tensor | None = None  # (len(ok), H, W) clean prediction
    truth: Tensor | None = None
    labels: Tensor | None = None  # the goal's labels of ps (hide: the nearest-other-class target)
    instances: dict[str, Any] = field(default_factory=dict)  # clean_instances of ps


def default_read_workers(device: torch.device) -> int:
    """Reading processes ``run_experiment`` uses by default: up to 4 (half the CPU cores) on a GPU, where the
    CPU is otherwise idle; none on a CPU, where they would take cores from the attack."""
    return min(4, (os.cpu_count() or 1) // 2) if device.type == "cuda" else 0


def load_item(dataset: Any, i: int, with_instances: bool) -> tuple[Any, Any, Any]:
    """Item ``i`` of ``dataset`` as it gives it: (image, label, ground-truth instance ids or None), unchecked."""
    image, label = dataset[i]
    return image, label, (dataset.instance_ids(i) if with_instances else None)


#: An item as a reading process returns it: (index, image, label, instance ids or None, None or why unreadable).
Item = tuple[int, Any, Any, Any, "str | None"]


class Items(torch.utils.data.Dataset[Item]):
    """A data set's items for ``DataLoader`` reading processes, an unreadable file as its message (the run counts
    it and goes on) rather than an error that would stop the loader."""

    def __init__(self, dataset: Any, with_instances: bool) -> None:
        self.dataset, self.with_instances = dataset, with_instances

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Item:
        try:
            image, label, ids = load_item(self.dataset, i, self.with_instances)
        except UnreadableImageError as err:
            return i, None, None, None, str(err)
        return i, image, label, ids, None


def _as_list(items: list[Item]) -> list[Item]:
    return items


#: Makes a ``Batch`` from the items of its ``todo`` as ``Items`` gives them (``loop.BatchRunner.assemble``).
Assemble = Callable[[Mapping[int, list[str]], Sequence[Item], list[str]], Batch]


def read_batches(
    dataset: Any,
    todos: Sequence[Mapping[int, list[str]]],
    ids: list[str],
    *,
    assemble: Assemble,
    workers: int,
    with_instances: bool,
) -> Iterator[Batch]:
    """The batches of ``todos``, read in order: as they are asked for, on the asking thread (``workers=0``), or
    ahead of time in ``workers`` processes (a ``DataLoader``, two batches ahead per worker), started here, on the
    calling thread, before any worker thread (a fork from a reader thread left workers that failed at exit)."""
    if workers == 0 or not todos:
        items = Items(dataset, with_instances)
        return (assemble(todo, [items[i] for i in todo], ids) for todo in todos)
    loader = torch.utils.data.DataLoader(
        Items(dataset, with_instances), batch_sampler=[list(todo) for todo in todos],
        num_workers=min(workers, len(todos)), collate_fn=_as_list, prefetch_factor=2,
        pin_memory=False,  # the attack pins each batch once it is stacked
    )  # fmt: skip
    return _read_ahead(iter(loader), todos, assemble, ids)


def _read_ahead(
    it: Iterator[list[Item]], todos: Sequence[Mapping[int, list[str]]], assemble: Assemble, ids: list[str]
) -> Generator[Batch, None, None]:
    """The batches a DataLoader's iterator ``it`` reads ahead; its workers stop at the last one, or on close."""
    try:
        for n, todo in enumerate(todos):
            items = next(it)
            if n + 1 == len(todos):
                next(it, None)  # at its end the loader stops its workers itself
            yield assemble(todo, items, ids)
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # now, not when the iterator is collected
        if shutdown is not None:
            shutdown()
