"""Atomic files, append-only JSONL and the run lock: the low-level half of ``segattack.rundir``.

- **Atomic files**: ``write_bytes`` / ``write_text`` / ``write_json`` write a temporary file beside the target,
  fsync it, rename it over the target and fsync the directory: a reader sees the old file or the new one, never half.
- **Append-only JSONL**: ``append_jsonl`` appends whole lines and fsyncs; ``read_jsonl`` drops a torn last line
  (a crash mid-write) and corrupt lines with a warning, and ``rewrite_jsonl`` writes the kept lines back atomically.
- **One writer at a time**: ``RunLock`` holds an advisory lock (``flock``) on ``DIR/.segattack.lock`` while a run
  writes; a second run on the same directory is refused at once with a message naming the holder. The operating
  system releases the lock when the holder dies, so a crashed or killed run never leaves it stuck.
- **Configurations**: ``config_diff`` tells what changed between a stored and a requested configuration.
- **JSON-safe values**: ``json_safe`` turns NaN/inf into ``null``, tensors and numpy scalars into numbers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..errors import DataNotFoundError, InputError, InputTypeError, RunDirError

__all__ = [
    "LOCK_FILE",
    "MANIFEST_FILE",
    "jsonl_lines",
    "TMP_SUFFIX",
    "RunLock",
    "write_bytes",
    "write_text",
    "write_json",
    "atomic_open",
    "read_npz",
    "append_jsonl",
    "read_jsonl",
    "rewrite_jsonl",
    "json_safe",
    "config_diff",
    "check_writable_dir",
    "lock_directory",
]

log = logging.getLogger(__name__)

LOCK_FILE = ".segattack.lock"
#: The manifest of what the runs in a directory wrote (``segattack.rundir.layout``).
MANIFEST_FILE = ".segattack-manifest.json"
TMP_SUFFIX = ".tmp"


# -- atomic files ---------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows); the rename itself is atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it is fsync'ed and renamed over ``path``, on
    an error it is removed and ``path`` keeps its old content. ``mode`` is ``"wb"`` or ``"w"`` (UTF-8)."""
    if mode not in ("wb", "w"):
        raise InputError(f"atomic_open writes new files only: mode 'wb' or 'w', got {mode!r}")
    target = Path(path)
    # unique per writer: two processes writing one file (a report redrawn while a run writes it) never share it
    tmp = target.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident() % 10**6}{TMP_SUFFIX}")
    fh: IO[Any] = open(tmp, mode) if mode == "wb" else open(tmp, mode, encoding="utf-8", newline="")  # noqa: SIM115
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, target)
    except BaseException:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``json_safe(obj)`` to ``path`` atomically (strict JSON: no NaN)."""
    return write_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")


def json_safe(value: Any) -> Any:
    """Plain JSON values: NaN/inf to None, tensors and numpy values to numbers and lists, paths to strings.

    >>> json_safe({"a": float("nan"), "b": (1, 2.5), "c": float("inf")})
    {'a': None, 'b': [1, 2.5], 'c': None}
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # tensors, numpy arrays and scalars
        return json_safe(value.tolist())
    raise InputTypeError(f"cannot write a {type(value).__name__} as JSON; pass numbers, strings, lists or dicts")



def read_npz(path: str | os.PathLike[str], *, what: str, missing: str, file_format: str) -> dict[str, Any]:
    """The arrays of an .npz file a segattack job wrote (``np.savez_compressed`` through ``atomic_open``), read
    without loading pickles, after checking its ``format`` entry is ``file_format``. ``DataNotFoundError`` ("no
    {missing} file ...") where there is no file, ``InputError`` where it is not such a file (``what`` names it)."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no {missing} file {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{str(path)!r} is not a saved {what} (.npz): {err}") from err
    if str(data.get("format", "")) != file_format:
        raise InputError(f"{str(path)!r} is not a segattack {what} (format {file_format})")
    return data

# -- JSONL ----------------------------------------------------------------------------------------------------------


def append_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Append ``rows`` as whole JSON lines (``json_safe`` values) and fsync before returning."""
    data = b"".join(json.dumps(json_safe(dict(r)), allow_nan=False).encode() + b"\n" for r in rows)
    if not data:
        return
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def jsonl_lines(data: bytes) -> tuple[bool, list[tuple[int, bytes, Any]]]:
    """The lines of a JSONL file's bytes: whether its last line is torn (no newline: a crash while writing; left
    out), and per non-empty complete line its number, its bytes and its JSON value (None if it is not JSON).

    >>> jsonl_lines(b'{"a": 1}\\n\\nnot json\\n{"b"')
    (True, [(1, b'{"a": 1}', {'a': 1}), (3, b'not json', None)])
    """
    lines = data.split(b"\n")
    out: list[tuple[int, bytes, Any]] = []
    for n, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        out.append((n, line, value))
    return lines[-1].strip() != b"", out


def read_jsonl(
    path: str | os.PathLike[str], *, accept: Callable[[Any], bool] | None = None
) -> tuple[list[dict[str, Any]], list[bytes], bool]:
    """The rows of a JSONL file, their raw lines, and whether anything was dropped.

    A last line without its newline (a crash while writing) and lines that are not JSON objects (or that
    ``accept`` rejects) are dropped with a warning. A missing file reads as empty. The file is left as it is.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return [], [], False
    torn, lines = jsonl_lines(data)
    dropped = torn
    if torn:
        log.warning("%s: dropping an incomplete last line (the previous run stopped while writing it)", p)
    rows: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for n, line, row in lines:
        if not isinstance(row, dict) or (accept is not None and not accept(row)):
            log.warning("%s:%d: skipping a corrupt line", p, n)
            dropped = True
            continue
        rows.append(row)
        raw.append(line)
    return rows, raw, dropped


def rewrite_jsonl(path: str | os.PathLike[str], lines: Iterable[bytes]) -> None:
    """Replace a JSONL file atomically by ``lines`` (raw lines as ``read_jsonl`` returns them)."""
    write_bytes(path, b"".join(line + b"\n" for line in lines))


# -- the lock -------------------------------------------------------------------------------------------------------


class RunLock:
    """An exclusive, non-blocking advisory lock on a run directory, held for the ``with`` block.

    A second holder is refused at once with ``RunDirError`` naming the first (its pid, host, command and start
    time). The lock is an ``flock`` on ``DIR/.segattack.lock``: the kernel drops it when the holding process ends,
    however it ends, so a crashed run never leaves the directory locked. ``what`` says what the holder does.
    Within one process the lock is re-entrant (the command line holds it around an experiment that takes it too).
    """

    _held: dict[str, list[Any]] = {}  # resolved directory -> [open lock file, depth, created]: this process's locks

    def __init__(self, directory: str | os.PathLike[str], what: str = "segattack run") -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.what = what
        self._key: str | None = None

    def acquire(self) -> RunLock:
        created = not self.directory.exists()
        check_writable_dir(self.directory)
        key = str(self.directory.resolve())
        if key in RunLock._held:
            RunLock._held[key][1] += 1
            self._key = key
            return self
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            _lock_file(fh)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunDirError(
                f"{self.directory} is in use by another segattack process ({holder}); wait for it to finish, or "
                "choose another output directory (two runs into one directory would count images twice)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, {self.what}, since {time.strftime('%H:%M:%S')}\n")
        fh.flush()
        RunLock._held[key] = [fh, 1, created]
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        entry = RunLock._held[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            fh = entry[0]
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
            _unlock_file(fh)
            fh.close()
            del RunLock._held[self._key]
            if entry[2]:  # a directory this lock created and nothing wrote into: leave nothing behind
                with contextlib.suppress(OSError):
                    if {p.name for p in self.directory.iterdir()} <= {LOCK_FILE, MANIFEST_FILE}:
                        (self.directory / MANIFEST_FILE).unlink(missing_ok=True)  # it lists nothing that exists
                        self.path.unlink()
                        self.directory.rmdir()
        self._key = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


try:
    import fcntl

    def _lock_file(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _lock_file(fh: IO[str]) -> None:
        fh.seek(0)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            raise BlockingIOError from None

    def _unlock_file(fh: IO[str]) -> None:
        fh.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


@contextlib.contextmanager
def lock_directory(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder itself for a short read-modify-write of a file in it (the
    manifest, which a run and a report redrawn beside it may both update), and a lock within this process. Blocks
    until the folder is free; where folders cannot be locked (Windows) only the in-process lock is held."""
    with _DIR_LOCK:
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            yield
            return
        try:
            with contextlib.suppress(OSError, NameError):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor drops its flock


_DIR_LOCK = threading.RLock()


def check_writable_dir(directory: str | os.PathLike[str], *, create: bool = True) -> Path:
    """Check that files can be written in ``directory`` and create it (with parents) unless ``create=False``;
    ``RunDirError`` with the cause and the fix otherwise (an existing file, a path under a file, no permission).
    With ``create=False`` nothing is made: the nearest existing folder above a missing one must be writable."""
    d = Path(directory)
    existing = d
    for parent in [d, *d.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is" if parent == d else f"lies under {parent}, which is"
            raise RunDirError(f"output directory {d} {where} a file, not a directory; choose another directory")
        if parent.exists():
            existing = parent
            break
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "output directory" if existing == d else f"folder {existing}, where output directory {d} would go,"
        raise RunDirError(f"{what} is not writable; choose another directory or fix its permissions")
    if create:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(f"cannot create output directory {d}: {err.strerror}; choose another directory") from None
    return d


# -- configurations -------------------------------------------------------------------------------------------------


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> list[str]:
    """``"key: old -> new"`` for every top-level key that differs (after a JSON round trip, so tuples equal lists
    and NaN equals null), leaving out ``ignore``.

    >>> config_diff({"eps": [1, 2], "seed": 0}, {"eps": (1, 4), "seed": 0})
    ['eps: [1, 2] -> [1, 4]']
    """
    a = json.loads(json.dumps(json_safe(dict(old))))
    b = json.loads(json.dumps(json_safe(dict(new))))
    skip = set(ignore)
    keys = sorted((set(a) | set(b)) - skip)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
