"""The public names of ``segattack`` stay what they are whatever else was imported: a submodule of the same name
(once ``segattack.evaluate`` was one) would replace a function on import."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import segattack as sa


def test_public_names_survive_importing_every_module() -> None:
    code = (
        "import importlib, pkgutil, segattack as sa\n"
        "for m in pkgutil.walk_packages(sa.__path__, 'segattack.'):\n"
        "    if '.commands' not in m.name and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "import inspect\n"
        "bad = [n for n in sa.__all__ if inspect.ismodule(getattr(sa, n)) and sa._LAZY.get(n) != '']\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_evaluate_is_the_function() -> None:
    for m in pkgutil.walk_packages(sa.__path__, "segattack."):
        if m.name == "segattack.evaluation":
            importlib.import_module(m.name)
    assert inspect.isfunction(sa.evaluate) and sa.evaluate.__module__ == "segattack.evaluation"


def test_one_default_attack() -> None:
    from segattack.attacks import registry
    from segattack.commands._common import DEFAULT_ATTACK as cli_default
    from segattack.rundir import DEFAULT_ATTACK as rows_default

    assert registry.DEFAULT_ATTACK == rows_default == cli_default == "illm"
