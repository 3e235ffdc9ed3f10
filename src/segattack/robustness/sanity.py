"""The sanity checks of a robustness evaluation, as pure functions of its numbers (Carlini et al. 2019, "On
evaluating adversarial robustness", Sec. 5; Croce, Singh and Hein 2024 for segmentation).

Each check gives a ``Check``: ``PASS``, ``FAIL`` or ``SKIPPED`` (its evaluation did not run), a sentence and the
numbers it was decided on. Accuracies are mean per-image pixel accuracies in [0, 1]; budgets are 8-bit levels. The
bounds are module constants, so that a reader sees what was decided on what.

>>> large_eps_check(0.01, eps=32).status, large_eps_check(0.4, eps=32).status
('PASS', 'FAIL')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Check",
    "PASS",
    "FAIL",
    "SKIPPED",
    "LARGE_BOUND",
    "STEPS_TOLERANCE",
    "WEAKER_TOLERANCE",
    "NOISE_SHARE",
    "NOISE_SLACK",
    "CURVE_TOLERANCE",
    "large_eps_check",
    "steps_check",
    "weaker_check",
    "noise_check",
    "curve_check",
    "skipped",
]

PASS, FAIL, SKIPPED = "PASS", "FAIL", "SKIPPED"
#: The highest accuracy at the large budget that counts as near 0.
LARGE_BOUND = 0.05
#: How much accuracy may rise from the shorter run to the longer one (two runs of one attack with their own random
#: starts: not exactly nested).
STEPS_TOLERANCE = 0.005
#: How far below the white-box worst case a black-box or transfer attack's accuracy may fall before it counts as
#: stronger (both near 0 on a broken model differ by noise).
WEAKER_TOLERANCE = 0.01
#: Noise may lower accuracy by at most this share of the worst-case attack's drop, or by ``NOISE_SLACK``, the larger.
NOISE_SHARE = 0.25
NOISE_SLACK = 0.01
#: How far the minimal-norm curve may fall below the fixed-budget worst case at one of its budgets.
CURVE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Check:
    """One sanity check: its ``name``, ``status`` (``PASS``, ``FAIL``, ``SKIPPED``), a sentence saying what was
    found, and the ``numbers`` behind it (JSON values)."""

    name: str
    status: str
    detail: str
    numbers: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "numbers": dict(self.numbers)}


def _pct(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def _lv(e: float) -> str:
    return f"{e:g}"


def skipped(name: str, why: str) -> Check:
    """A check that could not be made, and why."""
    return Check(name, SKIPPED, why)


def large_eps_check(accuracy: float, *, eps: float, bound: float = LARGE_BOUND) -> Check:
    """Accuracy at a large budget (``eps`` levels) must fall to near 0 (at most ``bound``): an attack that cannot
    break the model there is not working (gradient masking or a defect)."""
    name = "accuracy near 0 at a large eps"
    numbers = {"eps": eps, "accuracy": accuracy, "bound": bound}
    if not math.isfinite(accuracy):
        return Check(name, SKIPPED, "no image with counted pixels", numbers)
    ok = accuracy <= bound
    return Check(name, PASS if ok else FAIL,
                 f"accuracy {_pct(accuracy)} at eps {_lv(eps)} is {'at most' if ok else 'above'} {_pct(bound)}"
                 + ("" if ok else ": the attack does not break the model where it must"), numbers)  # fmt: skip


def steps_check(
    short: float, long: float, *, short_steps: Any, long_steps: Any, eps: float, tolerance: float = STEPS_TOLERANCE
) -> Check:
    """More iterations must never help the model: the accuracy after ``long_steps`` may exceed the one after
    ``short_steps`` (the same attack at ``eps`` levels) by at most ``tolerance``."""
    name = "more iterations never help the model"
    numbers = {"eps": eps, "short_steps": short_steps, "long_steps": long_steps, "short": short, "long": long,
               "tolerance": tolerance}  # fmt: skip
    if not (math.isfinite(short) and math.isfinite(long)):
        return Check(name, SKIPPED, "no image with counted pixels", numbers)
    ok = long <= short + tolerance
    return Check(name, PASS if ok else FAIL,
                 f"accuracy {_pct(short)} after {short_steps} iterations, {_pct(long)} after {long_steps} at eps "
                 f"{_lv(eps)}" + ("" if ok else ": more iterations raised it (the attack is defective or the loss "
                                                "is masked)"), numbers)  # fmt: skip


def weaker_check(
    name: str, attack: str, other: Mapping[float, float], white_box: Mapping[float, float], *,
    tolerance: float = WEAKER_TOLERANCE,
) -> Check:  # fmt: skip
    """A black-box or transfer ``attack`` must be weaker than the white-box attacks: at every budget (levels) its
    accuracy (``other``) stays at least the white-box worst case's (``white_box``) minus ``tolerance``. Where it is
    lower, the gradients mislead the model's own attack (gradient masking)."""
    budgets = sorted(set(other) & set(white_box))
    numbers = {"eps": budgets, attack: [other[e] for e in budgets], "white_box": [white_box[e] for e in budgets],
               "tolerance": tolerance}  # fmt: skip
    if not budgets:
        return Check(name, SKIPPED, f"{attack} ran at no budget of the white-box attacks", numbers)
    worse = [e for e in budgets if other[e] < white_box[e] - tolerance]
    if worse:
        e = worse[0]
        detail = (f"{attack} lowers accuracy to {_pct(other[e])} at eps {_lv(e)}, below the white-box worst case "
                  f"{_pct(white_box[e])}: the gradients mislead the white-box attacks")  # fmt: skip
        return Check(name, FAIL, detail, numbers)
    parts = ", ".join(f"{_pct(other[e])} vs {_pct(white_box[e])} at {_lv(e)}" for e in budgets)
    return Check(name, PASS, f"{attack} is weaker than the white-box attacks ({parts})", numbers)


def noise_check(
    clean: float, noise: Mapping[float, float], worst: Mapping[float, float], *, share: float = NOISE_SHARE,
    slack: float = NOISE_SLACK,
) -> Check:  # fmt: skip
    """Uniform noise of every budget must be harmless: its accuracy drop from ``clean`` is at most ``share`` of the
    worst-case attack's drop at that budget, or ``slack``, the larger."""
    name = "noise of the same eps is harmless"
    budgets = sorted(set(noise) & set(worst))
    drops = {e: clean - noise[e] for e in budgets}
    attack_drops = {e: clean - worst[e] for e in budgets}
    numbers = {"eps": budgets, "clean": clean, "noise": [noise[e] for e in budgets],
               "worst": [worst[e] for e in budgets], "share": share, "slack": slack}  # fmt: skip
    if not budgets or not math.isfinite(clean):
        return Check(name, SKIPPED, "no noise evaluation at the budgets of the attacks", numbers)
    bad = [e for e in budgets if drops[e] > max(share * max(attack_drops[e], 0.0), slack)]
    if bad:
        e = bad[0]
        return Check(name, FAIL, f"uniform noise of eps {_lv(e)} lowers accuracy by {_pct(drops[e])}, more than "
                                 f"{share:g} of the attack's drop ({_pct(attack_drops[e])}) and more than "
                                 f"{_pct(slack)}", numbers)  # fmt: skip
    most = max(budgets, key=lambda e: drops[e])
    return Check(name, PASS, f"uniform noise lowers accuracy by at most {_pct(max(drops[most], 0.0))} (eps "
                             f"{_lv(most)})", numbers)  # fmt: skip


def curve_check(
    curve: Mapping[float, float],
    worst: Mapping[float, float],
    *,
    clean: float | None = None,
    tolerance: float = CURVE_TOLERANCE,
) -> Check:
    """The minimal-norm attack's curve must agree with the fixed-budget worst case: at each budget (levels) its
    accuracy (the images it broke within the budget count with their adversarial accuracy, the others with their
    clean one) must not fall below the worst case's by more than ``tolerance``. Where it does, the fixed-budget
    attacks miss adversarial examples the minimal-norm attack finds within the budget: the headline is too
    optimistic. With ``clean`` (the clean accuracy), a curve that never leaves it is ``SKIPPED`` as uninformative:
    the minimal-norm attack broke no image within these budgets, so it confirms nothing.

    >>> curve_check({4.0: 0.8}, {4.0: 0.7}, clean=0.8).status, curve_check({4.0: 0.75}, {4.0: 0.7}, clean=0.8).status
    ('SKIPPED', 'PASS')
    """
    name = "minimal-norm curve consistent with the fixed-eps worst case"
    budgets = sorted(set(curve) & set(worst))
    numbers = {"eps": budgets, "curve": [curve[e] for e in budgets], "worst": [worst[e] for e in budgets],
               "tolerance": tolerance}  # fmt: skip
    if not budgets:
        return Check(name, SKIPPED, "no minimal-norm curve at the budgets of the attacks", numbers)
    bad = [e for e in budgets if curve[e] < worst[e] - tolerance]
    if bad:
        e = bad[0]
        return Check(name, FAIL, f"within eps {_lv(e)} the minimal-norm attack lowers accuracy to {_pct(curve[e])}, "
                                 f"below the fixed-eps worst case {_pct(worst[e])}: the fixed-eps attacks are too "
                                 "weak there", numbers)  # fmt: skip
    parts = ", ".join(f"{_pct(curve[e])} vs {_pct(worst[e])} at {_lv(e)}" for e in budgets)
    if clean is not None and all(curve[e] >= clean - 1e-9 for e in budgets):
        numbers["clean"] = clean
        return Check(name, SKIPPED, f"uninformative: the minimal-norm attack broke no image within these budgets (the "
                                    f"curve stays at the clean accuracy {_pct(clean)}: {parts}); give it more "
                                    "iterations or a larger success share", numbers)  # fmt: skip
    return Check(name, PASS, f"the curve stays at or above the worst case ({parts})", numbers)
