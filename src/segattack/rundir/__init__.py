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

from .files import (
    LOCK_FILE,
    MANIFEST_FILE,
    RunLock,
    append_jsonl,
    atomic_open,
    check_writable_dir,
    config_diff,
    json_safe,
    lock_directory,
    read_jsonl,
    rewrite_jsonl,
    write_bytes,
    write_json,
    write_text,
)
from .layout import (
    CONFIG_FILE,
    FIGURE1_CACHE_DIR,
    FIGURE1_PREFIX,
    FIGURE_STEMS,
    FIGURE_SUFFIXES,
    IMAGES_DIR,
    KINDS,
    REPORT_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    SURVIVAL_FILE,
    THUMB_CLASSES_KEY,
    THUMB_KINDS,
    THUMBS_DIR,
    check_kind,
    clear_experiment_outputs,
    directory_kind,
    experiment_outputs,
    figure1_path,
    image_file,
    legacy_outputs,
    output_name,
    outputs_under,
    read_config,
    read_manifest,
    record_outputs,
    remove_output,
    run_files,
    run_outputs,
    safe_name,
    thumbnail_dir,
)
from .rows import (
    COUNT_FIELDS,
    DEFAULT_ATTACK,
    MODES,
    NUMERIC_FIELDS,
    ROW_FIELDS,
    STATUSES,
    RowCheck,
    check_rows,
    load_results,
    normalise_row,
    parse_results,
    read_checked,
    read_rows,
    row_problem,
    rows_of_attacks,
)

__all__ = [
    "RESULTS_FILE",
    "CONFIG_FILE",
    "SUMMARY_FILE",
    "SURVIVAL_FILE",
    "REPORT_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "IMAGES_DIR",
    "THUMBS_DIR",
    "THUMB_CLASSES_KEY",
    "THUMB_KINDS",
    "thumbnail_dir",
    "FIGURE1_CACHE_DIR",
    "FIGURE1_PREFIX",
    "FIGURE_STEMS",
    "FIGURE_SUFFIXES",
    "KINDS",
    "MODES",
    "STATUSES",
    "ROW_FIELDS",
    "NUMERIC_FIELDS",
    "COUNT_FIELDS",
    "DEFAULT_ATTACK",
    "RunLock",
    "RowCheck",
    "write_bytes",
    "write_text",
    "write_json",
    "atomic_open",
    "append_jsonl",
    "read_jsonl",
    "rewrite_jsonl",
    "json_safe",
    "config_diff",
    "check_rows",
    "row_problem",
    "normalise_row",
    "parse_results",
    "load_results",
    "read_rows",
    "read_checked",
    "rows_of_attacks",
    "read_config",
    "safe_name",
    "output_name",
    "figure1_path",
    "image_file",
    "run_files",
    "read_manifest",
    "directory_kind",
    "check_kind",
    "record_outputs",
    "remove_output",
    "run_outputs",
    "legacy_outputs",
    "outputs_under",
    "experiment_outputs",
    "clear_experiment_outputs",
    "check_writable_dir",
    "lock_directory",
]
