"""Run directories: the one place that writes, reads, locks and compares what runs leave on disk.

Every command that writes an output directory (``run``, ``demo``, ``universal``, ``compare``, ``train``, ``report``)
goes through this package, so the guarantees hold everywhere:

- **Atomic files** (``files``): ``write_bytes`` / ``write_text`` / ``write_json`` write a temporary file beside the
  target, fsync it, rename it over the target and fsync the directory: a reader sees the old file or the new one.
- **Append-only JSONL**: ``append_jsonl`` appends whole lines and fsyncs; ``read_jsonl`` drops a torn last line
  (a crash mid-write) and corrupt lines with a warning, and ``rewrite_jsonl`` writes the kept lines back atomically.
- **One writer at a time**: ``RunLock`` holds an advisory lock (``flock``) on ``DIR/.segattack.lock`` while a run
  writes; a second run on the same directory is refused at once with a message naming the holder.
- **Kinds and the manifest** (``layout``): a directory belongs to one kind of job (``check_kind``); the manifest
  lists what its runs wrote (``record_outputs``), which is all ``--overwrite`` removes (``clear_experiment_outputs``)
  and what a folder data set inside it leaves out (``outputs_under``).
- **The row schema** (``rows``): ``results.jsonl`` rows are checked whenever they are read (``check_rows``,
  ``read_rows``, ``parse_results``): invalid rows and duplicates are dropped and counted, never averaged in.
- **Configurations**: ``config_diff`` tells what changed between a stored and a requested configuration.
- **JSON-safe values**: ``json_safe`` turns NaN/inf into ``null``, tensors and numpy scalars into numbers.
- **File names**: ``output_name``, a file name per image id that is unique per id.

Nothing here runs a model; ``segattack.report`` reads result directories through this package only.
"""

from __future__ import annotations

from . import files, layout, rows
from .files import *  # noqa: F403 - the package's API is its modules' __all__, listed once there
from .layout import *  # noqa: F403
from .rows import *  # noqa: F403

__all__ = [*files.__all__, *layout.__all__, *rows.__all__]
