"""``UniversalConfig``: the universal-perturbation job's configuration, checked once at construction; every check
fires with a ``UniversalError`` (a ConfigError, a ValueError) naming the field, and the command line names the
option."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from segattack.commands._common import build_config, build_named
from segattack.commands.universal import OPTIONS
from segattack.errors import ConfigError, SegattackError, UserError
from segattack.universal import UniversalConfig, UniversalError


def test_defaults_units_and_normalisation() -> None:
    c = UniversalConfig()
    assert (c.eps, c.classes, c.static, c.steps, c.step_size, c.omega, c.batch_size, c.examples) == (
        10.0, (11,), None, 60, 1.0, 0.9999, 4, 3)  # fmt: skip
    assert c.target == "hide" and c.eps01 == 10 / 255 and c.step_size01 == 1 / 255
    s = UniversalConfig(eps=4, classes=[12, 11, 12], static=(13,), step_size=2, label_names=["a"] * 19)
    assert s.eps == 4.0 and isinstance(s.eps, float) and s.classes == (12, 11) and s.static == 13
    assert s.target == "static" and s.step_size == 2.0 and s.label_names == ("a",) * 19
    assert UniversalConfig(eps=(2.5,)).eps == 2.5  # one budget, as check_eps takes it
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.eps = 4  # type: ignore[misc]
    assert dataclasses.replace(c, steps=5).steps == 5


REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    ({"eps": 0}, "eps", "eps must be positive"),
    ({"eps": 300}, "eps", "exceeds the 8-bit range"),
    ({"eps": 0.001}, "eps", "at least 0.01 levels"),
    ({"eps": math.nan}, "eps", "numbers of 8-bit levels"),
    ({"eps": "10"}, "eps", "budgets in 8-bit levels"),
    ({"eps": True}, "eps", "budgets in 8-bit levels"),
    ({"eps": (2, 4)}, "eps", "takes one eps"),
    ({"classes": ()}, "classes", "class_id is empty"),
    ({"classes": (-1,)}, "classes", "non-negative"),
    ({"classes": ("person",)}, "classes", "must be integers"),
    ({"static": (13, 14)}, "static", "static takes one class"),
    ({"static": -2}, "static", "non-negative"),
    ({"steps": 0}, "steps", "steps must be at least 1"),
    ({"steps": 1.5}, "steps", "steps must be an integer"),
    ({"steps": True}, "steps", "steps must be an integer"),
    ({"step_size": 0}, "step_size", "positive number of 8-bit levels"),
    ({"step_size": 256}, "step_size", "positive number of 8-bit levels"),
    ({"step_size": math.inf}, "step_size", "step_size must be a number"),
    ({"step_size": "1"}, "step_size", "step_size must be a number"),
    ({"omega": -0.1}, "omega", "omega must lie in [0, 1]"),
    ({"omega": 1.5}, "omega", "omega must lie in [0, 1]"),
    ({"omega": math.nan}, "omega", "omega must be a number"),
    ({"batch_size": 0}, "batch_size", "batch_size must be at least 1"),
    ({"examples": -1}, "examples", "examples must be 0 or more"),
    ({"fit_limit": 0}, "fit_limit", "fit_limit must be at least 1"),
    ({"eval_limit": "3"}, "eval_limit", "eval_limit must be an integer"),
    ({"label_names": "person"}, "label_names", "one name per output class"),
    ({"label_names": [1, 2]}, "label_names", "one name per output class"),
]


@pytest.mark.parametrize(("fields", "field", "message"), REFUSALS, ids=[f"{r[1]}={r[0][r[1]]!r}" for r in REFUSALS])
def test_each_check_fires_and_names_its_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(UniversalError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        UniversalConfig(**fields)
    assert err.value.field == field
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)
    assert isinstance(err.value, SegattackError)


def test_the_command_line_names_the_option() -> None:
    with pytest.raises(UserError, match=r"^--step-size: step_size must be a positive"):
        build_named(UniversalConfig, {"step_size": 0}, OPTIONS)
    with pytest.raises(UserError, match=r"^--hide: classes: class_id is empty"):
        build_named(UniversalConfig, {"classes": ()}, OPTIONS)
    with pytest.raises(UserError, match=r"^fit_limit must be at least 1"):  # no option: the message alone
        build_named(UniversalConfig, {"fit_limit": 0}, OPTIONS)
    with pytest.raises(UserError, match=r"^--eps: eps must be positive"):  # the experiment's, as before
        build_config(eps=(0,), classes=(11,))
    assert set(OPTIONS) <= {f.name for f in dataclasses.fields(UniversalConfig)}
