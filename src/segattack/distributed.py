"""Many processes on one experiment: ``torchrun`` launches them, ``torch.distributed`` ties them together.

``torchrun --nproc-per-node N -m segattack run ...`` (or ``--nnodes M`` with a rendezvous endpoint) starts N (x M)
processes with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and ``MASTER_ADDR`` in their environment. ``world()`` reads
them (rank 0 of a world of 1 without them); ``session(device)`` initialises ``torch.distributed`` for the ``with``
block where the world has more than one process: backend ``gloo`` on CPU, ``nccl`` with CUDA devices (the process
group models may use), and in both cases a ``gloo`` group of its own for the few control messages the experiment
sends (``World.agree``, ``World.broadcast``, ``World.barrier``: Python objects on the CPU). In a single process every
one of them is a no-op, and nothing is imported from ``torch.distributed``.

``append_rows`` appends result rows to a JSONL file shared by the processes (one file system, local or network):
one ``O_APPEND`` write per call, fsync'ed, under an exclusive ``flock`` on a lock file beside it, so the lines of
different processes never interleave.

The collectives time out after ``SEGATTACK_DIST_TIMEOUT_S`` seconds (default 86400: ranks may finish their share
of a long run hours apart); a process that dies is noticed by ``torchrun``, which stops the others.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SegattackError, UserError

__all__ = ["World", "world", "session", "local_device", "append_rows", "pin_local_gpu", "APPEND_LOCK_FILE", "ENV_VARS"]

#: The variables torchrun sets that mark a process as one of many.
ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
#: The lock file taken around every append to a shared results file (beside it).
APPEND_LOCK_FILE = ".segattack.append.lock"
DEFAULT_TIMEOUT_S = 86400.0

_state: dict[str, Any] = {"depth": 0, "group": None, "owned": False}


class DistributedError(SegattackError):
    """The environment names a world this process cannot join."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run: ``rank`` of ``size`` (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that checks the configuration, holds the lock, prints and writes the report."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.size > 1

    def _group(self) -> Any:
        if _state["depth"] == 0:
            raise DistributedError("a collective outside distributed.session(): the process group is not set up")
        return _state["group"]

    def barrier(self) -> None:
        """Wait until every process is here (no-op in a single process)."""
        if self.many:
            self.agree(None)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (``obj`` itself in a single process)."""
        if not self.many:
            return obj
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0, group=self._group())
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, by rank, on every process."""
        if not self.many:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj, group=self._group())
        return out

    def agree(self, error: BaseException | str | None) -> None:
        """A barrier that carries errors: every process passes its error (or None); if any has one, every process
        raises: the one that had it re-raises it, the others ``RemoteError`` with its message and rank."""
        if not self.many:
            if isinstance(error, BaseException):
                raise error
            if error is not None:
                raise RemoteError(str(error))
            return
        text = None
        if error is not None:
            text = str(error) if isinstance(error, str) else (str(error).strip() or type(error).__name__)
        messages = self.gather(text)
        if isinstance(error, BaseException):
            raise error
        for r, m in enumerate(messages):
            if m is not None:
                raise RemoteError(f"process {r} of {self.size}: {m}" if r != self.rank else m)


class RemoteError(SegattackError):
    """Another process of the run failed (its message); this one stops too."""


def world() -> World:
    """This process's world from torchrun's environment; rank 0 of 1 without it."""
    if not all(os.environ.get(k) for k in ENV_VARS):
        return World()
    try:
        size, rank, local = (int(os.environ[k]) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
    except ValueError:
        raise DistributedError(f"torchrun's environment is not numbers: {[os.environ[k] for k in ENV_VARS]}") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise DistributedError(f"rank {rank} of world size {size} (local rank {local}) is not a valid place")
    return World(rank, size, local)


def local_device(device: Any, w: World | None = None) -> Any:
    """The device this process runs on: a bare ``cuda`` is ``cuda:LOCAL_RANK`` among many processes (one GPU per
    process); ``cuda:N`` and ``cpu`` are kept as given. Returns a ``torch.device`` (None stays None)."""
    import torch

    if device is None:
        return None
    dev = torch.device(device)
    w = world() if w is None else w
    if dev.type == "cuda" and dev.index is None and w.many:
        count = torch.cuda.device_count()
        if w.local_rank >= count:
            raise UserError(
                f"process {w.rank} has local rank {w.local_rank} but this machine has {count} CUDA device(s); "
                "start at most one process per GPU (torchrun --nproc-per-node), or name one with --device cuda:N"
            )
        dev = torch.device("cuda", w.local_rank)
    return dev


def _timeout() -> datetime.timedelta:
    text = os.environ.get("SEGATTACK_DIST_TIMEOUT_S", "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = DEFAULT_TIMEOUT_S
    return datetime.timedelta(seconds=max(1.0, seconds))


@contextlib.contextmanager
def session(device: Any = None) -> Iterator[World]:
    """The world, with ``torch.distributed`` initialised for the block where it has more than one process
    (re-entrant; a process group set up by the caller is used, not destroyed)."""
    w = world()
    if not w.many:
        yield w
        return
    import torch
    import torch.distributed as dist

    if _state["depth"] == 0:
        dev = local_device(device, w)
        cuda = dev is not None and dev.type == "cuda"
        if cuda:
            torch.cuda.set_device(dev)
        owned = not dist.is_initialized()
        if owned:
            dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=_timeout())
        if dist.get_world_size() != w.size or dist.get_rank() != w.rank:
            raise DistributedError(
                f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, the environment "
                f"rank {w.rank} of {w.size}"
            )
        backend = str(dist.get_backend())
        group = None if backend == "gloo" else dist.new_group(backend="gloo", timeout=_timeout())
        _state.update(group=group, owned=owned)
    _state["depth"] += 1
    try:
        yield w
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0:
            if _state["owned"] and dist.is_initialized():
                dist.destroy_process_group()
            _state.update(group=None, owned=False)


def append_rows(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Append ``rows`` as whole JSON lines to ``path`` in one write, fsync'ed, holding an exclusive ``flock`` on
    ``APPEND_LOCK_FILE`` beside it: safe with many writers (one machine or many on a shared file system)."""
    from .rundir import append_jsonl, json_safe

    data = b"".join(json.dumps(json_safe(dict(r)), allow_nan=False).encode() + b"\n" for r in rows)
    if not data:
        return
    try:
        import fcntl
    except ImportError:  # Windows: one process per run directory
        append_jsonl(path, [json.loads(line) for line in data.splitlines()])
        return
    target = Path(path)
    with open(target.with_name(APPEND_LOCK_FILE), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def pin_local_gpu() -> None:
    """Among many processes on a machine with CUDA, make ``cuda:LOCAL_RANK`` the current device, so that a model
    built on ``cuda`` lands on this process's GPU (a no-op in a single process or without CUDA)."""
    try:
        w = world()
    except DistributedError:
        return
    if not w.many:
        return
    import torch

    if torch.cuda.is_available() and w.local_rank < torch.cuda.device_count():
        torch.cuda.set_device(w.local_rank)
