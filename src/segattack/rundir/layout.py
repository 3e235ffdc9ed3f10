"""What lies in a run directory: its file names, its kind, and the manifest of what its runs wrote.

A directory written by segattack belongs to one job, its **kind** (``KINDS``: ``run`` for ``segattack run`` and
``demo``, ``universal``, ``patch``, ``compare``, ``train``, ``robustness``). ``check_kind`` refuses a directory of
another kind before any work is done, so a ``universal`` never replaces the ``results.jsonl`` of a ``run``, nor a
``compare`` its ``report.html``.

The **manifest** (``DIR/.segattack-manifest.json``, written atomically) records the kind and every file and folder
the directory's runs wrote, each recorded *before* it is written (``record_outputs``), as the topmost path that did
not exist yet: ``images`` for a new ``DIR/images/eps2/full/a.png``, but ``images/eps2`` where ``DIR/images`` was
already there (the user's own folder, say). ``--overwrite`` (``clear_experiment_outputs``) removes only what it
lists, and a folder data set read from inside a run directory leaves those outputs out (``run_outputs``).

A directory written before manifests existed (no manifest, a ``config.json`` of an experiment) is read by the names
its runs always used (``legacy_outputs``): ``results.jsonl`` and ``config.json`` (when ``config.json`` holds an
experiment), ``summary.csv``, ``survival.csv``, ``report.html``, the figures, ``figure1_*.npz/png`` and
``.figure1_cache``; of ``images/`` and ``thumbs/`` only what has the run's layout (``images/[attack/]eps<E>/<mode>/
*.png``, ``thumbs/<image>/{image,adv,pred,pred_adv}.png``): a whole folder only when every file in it has that
layout, else the matching sub-folders, so a folder holding files the run did not write is never removed. The first
run that records an output there writes the manifest, starting from those names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InputError, RunDirError
from .files import MANIFEST_FILE, TMP_SUFFIX, lock_directory, write_json

__all__ = [
    "RESULTS_FILE",
    "CONFIG_FILE",
    "SUMMARY_FILE",
    "SURVIVAL_FILE",
    "REPORT_FILE",
    "IMAGES_DIR",
    "THUMBS_DIR",
    "THUMB_KINDS",
    "THUMB_CLASSES_KEY",
    "thumbnail_dir",
    "FIGURE1_CACHE_DIR",
    "FIGURE1_PREFIX",
    "FIGURE_STEMS",
    "FIGURE_SUFFIXES",
    "KINDS",
    "MANIFEST_FORMAT",
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
    "run_outputs",
    "legacy_outputs",
    "experiment_outputs",
    "clear_experiment_outputs",
    "outputs_under",
    "remove_output",
]

RESULTS_FILE = "results.jsonl"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.csv"
REPORT_FILE = "report.html"
IMAGES_DIR = "images"
THUMBS_DIR = "thumbs"
#: The thumbnails of one image (file stems under ``thumbs/<output_name(id)>/``) and their captions, in card order.
THUMB_KINDS: dict[str, str] = {
    "image": "original image",
    "adv": "adv. example",
    "pred": "prediction",
    "pred_adv": "pred. on adv.",
}
#: The PNG text chunk of the prediction thumbnails: the classes present, "id=name;id=name".
THUMB_CLASSES_KEY = "segattack:classes"
#: Figure 1 candidates saved during a run (the attack at the Figure 1 eps of every image, up to a size budget), so that
#: the images chosen afterwards need no second attack; removed once Figure 1 is written.
FIGURE1_CACHE_DIR = ".figure1_cache"
FIGURE1_PREFIX = "figure1_"
#: Figures the report writes, as stems; each is written as .png, .svg and (Figure 2) .pdf.
FIGURE_STEMS = ("figure2", "attacks", "survival")
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
#: The survival summary's file (``segattack.report``: the rows with a ``transform``), beside ``summary.csv``.
SURVIVAL_FILE = "survival.csv"

#: The kinds of directory segattack writes, and the command that writes each.
KINDS: dict[str, str] = {
    "run": "segattack run",
    "universal": "segattack universal",
    "patch": "segattack patch",
    "compare": "segattack compare",
    "train": "segattack train",
    "robustness": "segattack robustness",
}
MANIFEST_FORMAT = 1
#: Files that tell a directory written before manifests existed by its kind (besides an experiment's config.json).
_KIND_MARKERS = (("compare", "compare.json"), ("universal", "universal.npz"), ("patch", "patch.npz"),
                 ("train", "checkpoint.pt"), ("train", "metrics.jsonl"))  # fmt: skip
#: Files a job of each kind writes under fixed names: refused where something else put them.
_FIXED_NAMES = {"run": (CONFIG_FILE, RESULTS_FILE), "universal": ("universal.npz", RESULTS_FILE, "summary.json"),
                "patch": ("patch.npz", "patch_state.pt", CONFIG_FILE, RESULTS_FILE, "summary.json"),
                "compare": ("compare.json", "transfer.jsonl"),
                "robustness": (CONFIG_FILE, RESULTS_FILE, "robustness.json")}  # fmt: skip
_MODE_NAMES = ("full", "posthoc", "during")
_THUMB_NAMES = frozenset({"image.png", "adv.png", "pred.png", "pred_adv.png"})
_EPS_DIR = re.compile(r"eps\d+(\.\d+)?")
_TMP_NAME = re.compile(rf".+\.\d+-\d+{re.escape(TMP_SUFFIX)}")


def read_config(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of an experiment directory (``RunDirError`` if missing or not a JSON object)."""
    path = Path(out_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{out_dir} holds no {CONFIG_FILE}: is it an experiment directory?") from None
    except NotADirectoryError:
        raise RunDirError(f"{out_dir} is a file, not an experiment directory") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); rerun the experiment with --overwrite") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path} must hold a JSON object; rerun the experiment with --overwrite")
    return config


# -- file names -----------------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(image_id: str) -> str:
    """An image id reduced to file-name characters (``frankfurt/x_1`` -> ``frankfurt_x_1``); not unique.

    >>> safe_name("frankfurt/frankfurt_000000_000294")
    'frankfurt_frankfurt_000000_000294'
    """
    return _UNSAFE.sub("_", image_id).strip("._") or "image"


def output_name(image_id: str) -> str:
    """The file-name stem of an image's outputs, unique per image id.

    An id made only of ``A-Za-z0-9._-`` (and not starting with a dot) is its own name; any other id is reduced to
    those characters and gets the first 10 hex digits of its SHA-256, so ``a b``, ``a?b`` and ``a_b`` never share a
    file. Case is kept: on a case-insensitive file system ids that differ only in case share a file.

    >>> output_name("val_000001"), output_name("a b"), output_name("a?b")
    ('val_000001', 'a_b-c8687a08aa', 'a_b-c2a7b64a2d')
    """
    if image_id and _UNSAFE.search(image_id) is None and not image_id.startswith(".") and not image_id.endswith("."):
        return image_id
    digest = hashlib.sha256(image_id.encode("utf-8")).hexdigest()[:10]
    return f"{safe_name(image_id)[:100]}-{digest}"


def thumbnail_dir(out_dir: str | os.PathLike[str], image_id: str) -> Path:
    """``DIR/thumbs/<output_name(image_id)>``: where the thumbnails of one image go."""
    return Path(out_dir) / THUMBS_DIR / output_name(image_id)


def figure1_path(out_dir: str | os.PathLike[str], image_id: str, suffix: str = ".npz") -> Path:
    """``DIR/figure1_<output_name(id)><suffix>``."""
    return Path(out_dir) / f"{FIGURE1_PREFIX}{output_name(image_id)}{suffix}"


def _eps_name(eps_level: float) -> str:
    e = float(eps_level)
    return f"eps{int(e) if e.is_integer() else e}"


def image_file(image_id: str, *, eps_level: float, mode: str, attack: str | None = None) -> str:
    """Where ``--save-images`` puts an adversarial image, relative to the run directory:
    ``images/[attack/]eps<E>/<mode>/<output_name(id)>.png`` (the attack's folder when a run has several attacks).

    >>> image_file("a b", eps_level=2.0, mode="full")
    'images/eps2/full/a_b-c8687a08aa.png'
    """
    folder = PurePosixPath(IMAGES_DIR, attack) if attack else PurePosixPath(IMAGES_DIR)
    return str(folder / _eps_name(eps_level) / mode / f"{output_name(image_id)}.png")


def run_files(
    image_ids: Iterable[str], *, attacks: Sequence[str], eps_levels: Sequence[float], modes: Sequence[str],
    save_images: bool,
) -> list[str]:  # fmt: skip
    """What a run of ``segattack run`` may write before its Figure 1 (relative paths, for ``record_outputs``):
    ``config.json``, ``results.jsonl``, the report's thumbnails, the Figure 1 candidates and, with ``save_images``,
    every adversarial image (``image_file``)."""
    ids = list(image_ids)
    paths = [CONFIG_FILE, RESULTS_FILE, FIGURE1_CACHE_DIR]
    paths += [f"{THUMBS_DIR}/{output_name(i)}" for i in ids]
    if save_images:
        several = len(attacks) > 1
        paths += [image_file(i, eps_level=e, mode=m, attack=a if several else None)
                  for a in attacks for e in eps_levels for m in modes for i in ids]  # fmt: skip
    return paths


# -- kinds and the manifest -----------------------------------------------------------------------------------------


def _relative(entry: Any, path: Path) -> str:
    """A manifest entry checked: a relative POSIX path inside the directory."""
    p = PurePosixPath(entry) if isinstance(entry, str) else None
    if p is None or not entry or p.is_absolute() or ".." in p.parts or str(p) != entry:
        raise RunDirError(
            f"{path} lists {entry!r}, not a path inside its directory; remove {path.name} (segattack then "
            "recognises its outputs by name) or choose another output directory"
        )
    return entry


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of ``directory`` (``{"format", "kind", "written": [relative paths]}``), None without one;
    ``RunDirError`` when it is not a manifest."""
    path = Path(directory) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path} cannot be read ({err}); remove it (segattack then recognises its outputs by name) "
                          "or choose another output directory") from None  # fmt: skip
    written = data.get("written") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("kind") not in KINDS or not isinstance(written, list):
        raise RunDirError(f"{path} is not a segattack manifest (a kind of {', '.join(KINDS)} and a list 'written'); "
                          "remove it or choose another output directory")  # fmt: skip
    return {"format": data.get("format", MANIFEST_FORMAT), "kind": data["kind"],
            "written": [_relative(e, path) for e in written]}  # fmt: skip


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_rows(path: Path) -> bool:
    """Whether the first row of a JSONL file has the fields of an experiment's rows."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
    except OSError:
        return False
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return isinstance(row, dict) and {"index", "eps", "mode", "status"} <= row.keys()


def _legacy_kind(d: Path) -> str | None:
    for kind, marker in _KIND_MARKERS:
        if (d / marker).exists():
            return kind
    config = _json_object(d / CONFIG_FILE) if (d / CONFIG_FILE).is_file() else None
    if config is not None and "experiment" in config:
        return "run"
    if config is None and (d / RESULTS_FILE).is_file() and _run_rows(d / RESULTS_FILE):
        return "run"
    return None


def directory_kind(directory: str | os.PathLike[str]) -> str | None:
    """The kind of a directory (a key of ``KINDS``): its manifest's, else told by the files a job of that kind
    always writes (``compare.json``, ``universal.npz``, ``patch.npz``, ``checkpoint.pt``/``metrics.jsonl``, an
    experiment's ``config.json`` or result rows); None for a directory no segattack job wrote into."""
    d = Path(directory)
    manifest = read_manifest(d)
    if manifest is not None:
        return str(manifest["kind"])
    return _legacy_kind(d) if d.is_dir() else None


def check_kind(directory: str | os.PathLike[str], kind: str, *, option: str = "--out") -> None:
    """Refuse (``RunDirError``, one line naming both kinds and the fix) a directory that holds another kind of
    segattack output than ``kind``: a directory of one kind is never reused as another. Call it before any work."""
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    found = directory_kind(directory)
    if found is not None and found != kind:
        raise RunDirError(
            f"{directory} holds the output of `{KINDS[found]}`, and `{KINDS[kind]}` would replace its files; "
            f"choose another {option} for `{KINDS[kind]}`"
        )
    if found is None:  # files of the names this kind writes, that no segattack job wrote: never replaced
        theirs = [n for n in _FIXED_NAMES.get(kind, ()) if os.path.lexists(Path(directory) / n)]
        if theirs:
            raise RunDirError(
                f"{directory} holds {' and '.join(theirs)} that `{KINDS[kind]}` did not write and would replace; "
                f"move {'them' if len(theirs) > 1 else 'it'} away or choose another {option}"
            )


def _claim(root: Path, rel: str, written: set[str]) -> str | None:
    """The entry that records ``rel`` (about to be written): its topmost part that does not exist yet (or ``rel``
    itself); None when a listed entry already holds it."""
    parts = PurePosixPath(rel).parts
    for k in range(1, len(parts) + 1):
        prefix = "/".join(parts[:k])
        if prefix in written:
            return None
        if k == len(parts) or not (root / prefix).exists():
            return prefix
    return None


def record_outputs(directory: str | os.PathLike[str], paths: Iterable[str | os.PathLike[str]], *, kind: str) -> None:
    """Record in the manifest, before they are written, the files and folders ``paths`` (relative to ``directory``,
    or absolute paths inside it) that a job of ``kind`` is about to write; each as the topmost part that does not
    exist yet (see the module docstring). Atomic and safe against a report redrawn beside a run (the folder is
    locked while the manifest is updated); ``RunDirError`` for a directory of another kind."""
    root = Path(directory)
    with lock_directory(root):
        manifest = read_manifest(root)
        if manifest is None:
            found = _legacy_kind(root)
            check_kind(root, kind)
            seed = [p.relative_to(root).as_posix() for p in legacy_outputs(root)] if found == kind else []
            manifest = {"format": MANIFEST_FORMAT, "kind": kind, "written": seed}
            changed = True
        elif manifest["kind"] != kind:
            check_kind(root, kind)
            return
        else:
            changed = False
        written: set[str] = set(manifest["written"])
        for path in paths:
            p = Path(path)  # relative to the directory, or absolute and inside it
            rel = (p.relative_to(root.resolve()) if p.is_absolute() else p).as_posix()
            entry = _claim(root, _relative(rel, root / MANIFEST_FILE), written)
            if entry is not None:
                written.add(entry)
                manifest["written"].append(entry)
                changed = True
        if changed:
            write_json(root / MANIFEST_FILE, manifest)


def _matches(path: PurePosixPath, pattern: str) -> bool:
    if pattern == IMAGES_DIR:  # [attack/]eps<E>/<mode>/<image>.png
        parts = path.parts
        if len(parts) == 4:
            parts = parts[1:]
        return (len(parts) == 3 and _EPS_DIR.fullmatch(parts[0]) is not None and parts[1] in _MODE_NAMES
                and parts[2].endswith(".png"))  # fmt: skip
    return len(path.parts) == 2 and path.parts[1] in _THUMB_NAMES  # thumbs: <image>/<kind>.png


def _own_parts(folder: Path, pattern: str) -> list[Path]:
    """``folder`` if every file in it has the run's layout, else its sub-folders where every file has it."""
    files = [p for p in folder.rglob("*") if not p.is_dir()]
    if all(_matches(PurePosixPath(p.relative_to(folder).as_posix()), pattern) for p in files):
        return [folder]
    out: list[Path] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        inner = [p for p in files if p.is_relative_to(sub)]
        if inner and all(_matches(PurePosixPath(p.relative_to(folder).as_posix()), pattern) for p in inner):
            out.append(sub)
    return out


#: What the other kinds always wrote, by name (``legacy_outputs`` of a directory from before manifests).
_LEGACY_NAMES = {
    "universal": ("universal.npz", "universal.png", RESULTS_FILE, "summary.json", "examples.png"),
    "compare": ("compare.json", "clean.json", "transfer.jsonl", "transfer.csv", REPORT_FILE, "compare.png",
                "compare.svg", "transfer.png", "transfer.svg", "models"),
}  # fmt: skip


def legacy_outputs(directory: str | os.PathLike[str]) -> list[Path]:
    """The outputs of a directory written before manifests existed, by the names its jobs always used (see the
    module docstring for an experiment's); nothing for a directory no segattack job wrote (or a training's)."""
    out = Path(directory)
    kind = _legacy_kind(out)
    if kind in _LEGACY_NAMES:
        return [out / n for n in _LEGACY_NAMES[kind] if os.path.lexists(out / n)]
    if kind != "run":
        return []
    names = [RESULTS_FILE, CONFIG_FILE, SUMMARY_FILE, SURVIVAL_FILE, REPORT_FILE, FIGURE1_CACHE_DIR]
    names += [stem + suffix for stem in FIGURE_STEMS for suffix in FIGURE_SUFFIXES]
    found = [out / n for n in names if (out / n).exists()]
    found += sorted(out.glob(f"{FIGURE1_PREFIX}*.npz")) + sorted(out.glob(f"{FIGURE1_PREFIX}*.png"))
    for folder in (IMAGES_DIR, THUMBS_DIR):
        if (out / folder).is_dir() and not (out / folder).is_symlink():
            found += _own_parts(out / folder, folder)
    return found


def run_outputs(directory: str | os.PathLike[str]) -> list[Path]:
    """The files and folders of ``directory`` that its segattack runs wrote and that exist: those its manifest
    lists, else (a directory from before manifests) ``legacy_outputs``."""
    out = Path(directory)
    manifest = read_manifest(out)
    if manifest is None:
        return legacy_outputs(out)
    return [out / e for e in manifest["written"] if os.path.lexists(out / e)]


def remove_output(directory: str | os.PathLike[str], name: str) -> bool:
    """Remove ``DIR/name`` (a file) where the directory's runs wrote it (``run_outputs``), e.g. a figure an earlier
    run drew and this one does not; a file of that name that segattack did not write is left. Returns whether it
    was removed."""
    out = Path(directory)
    path = out / name
    if not path.is_file() or path not in run_outputs(out):
        return False
    path.unlink()
    return True


def outputs_under(root: str | os.PathLike[str]) -> list[Path]:
    """Every run output (``run_outputs``) in ``root``, in the folders above it and in the folders below it: what
    a data set read from ``root`` must leave out, so that a run never reads what a run wrote. A folder counts when it
    holds a manifest or an experiment's ``config.json``."""
    base = Path(root).resolve()
    found: list[Path] = []
    for folder in [base, *base.parents]:
        if (folder / MANIFEST_FILE).is_file() or (folder / CONFIG_FILE).is_file():
            found += run_outputs(folder)
    if base.is_dir():
        for marker in (MANIFEST_FILE, CONFIG_FILE):
            for hit in base.rglob(marker):
                if hit.parent != base and hit.is_file():
                    found += run_outputs(hit.parent)
    return [p.resolve() for p in dict.fromkeys(found)]


def experiment_outputs(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The files and folders ``--overwrite`` removes from an experiment directory: what its runs and reports wrote
    (``run_outputs``) and the temporary files of an interrupted atomic write; nothing else is touched."""
    out = Path(out_dir)
    found = run_outputs(out)
    found += sorted(p for p in out.glob(f"*{TMP_SUFFIX}") if _TMP_NAME.fullmatch(p.name) and p not in found)
    return found


def clear_experiment_outputs(out_dir: str | os.PathLike[str]) -> None:
    """Remove ``experiment_outputs(out_dir)`` and the manifest (the next run records its outputs afresh)."""
    out = Path(out_dir)
    with lock_directory(out) if out.is_dir() else contextlib.nullcontext():
        for p in experiment_outputs(out):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        (out / MANIFEST_FILE).unlink(missing_ok=True)
