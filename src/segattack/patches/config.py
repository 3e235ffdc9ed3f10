"""The patch job's configuration: one frozen, typed object, built once (from the command line or by a Python user)
and validated here and nowhere else. Units: the learning rate and the EOT's brightness and noise in [0, 1] units (a
patch has no eps); sizes in pixels or as a share of the image's area; angles in degrees.

>>> cfg = PatchConfig(size=(40, 80), placement="region", region=(2, 3), steps=10)
>>> cfg.goal, cfg.make_placement().kind, cfg.make_eot() is not None
('hide', 'region', True)
>>> PatchConfig(lr=0)
Traceback (most recent call last):
...
segattack.patches.config.PatchError: lr must be a positive number (Nesti et al.: 0.5/255 = 0.00196), got 0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, InputError, about_field
from ..targets import class_id_tuple
from ..transforms import parse_transforms
from .eot import PatchEOT
from .fit import DEFAULT_LR, DEFAULT_STEPS, GOALS
from .placement import Placement

__all__ = ["PatchConfig", "PatchError", "PLACEMENTS"]

#: How the patch's box is chosen: centred, at a fixed top-left corner (``at``), on a region of classes, or on a
#: quad of four given corners (``corners``).
PLACEMENTS = ("centre", "box", "region", "quad")


class PatchError(ConfigError):
    """A patch job that cannot run as configured (also a ValueError); ``field``: the ``PatchConfig`` field at fault
    (the command line names its option)."""


def _count(value: Any, name: str, *, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise PatchError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise PatchError(f"{name} must be {'at least 1' if minimum == 1 else f'{minimum} or more'}, got {value}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PatchError(f"{name} must be a number, got {value!r}")
    return float(value)


def _weight(value: Any, name: str) -> float:
    v = _number(value, name)
    if v < 0:
        raise PatchError(f"{name} must be 0 or more (0 switches the term off), got {v:g}")
    return v


def _classes(value: Any, name: str) -> tuple[int, ...]:
    try:
        return class_id_tuple(value)
    except (TypeError, ValueError) as err:
        raise PatchError(f"{name}: {err}") from None


def _size(value: Any) -> tuple[int, int] | float:
    if isinstance(value, float):
        if not 0 < value < 1:
            raise PatchError(f"size as a share of the image's area must lie in (0, 1) (e.g. 0.05), got {value:g}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):  # fmt: skip
        if min(value) < 1:
            raise PatchError(f"size in pixels must be at least 1x1 (height, width), got {tuple(value)}")
        return (int(value[0]), int(value[1]))
    raise PatchError(f"size takes (height, width) in pixels or a share of the image's area in (0, 1), got {value!r}")


@dataclass(frozen=True)
class PatchConfig:
    """What a patch job does, checked once at construction (``PatchError``, a ValueError naming the field).

    Fields:
        goal: "hide" (hide ``classes``) or "untargeted" (lower the agreement with the clean prediction).
        classes: the class ids to hide (e.g. ``(11,)``, Cityscapes person); also measured for an untargeted patch.
        size: the patch's (height, width) in pixels, or a float in (0, 1): the share of the image's area.
        placement: "centre", "box" (top-left corner ``at``), "region" (anywhere wholly on ``region`` classes of
            the clean prediction, e.g. building, wall, road) or "quad" (the four ``corners`` (x, y) in pixels,
            top-left, top-right, bottom-right, bottom-left: the patch warped onto them).
        at: (y, x) for "box". region: class ids for "region". tilt: perspective in (-1, 1) (0: none).
        steps, lr, batch_size: Adam steps, its learning rate in [0, 1] units (Nesti et al.: 200, 0.5/255, 10).
        gamma: the weight of the pixels not yet fooled in [0, 1]; None: dynamic. omega: "hide", the weight of the
            hidden class's pixels in [0, 1].
        adv_weight, tv_weight, nps_weight: loss weights >= 0; colours: a printable colour file (None: the default
            set, ``printability.DEFAULT_PRINTABLE``).
        eot: EOT on or off; shift, scale_min, scale_max, rotation (degrees), perspective, brightness, contrast,
            noise: its ranges (``PatchEOT``); transforms: image-wide transforms, e.g. "blur:1,jpeg:75" ("" none).
        seed: the initial patch and every draw. examples, fit_limit, eval_limit, checkpoint_every: for the job.
    """

    goal: str = "hide"
    classes: tuple[int, ...] = (11,)
    size: tuple[int, int] | float = (64, 64)
    placement: str = "centre"
    at: tuple[int, int] | None = None
    region: tuple[int, ...] = ()
    tilt: float = 0.0
    corners: tuple[tuple[float, float], ...] | None = None
    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR
    batch_size: int = 10
    gamma: float | None = None
    omega: float = 0.9999
    adv_weight: float = 1.0
    tv_weight: float = 0.0
    nps_weight: float = 0.0
    colours: str | None = None
    eot: bool = True
    shift: float = 0.5
    scale_min: float = 0.8
    scale_max: float = 1.2
    rotation: float = 0.0
    perspective: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    noise: float = 0.1
    transforms: str = ""
    seed: int = 0
    examples: int = 3
    fit_limit: int | None = None
    eval_limit: int | None = None
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        put = self._put
        with about_field("goal"):
            if self.goal not in GOALS:
                raise PatchError(f"goal must be one of {', '.join(GOALS)}, got {self.goal!r}")
        with about_field("classes"):
            put("classes", _classes(self.classes, "classes"))
        with about_field("size"):
            put("size", _size(self.size))
        with about_field("placement"):
            if self.placement not in PLACEMENTS:
                raise PatchError(f"placement must be one of {', '.join(PLACEMENTS)}, got {self.placement!r}")
        with about_field("at"):
            if self.placement == "box":
                at = self.at
                if not (isinstance(at, Sequence) and len(at) == 2 and all(isinstance(v, int) and not isinstance(
                        v, bool) and v >= 0 for v in at)):  # fmt: skip
                    raise PatchError(f"placement 'box' needs at = (y, x), the top-left corner in pixels, got {at!r}")
                put("at", (int(at[0]), int(at[1])))
            elif self.at is not None:
                raise PatchError(f"at goes with placement 'box', not {self.placement!r}; drop it or use 'box'")
        with about_field("region"):
            if self.placement == "region":
                if not self.region:
                    raise PatchError("placement 'region' needs region = the class ids the patch may lie on")
                put("region", _classes(self.region, "region"))
            elif self.region:
                raise PatchError(f"region goes with placement 'region', not {self.placement!r}")
            else:
                put("region", ())
        with about_field("corners"):
            if self.placement == "quad":
                if self.corners is None:
                    raise PatchError("placement 'quad' needs corners = four (x, y) points in pixels")
                if self.tilt:
                    raise PatchError("tilt goes with a box; the corners of placement 'quad' already set the view")
                try:
                    put("corners", Placement(corners=self.corners).corners)
                except InputError as err:
                    raise PatchError(str(err)) from None
            elif self.corners is not None:
                raise PatchError(f"corners go with placement 'quad', not {self.placement!r}")
        with about_field("tilt"):
            tilt = _number(self.tilt, "tilt")
            if not -1 < tilt < 1:
                raise PatchError(f"tilt must lie in (-1, 1) (0: no perspective), got {tilt:g}")
            put("tilt", tilt)
        with about_field("steps"):
            _count(self.steps, "steps", minimum=1)
        with about_field("lr"):
            lr = _number(self.lr, "lr")
            if lr <= 0:
                raise PatchError(f"lr must be a positive number (Nesti et al.: 0.5/255 = 0.00196), got {lr:g}")
            put("lr", lr)
        with about_field("batch_size"):
            _count(self.batch_size, "batch_size", minimum=1)
        with about_field("gamma"):
            if self.gamma is not None:
                g = _number(self.gamma, "gamma")
                if not 0 <= g <= 1:
                    raise PatchError(f"gamma must lie in [0, 1], or None for the dynamic weight, got {g:g}")
                put("gamma", g)
        with about_field("omega"):
            om = _number(self.omega, "omega")
            if not 0 <= om <= 1:
                raise PatchError(f"omega must lie in [0, 1] (0.9999: the hidden class's pixels), got {om:g}")
            put("omega", om)
        for name in ("adv_weight", "tv_weight", "nps_weight"):
            with about_field(name):
                put(name, _weight(getattr(self, name), name))
        with about_field("colours"):
            if self.colours is not None and (not isinstance(self.colours, str) or not self.colours.strip()):
                raise PatchError(f"colours takes the path of a text file of RGB triples, got {self.colours!r}")
        with about_field("eot"):
            if not isinstance(self.eot, bool):
                raise PatchError(f"eot must be true or false, got {self.eot!r}")
        for name in ("shift", "rotation", "perspective", "brightness", "contrast", "noise", "scale_min", "scale_max"):
            with about_field(name):
                put(name, _weight(getattr(self, name), name))
        with about_field("scale_min"):
            if not 0 < self.scale_min <= self.scale_max:
                raise PatchError(f"scale_min must be > 0 and at most scale_max ({self.scale_max:g}), got "
                                 f"{self.scale_min:g}")  # fmt: skip
        with about_field("rotation"):
            if self.rotation > 180:
                raise PatchError(f"rotation is at most 180 degrees each way, got {self.rotation:g}")
        with about_field("perspective"):
            if self.perspective >= 0.5:
                raise PatchError(f"perspective jitter must be below 0.5 of the box, got {self.perspective:g}")
        with about_field("transforms"):
            if not isinstance(self.transforms, str):
                raise PatchError(f"transforms takes a spec such as 'blur:1,jpeg:75', got {self.transforms!r}")
            if self.transforms.strip():
                try:
                    parse_transforms(self.transforms)
                except ConfigError as err:
                    raise PatchError(str(err)) from None
        with about_field("seed"):
            if isinstance(self.seed, bool) or not isinstance(self.seed, int):
                raise PatchError(f"seed must be an integer, got {self.seed!r}")
        with about_field("examples"):
            _count(self.examples, "examples", minimum=0)
        with about_field("fit_limit"):
            _count(self.fit_limit, "fit_limit", minimum=1, allow_none=True)
        with about_field("eval_limit"):
            _count(self.eval_limit, "eval_limit", minimum=1, allow_none=True)
        with about_field("checkpoint_every"):
            _count(self.checkpoint_every, "checkpoint_every", minimum=0)
        with about_field("size"):
            try:
                self.make_placement()
            except InputError as err:
                raise PatchError(str(err)) from None

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def make_placement(self) -> Placement:
        """The ``Placement`` this configuration describes."""
        return Placement(size=self.size, at=self.at if self.placement == "box" else None,
                         classes=self.region if self.placement == "region" else (), tilt=self.tilt,
                         corners=self.corners)  # fmt: skip

    def make_eot(self) -> PatchEOT | None:
        """The ``PatchEOT`` this configuration describes (None with ``eot=False``)."""
        if not self.eot:
            return None
        return PatchEOT(shift=self.shift, scale=(self.scale_min, self.scale_max), rotation=self.rotation,
                        perspective=self.perspective, brightness=self.brightness, contrast=self.contrast,
                        noise=self.noise, transforms=tuple(parse_transforms(self.transforms))
                        if self.transforms.strip() else ())  # fmt: skip

    def fit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``fit`` this configuration sets (without ``colours``: load the file with
        ``load_printable_colours``)."""
        return {
            "placement": self.make_placement(), "goal": self.goal,
            "class_id": self.classes if self.goal == "hide" else None, "steps": self.steps, "lr": self.lr,
            "batch_size": self.batch_size, "gamma": self.gamma, "omega": self.omega, "eot": self.make_eot(),
            "adv_weight": self.adv_weight, "tv_weight": self.tv_weight, "nps_weight": self.nps_weight,
            "seed": self.seed,
        }  # fmt: skip
