"""``python -m segattack ...``: the command line (``torchrun -m segattack run ...`` starts one per process)."""

from __future__ import annotations

import sys

from .cli import main
from .distributed import pin_local_gpu

if __name__ == "__main__":
    pin_local_gpu()
    sys.exit(main())
