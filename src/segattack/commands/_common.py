"""What the experiment commands share: model/data options, eps and class parsing, the progress bar, and the run."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import distributed
from ..errors import ConfigError, SegattackError, UserError
from ..formatting import duration as format_duration  # the name commands import
from ..rundir import DEFAULT_ATTACK, check_writable_dir
from .progress import RunProgress

log = logging.getLogger("segattack.cli")

#: The demo's budgets in 8-bit levels: 1..20 as in the paper's Figure 2, with 10 (the paper's Figure 1).
DEFAULT_EPS: tuple[int, ...] = tuple(range(1, 21))
DEFAULT_DATA = "synthetic"
RESTRICT_MODES: dict[str, tuple[str, ...]] = {
    "posthoc": ("full", "posthoc"),
    "during": ("full", "during"),
    "both": ("full", "posthoc", "during"),
    "none": ("full",),
}

EPS_HELP = "L-inf budgets in 8-bit levels, comma-separated (10 means 10/255); the paper's step of 1 level and n = min(eps+4, 1.25 eps) iterations"  # noqa: E501


#: The data of the jobs that fit something on one split and measure it on another (``universal``, ``patch``).
DEFAULT_FIT_DATA = "synthetic-train:40"
DEFAULT_HELD_OUT = "synthetic:20"
DATA_FORMS = (
    "synthetic[:N] (validation split), synthetic-train[:N] (training split), cityscapes:PATH[:SPLIT], folder:PATH"
)


def add_eps_arg(p: Any, *, several: bool = True, default: str | None = None, paper: bool = True) -> None:
    """``--eps`` (8-bit levels), the one definition every command uses: several budgets (default the paper's 1..20)
    or one (default 10). ``paper``: the help names the paper's step and iterations (False for a command whose
    attacks have their own, e.g. ``robustness``). ``parse_eps`` reads it."""
    if several:
        default = default or ",".join(map(str, DEFAULT_EPS))
        text = EPS_HELP if paper else EPS_HELP.partition(";")[0]
        p.add_argument("--eps", default=default, metavar="LIST", help=f"{text} (default: %(default)s)")
    else:
        p.add_argument("--eps", default=default or "10", metavar="LEVELS",
                       help="L-inf budget in 8-bit levels (10 means 10/255; default: %(default)s)")  # fmt: skip


def parse_eps(text: str) -> list[int | float]:
    """``"1,2,4,10"`` -> [1, 2, 4, 10] (8-bit levels, sorted), checked by ``segattack.experiment.check_eps`` (the
    one check of budgets, for every command); UserError (one line) otherwise."""
    from ..experiment import ExperimentError, check_eps
    from ..experiment.config import number

    items = [s.strip() for s in text.split(",") if s.strip()]
    try:
        values = [float(item) for item in items]
    except ValueError:
        raise UserError(f"--eps takes numbers of 8-bit levels, e.g. --eps 1,2,4,10; got {text!r}") from None
    try:
        return [number(e) for e in check_eps(values, what="--eps")]
    except ExperimentError as err:
        raise UserError(str(err)) from None


def parse_classes(text: str, names: Sequence[str] | None = None, *, option: str = "--hide") -> tuple[int, ...]:
    """``--hide person,12`` -> class ids, by the model's class ``names`` (default: the 19 Cityscapes train ids);
    UserError listing the valid classes otherwise."""
    from ..data.labels import class_ids

    try:
        return class_ids(text, names)
    except ValueError as err:
        raise UserError(f"{option}: {err}") from None


def check_class_text(text: str, option: str = "--hide", *, one: bool = False) -> None:
    """The cheap check of a class list before the model is built (names are checked against the model's later)."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise UserError(f"{option} names no class, e.g. {option} person")
    if one and len(items) != 1:
        raise UserError(f"{option} takes one class, got {text!r}")


def read_class_names(path_text: str) -> tuple[str, ...]:
    """``--class-names FILE``: one name per line (blank lines skipped), a JSON list of names, or a JSON object of
    id -> name (as ``id2label``: ids 0..K-1); UserError (one line, with the fix) otherwise."""
    import json

    path = Path(path_text).expanduser()
    form = "one name per line, or a JSON list of names"
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise UserError(f"--class-names {path_text} {what}; give a file with {form}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(
            f"--class-names {path_text} cannot be read ({err}); give a UTF-8 text file with {form}"
        ) from None
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise UserError(f"--class-names {path_text} is not valid JSON ({err}); give {form}") from None
        if isinstance(value, dict):
            try:
                by_id = {int(k): v for k, v in value.items()}
            except ValueError:
                raise UserError(f"--class-names {path_text}: a JSON object must map class ids to names") from None
            if sorted(by_id) != list(range(len(by_id))):
                raise UserError(f"--class-names {path_text}: the JSON object must name every id 0..{len(by_id) - 1}")
            value = [by_id[i] for i in range(len(by_id))]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise UserError(f"--class-names {path_text}: a JSON file must hold a list of non-empty names (strings)")
        names = tuple(v.strip() for v in value)
    else:
        names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise UserError(f"--class-names {path_text} is empty; give {form}")
    return names


def _floats3(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--{name} takes comma-separated numbers in [0, 1] units, e.g. 0.485,0.456,0.406") from None
    if not values:
        raise UserError(f"--{name} is empty")
    return values


def add_hide_arg(p: Any) -> None:
    """``--hide``: the class(es) to hide, by the model's names or by id."""
    p.add_argument(
        "--hide",
        default="person",
        metavar="CLASS[,CLASS]",
        help="class(es) to hide, by name or id: the model's class names (--class-names, hf: id2label), by default "
        "the Cityscapes train ids (default: person)",
    )


def add_attack_args(g: Any, *, several: bool = True) -> None:
    """``--attack`` and ``--attack-opt`` (and, for experiments, the goal) on an argument group."""
    g.add_argument(
        "--attack",
        default=DEFAULT_ATTACK,
        metavar="NAME[,NAME]" if several else "NAME",
        help="registered attack(s): alma_prox (minimal-norm), apgd, cospgd, dag, illm (the paper's), pgd, sea, segpgd, "
        "square (black-box), worst_case, or one you "
        "registered with segattack.attacks.register"
        + (" (comma-separated: one set of results each)" if several else "")
        + " (default: illm)",
    )
    g.add_argument(
        "--attack-opt",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="an option of one attack, e.g. segpgd.steps=50, apgd.loss=masked-ce, pgd.restarts=3, "
        "worst_case.attacks=apgd:ce+apgd:js; step_size in 8-bit levels like eps (repeatable)",
    )


def add_measure_args(g: Any) -> None:
    """``--instance-threshold`` and ``--survive`` (the hide goal's instance and survival measures) on a group."""
    g.add_argument(
        "--instance-threshold",
        type=float,
        default=0.95,
        metavar="SHARE",
        help="a person (a connected region of the class in the clean prediction, 8-connected; or a ground-truth "
        "instance) vanishes entirely when at least this share of its pixels is hidden (default: %(default)s)",
    )
    g.add_argument(
        "--survive",
        default=None,
        metavar="T[,T]",
        help="measure every adversarial image again after image transforms, against the prediction of the "
        "transformed clean image (a proxy for the physical world): jpeg:Q (quality 1..100), resize:F (down by F "
        "in (0, 1] and back up), blur:S (Gaussian sigma S px), noise:N (std N 8-bit levels, the same draw on the "
        "clean and the adversarial image), identity; e.g. jpeg:75,jpeg:50,resize:0.5,blur:1.0,noise:2 (default: "
        "none)",
    )


def parse_attacks(names: str, opts: Sequence[str], *, single: bool = False) -> list[Any]:
    """``--attack``/``--attack-opt`` -> ``AttackSpec``s; UserError (one line) for unknown attacks and options."""
    from ..attacks import registry
    from ..pipeline import AttackSpec

    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise UserError(f"--attack names no attack; available: {', '.join(registry.available())}")
    if single and len(wanted) > 1:
        raise UserError(f"this command takes one attack, got {names!r}; `segattack run` compares several")
    if "transfer" in wanted:  # its surrogate is a model, which --attack-opt cannot give
        raise UserError("--attack transfer needs a surrogate model to craft on: on the command line that is "
                        "`segattack robustness --transfer-from SPEC` (a transfer evaluation) or `segattack compare "
                        "--models A,B` (the transfer matrix between models); in Python, sa.attacks.transfer(..., "
                        "surrogate=model)")  # fmt: skip
    options: dict[str, dict[str, Any]] = {n: {} for n in wanted}
    for item in opts:
        head, eq, text = item.partition("=")
        name, dot, key = head.strip().partition(".")
        if not eq or not dot or not name or not key:
            raise UserError(f"--attack-opt takes NAME.KEY=VALUE, e.g. segpgd.steps=50; got {item!r}")
        if name not in options:
            raise UserError(f"--attack-opt {item!r} names attack {name!r}, which --attack does not run ({names})")
        try:
            value = registry.parse_option(name, key, text)
        except ValueError as err:
            raise UserError(f"--attack-opt: {err}") from None
        if key == "step_size":
            if not 0 < value <= 255:
                raise UserError(f"--attack-opt {name}.step_size is in 8-bit levels (1 = 1/255), got {text}")
            value = value / 255
        options[name][key] = value
    try:
        return [AttackSpec(n, options[n]) for n in wanted]
    except ValueError as err:
        raise UserError(f"--attack: {err}") from None


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        metavar="SPEC",
        default=None,
        help="zoo:NAME (a shipped model, or zoo:PATH/NAME.json), hf:ID_OR_DIR (a Hugging Face semantic-segmentation "
        "model: a save_pretrained directory, or a hub id where you are online; needs segattack[hf]), or "
        "module.path:callable returning a torch.nn.Module (the current directory is importable); default: the "
        "shipped default model",
    )
    g.add_argument("--weights", metavar="FILE", help="state dict for a module:callable model (.safetensors, .pt, .pth)")
    g.add_argument(
        "--mean",
        metavar="R,G,B",
        help="normalisation mean in [0, 1] units, in the network's channel order (B,G,R with --bgr), for "
        "module:callable (default: ImageNet's) or hf: (default: its image processor's); a mean m255 in 0-255 units "
        "is m255/255",
    )
    g.add_argument(
        "--std",
        metavar="R,G,B",
        help="normalisation std in [0, 1] units, in the network's channel order, for module:callable (default: "
        "ImageNet's) or hf: (default: its image processor's); a std s255 in 0-255 units is s255/255 (above 1 is "
        "legal)",
    )
    g.add_argument(
        "--bgr",
        action="store_true",
        help="for networks trained on OpenCV-read (BGR) images: flip the RGB input to BGR first, then normalise "
        "with --mean/--std given in B,G,R order (module:callable and hf: models)",
    )
    g.add_argument(
        "--num-classes",
        type=int,
        metavar="K",
        default=None,
        help="output classes the model must have (default: 19, the Cityscapes train ids, or the number of "
        "--class-names; zoo and hf: models, and a callable returning a PixelModel that has them: their own)",
    )
    g.add_argument(
        "--class-names",
        metavar="FILE",
        default=None,
        help="names of the model's output classes, in output order: one per line, or a JSON list; --hide then takes "
        "these names (default: the names the model carries, hf: id2label or a zoo card's class_names, else the "
        "Cityscapes train ids)",
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    add_fast_path_args(g)


def add_fast_path_args(g: Any, *, channels_last: bool = False) -> None:
    """``--amp``, ``--channels-last`` and ``--compile`` (``PixelModel.set_fast_path``) on an argument group;
    ``channels_last``: its default (True adds ``--no-channels-last``)."""
    g.add_argument(
        "--amp",
        choices=["bf16", "fp16"],
        default=None,
        help="mixed precision for the attack's forward and backward passes (autocast); predictions, losses and the "
        "perturbation stay float32, so budgets stay exact in 8-bit levels (default: off; bf16 is the safe choice, "
        "fp16 gradients can underflow)",
    )
    if channels_last:
        g.add_argument(
            "--channels-last",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="feed the network channels-last (NHWC) tensors: 1.3x faster per attack step on the 2-core CPU the "
            "demo was timed on (float32 either way; kernels that add in another order, so single images can end "
            "differently; default: on)",
        )
    else:
        g.add_argument(
            "--channels-last",
            action="store_true",
            help="feed the network channels-last (NHWC) tensors, often faster on GPUs and CPUs (default: off)",
        )
    g.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile (compiled on the first batch of each size; needs a C compiler "
        "on the CPU; default: off)",
    )


def apply_fast_path(model: Any, args: argparse.Namespace, describe: dict[str, Any]) -> None:
    """Configure the fast path the options ask for on a ``PixelModel``; ``--amp`` changes the attack's gradients,
    so it is recorded in the run's configuration (a resume with another precision is refused)."""
    amp = getattr(args, "amp", None)
    channels_last = bool(getattr(args, "channels_last", False))
    compiled = bool(getattr(args, "compile", False))
    if amp is None and not channels_last and not compiled:
        return
    if not hasattr(model, "set_fast_path"):
        raise UserError("--amp, --channels-last and --compile need a PixelModel; wrap the network in PixelModel")
    model.set_fast_path(amp=amp, channels_last=channels_last, compile=compiled)
    if amp is not None:
        describe["amp"] = amp


def check_model_args(args: argparse.Namespace) -> None:
    """The model options' cheap checks, before any data or model is loaded: the device, --mean/--std, the
    --class-names file and the spec's form. Stores what they parse to on ``args`` (``build_model`` uses it)."""
    from ..specs import default_model_name, parse_model_spec

    if getattr(args, "_model_checked", False):
        return
    args.device = parse_device(args.device)
    args._mean = _floats3(args.mean, "mean") if getattr(args, "mean", None) else None
    args._std = _floats3(args.std, "std") if getattr(args, "std", None) else None
    path = getattr(args, "class_names", None)
    args._class_names = read_class_names(path) if path else None
    args._model_spec = parse_model_spec(args.model or f"zoo:{default_model_name()}")
    if getattr(args, "num_classes", None) is not None and args.num_classes < 1:
        raise UserError(f"--num-classes must be at least 1, got {args.num_classes}")
    args._model_checked = True


def parse_device(text: str, option: str = "--device") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` (or ``mps`` where present) checked against this machine; UserError otherwise.

    >>> parse_device("cpu")
    'cpu'
    """
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"{option} {text!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return str(dev)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{option} {text}: CUDA is not available here; use {option} cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"{option} {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return str(dev)
    if dev.type == "mps" and torch.backends.mps.is_available():
        return str(dev)
    raise UserError(f"{option} {text}: segattack runs on cpu or cuda[:N] (a {dev.type} device cannot run the attack)")


def check_out_dir(path: str) -> None:
    """An output directory that can be written (nothing is created yet); one-line error otherwise."""
    check_writable_dir(path, create=False)


def build_model(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The model the options name, and its description for the run's configuration. The model's
    ``class_names`` holds the names of all its output classes (``--class-names``, the model's own, or the defaults
    of ``segattack.data.labels.label_names``); the description records them where they are not the Cityscapes
    default, and the normalisation where it is not the spec's plain default (hf: models, --bgr)."""
    from ..data.labels import label_names
    from ..specs import load_model_info

    check_model_args(args)
    ms = args._model_spec
    file_names = args._class_names
    bgr = bool(getattr(args, "bgr", False))
    num_classes = args.num_classes
    if num_classes is None and ms.kind == "callable" and file_names is not None:
        num_classes = len(file_names)
    try:
        model, info = load_model_info(
            ms,
            weights=args.weights,
            mean=args._mean,
            std=args._std,
            num_classes=num_classes,
            device=args.device,
            bgr=bgr,
        )
    except SegattackError:
        raise
    except ValueError as err:  # PixelModel's checks on mean/std/num_classes
        raise UserError(f"--model {args.model or 'default'}: {err}") from None
    if model.num_classes is None:  # a module:callable's network: the Cityscapes train ids unless told otherwise
        model.num_classes = 19
    k = model.num_classes
    if file_names is not None and k is not None and len(file_names) != k:
        raise UserError(
            f"--class-names {args.class_names} lists {len(file_names)} names but the model {ms} has {k} classes; "
            "give one name per output class, in the order of the model's outputs"
        )
    try:
        model.class_names = label_names(k, file_names if file_names is not None else model.class_names)
    except ValueError as err:
        raise UserError(f"--model {ms}: {err}") from None
    describe: dict[str, Any] = {
        "model": str(ms),
        "weights": str(Path(args.weights).resolve()) if args.weights else None,
        "num_classes": model.num_classes,
    }
    if info or bgr:
        describe["normalisation"] = {
            "mean": [round(float(v), 6) for v in model.mean.flatten().tolist()],
            "std": [round(float(v), 6) for v in model.std.flatten().tolist()],
            "bgr": bgr,
            **{k_: v for k_, v in info.items() if k_ not in ("mean", "std")},
        }
    if file_names is not None:
        describe["class_names_file"] = str(Path(args.class_names).expanduser().resolve())
    apply_fast_path(model, args, describe)
    return model, describe


def model_label_names(model: Any) -> tuple[str, ...]:
    """The names of all the model's output classes (``build_model`` sets them; the defaults otherwise)."""
    from ..data.labels import label_names

    names = getattr(model, "class_names", None)
    return tuple(names) if names is not None else label_names(getattr(model, "num_classes", None))


def class_text(class_ids: Sequence[int], names: Sequence[str], sep: str = ", ") -> str:
    """``(11, 12)`` -> ``"person, rider"`` by the model's names (an id without a name stays a number)."""
    return sep.join(names[c] if 0 <= c < len(names) else str(c) for c in class_ids)


def add_data_args(p: argparse.ArgumentParser, *, default: str = DEFAULT_DATA) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        metavar="SPEC",
        default=default,
        help="synthetic[:N] (embedded street scenes, validation split, N images, default 20), cityscapes:PATH[:SPLIT] "
        f"(official layout, split val by default) or folder:PATH (any images); default: {default}",
    )
    g.add_argument(
        "--size",
        metavar="HxW",
        default=None,
        help="resize images to H x W pixels (default: synthetic 256x512, files as they are)",
    )
    g.add_argument(
        "--labels",
        metavar="DIR",
        default=None,
        help="with folder:PATH, a folder of ground-truth PNGs (Cityscapes train ids, 255 = ignore) named like the "
        "images, for clean mIoU and the untargeted goal; the paper's hiding attack takes its targets from the "
        "prediction",
    )


def build_data(spec: str, size_text: str | None, labels: str | None = None) -> tuple[Any, dict[str, Any]]:
    from ..specs import load_data, parse_data_spec, parse_size

    ds = parse_data_spec(spec)
    size = parse_size(size_text)
    data = load_data(ds, size=size, labels=labels)
    shown = str(ds)
    if ds.path is not None:
        shown = shown.replace(ds.path, str(Path(ds.path).expanduser().resolve()), 1)
    describe: dict[str, Any] = {"data": shown, "size": list(size) if size else None}
    if labels is not None:
        describe["labels"] = str(Path(labels).expanduser().resolve())
    return data, describe


#: The command-line option of each ``ExperimentConfig`` field, to name it in a refusal.
CONFIG_OPTIONS = {
    "eps": "--eps", "goal": "--goal", "classes": "--hide", "attacks": "--attack", "modes": "--restrict",
    "survive": "--survive", "figure1": "--figure1", "instance_threshold": "--instance-threshold", "seed": "--seed",
    "limit": "--limit", "batch_size": "--batch-size", "label_names": "--class-names",
    "read_workers": "--read-workers",
}  # fmt: skip


def build_config(**fields: Any) -> Any:
    """``segattack.experiment.ExperimentConfig(**fields)``, its refusal one line naming the option at fault."""
    from ..experiment import ExperimentConfig

    return build_named(ExperimentConfig, fields, CONFIG_OPTIONS)


def build_options(**fields: Any) -> Any:
    """``segattack.experiment.RunOptions(**fields)``, its refusal one line naming the option at fault."""
    from ..experiment import RunOptions

    return build_named(RunOptions, fields, CONFIG_OPTIONS)


def build_named(cls: Any, fields: dict[str, Any], options: dict[str, str]) -> Any:
    """``cls(**fields)`` for a configuration class whose refusals are ``ConfigError``s with a ``field`` attribute
    (``ExperimentError``, ``UniversalError``): the refusal becomes one line naming the field's command-line option
    (``options``: field -> option)."""
    try:
        return cls(**fields)
    except ConfigError as err:
        option = options.get(getattr(err, "field", None) or "")
        raise UserError(f"{option}: {err}" if option else str(err)) from None


def run_and_report(
    model: Any,
    data: Any,
    config: Any,
    *,
    out: str,
    describe: dict[str, Any],
    device: str,
    overwrite: bool = False,
    options: Any = None,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Run the experiment ``config`` (an ``ExperimentConfig``) with a progress bar and its report, print where
    things are; return the sentences. The library owns the directory (its lock), the distributed session and every
    check; this prints (process 0 alone). After the sentences, those on survival (one per transform) are printed
    too (not returned). ``options``: a ``RunOptions`` (its report is always written)."""
    import dataclasses

    from ..experiment import RunOptions, run_experiment
    from ..experiment.config import number

    opts = dataclasses.replace(options or RunOptions(), report=True)
    n = len(data) if config.limit is None else min(config.limit, len(data))
    names = class_text(config.classes, config.label_names or model_label_names(model))
    hide = config.goal == "hide"
    what = f"hiding {names}" if hide else "untargeted attacks"
    sweeps = 1 + ("during" in config.modes)
    lines = [f"{what} in {n} images of {describe['data']} with {describe['model']} on {device}"]
    lines.append(f"eps {','.join(str(number(e)) for e in config.eps)} (8-bit levels), modes {'+'.join(config.modes)}")
    if config.survive:
        lines.append(f"survival after {', '.join(t.name for t in config.survive)} (one more prediction per eps and "
                     "mode each)")  # fmt: skip
    for spec in config.attacks:
        during = f", x{sweeps} (restricted during the attack)" if sweeps > 1 else ""
        lines.append(f"  {spec.plan_note(config.eps01)}{during}")
    world = distributed.world()
    if world.many:
        lines.append(f"{world.size} processes share the images; progress shows process 0's share")
    # process 0 alone shows progress and prints; the others print nothing but errors
    bar = RunProgress("attacking", "\n".join(lines)) if world.main else None
    t0 = time.perf_counter()
    try:
        result = run_experiment(model, data, config, out, device=device, overwrite=overwrite, describe=describe,
                                progress=bar, options=opts)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    if not world.main:
        return []
    report = result.report
    total = time.perf_counter() - t0
    counts = report.summary[0] if report.summary else {}
    skipped = {k: counts.get(k, 0) for k in ("absent", "all_hidden", "unreadable") if counts.get(k, 0)}
    note = (" (" + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) + ")") if skipped else ""
    held = f"contain {names}" if hide else "attacked"
    print(
        f"done in {format_duration(total)} (attack {format_duration(result.attack_s)}); {counts.get('ok', 0)} of {n} "
        f"images {held}{note}",
        file=sys.stderr,
    )
    rel = os.path.relpath(out)
    shown = rel if not rel.startswith("..") else out
    figure = "figure2.png" if hide else "attacks.png"
    print(f"results: {shown}/  report.html  summary.csv  {figure}  results.jsonl", file=sys.stderr)
    for line in report.sentences:
        echo(line)
    for line in getattr(report, "survival_sentences", []):
        echo(line)
    return list(report.sentences)
