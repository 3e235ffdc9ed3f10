"""Every refusal the library raises is a ``SegattackError`` kind (also the built-in type a Python caller expects), so
that the command line prints one line for all of them; a raise of a bare built-in error is allowed only where a
protocol or an internal invariant asks for it, listed here with the reason."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import segattack as sa
from segattack import errors

SRC = Path(__file__).resolve().parents[1] / "src" / "segattack"
BUILTIN_ERRORS = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
                  and issubclass(getattr(builtins, n), BaseException)}  # fmt: skip
#: (module, exception, why) of the bare built-in raises that stay.
ALLOWED = {
    ("data/synthetic/dataset.py", "IndexError", "the sequence protocol: iteration stops at IndexError"),
    ("data/synthetic/canvas.py", "RuntimeError", "an internal invariant of the scene painter, not a user's input"),
    ("attacks/registry.py", "ValueError", "raised and caught in parse_option, re-raised as AttackError"),
    ("models.py", "TypeError", "raised and caught in _numbers, re-raised as ModelTypeError"),
    ("train/batches.py", "IndexError", "the sequence protocol of the training sample lists"),
    ("train/batches.py", "RuntimeError", "the synthetic data set's module missing from an install"),
    ("zoo/fcn8s.py", "RuntimeError", "an internal invariant of the skip crops (ceil-mode pooling)"),
    ("__init__.py", "AttributeError", "the module __getattr__ protocol of the lazy public API"),
    ("attacks/__init__.py", "AttributeError", "the module __getattr__ protocol of the lazy names"),
    ("data/__init__.py", "AttributeError", "the module __getattr__ protocol of the lazy names"),
}


def bare_raises() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("commands/") or rel == "cli.py":
            continue  # the command line's own handling
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = getattr(node.exc.func, "id", None)
                if name in BUILTIN_ERRORS and name not in ("NotImplementedError", "KeyboardInterrupt", "SystemExit"):
                    found.add((rel, name))
    return found


def test_the_library_refuses_with_segattack_errors() -> None:
    allowed = {(m, e) for m, e, _ in ALLOWED}
    assert bare_raises() - allowed == set()


def test_every_error_kind_is_also_the_builtin_type() -> None:
    kinds = [getattr(errors, n) for n in dir(errors) if isinstance(getattr(errors, n), type)]
    kinds = [k for k in kinds if issubclass(k, errors.SegattackError) and k is not errors.SegattackError]
    assert kinds
    for k in kinds:
        assert any(issubclass(k, b) for b in (ValueError, TypeError, OSError, MemoryError, RuntimeError)), k


@pytest.mark.parametrize(
    ("call", "builtin"),
    [
        (lambda: sa.attacks.pgd(sa.PixelModel(__import__("torch").nn.Conv2d(3, 2, 1)), [1], None, eps=0.1), TypeError),
        (lambda: sa.metrics.confusion_matrix(__import__("torch").zeros(2, 2), __import__("torch").zeros(3, 3),
                                             num_classes=2), ValueError),
        (lambda: sa.evaluate(None, [], num_classes=2, batch_size=0), ValueError),
    ],
)  # fmt: skip
def test_refusals_are_both_kinds(call: object, builtin: type) -> None:
    with pytest.raises(errors.SegattackError) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, builtin)
