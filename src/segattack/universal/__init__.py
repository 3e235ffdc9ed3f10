"""Universal adversarial perturbations (Metzen, Kumar, Brox and Fischer, ICCV 2017): a job that fits one
perturbation on a data set and writes files, beside ``segattack.attacks`` (whose attacks are pure functions of a
batch).

- ``config``: ``UniversalConfig``, the job's configuration (eps and step size in 8-bit levels), checked once;
- ``fit``: ``universal``, the fit itself, in memory ([0, 1] units, as every library function that takes eps);
- ``perturbation``: ``UniversalResult``, ``apply_universal``, ``perturbation_image`` (pure tensor maths);
- ``export``: ``save_universal``/``load_universal`` and the job's files;
- ``run``: ``run_universal``, the job on a directory it owns (lock, kind, manifest): fit, measure on held-out
  images, write.

>>> import segattack.universal as su
>>> su.UniversalConfig(eps=10, classes=(11,)).eps01 == 10 / 255
True
"""

from .config import UniversalConfig, UniversalError
from .export import load_universal, save_universal
from .fit import DEFAULT_HIDE_CLASS, universal
from .perturbation import UniversalResult, apply_universal, perturbation_image
from .run import UniversalRun, run_universal

__all__ = [
    "UniversalConfig",
    "UniversalError",
    "UniversalResult",
    "UniversalRun",
    "universal",
    "run_universal",
    "apply_universal",
    "perturbation_image",
    "save_universal",
    "load_universal",
    "DEFAULT_HIDE_CLASS",
]
