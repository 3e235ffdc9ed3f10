"""adv_lib's attack files as reference implementations, loaded without its package.

adv_lib (``pip install --no-deps adv-lib==0.2.8``, as ``./install.sh test`` does) imports torchvision and visdom in
its package ``__init__``, which segattack does not need. ``load_adv_lib`` executes only the files a test names (and
``utils/losses.py``, which its segmentation attacks import) under stub parent packages, with a stub for its visdom
logger and ``torch.compile`` as the identity (compiling changes speed, not values); ``sys.modules`` and
``torch.compile`` are restored afterwards. ``test_minimal_norm.py`` (alma_prox) and ``test_dag_reference.py`` (DAG)
use it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types

import pytest
import torch

ADV_LIB_VERSION = "0.2.8"


def load_adv_lib(module: str) -> types.ModuleType:
    """adv_lib's module ``module`` (a dotted name below ``adv_lib``, e.g. ``"attacks.segmentation.dense_adversary"``),
    loaded without its package. Skips, saying why, where adv-lib is not installed or is another version than the
    one the reference tests are written against."""
    try:
        dist = importlib.metadata.distribution("adv-lib")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            f"adv-lib is not installed: `pip install --no-deps adv-lib=={ADV_LIB_VERSION}` (its package imports "
            "torchvision and visdom; these tests load only its attack files and need neither)"
        )
    if dist.version != ADV_LIB_VERSION:
        pytest.skip(f"the adv_lib reference tests are written against adv-lib {ADV_LIB_VERSION}; found {dist.version}")
    files = {
        f"adv_lib.{name}": dist.locate_file(f"adv_lib/{name.replace('.', '/')}.py")
        for name in dict.fromkeys(("utils.losses", module))
    }
    packages = {"adv_lib"}
    for name in files:
        parts = name.split(".")
        packages.update(".".join(parts[:i]) for i in range(1, len(parts)))
    stubs: dict[str, types.ModuleType] = {}
    for name in sorted(packages):
        package = types.ModuleType(name)
        package.__path__ = []
        stubs[name] = package
    logger = types.ModuleType("adv_lib.utils.visdom_logger")
    logger.VisdomLogger = type("VisdomLogger", (), {})  # type: ignore[attr-defined]
    stubs[logger.__name__] = logger
    loaded: types.ModuleType | None = None
    with pytest.MonkeyPatch.context() as patch:
        for name, stub in stubs.items():
            patch.setitem(sys.modules, name, stub)
        patch.setattr(torch, "compile", lambda fn=None, **_: fn)
        for name, path in files.items():
            spec = importlib.util.spec_from_file_location(name, str(path))
            assert spec is not None and spec.loader is not None, path
            loaded = importlib.util.module_from_spec(spec)
            patch.setitem(sys.modules, name, loaded)
            spec.loader.exec_module(loaded)
    assert loaded is not None
    return loaded
