"""segattack's errors: one hierarchy, one place that turns them into messages.

Every error the library raises for a mistake a user can fix derives from ``SegattackError``; its message names
the problem and the fix. The command line catches ``SegattackError`` once, in ``segattack.cli.main``, prints the
message as one line and exits with code 2. The subclasses also derive from the built-in exception a Python
caller would expect (``ValueError`` for bad values, ``OSError`` for files), so ``except ValueError`` keeps working.

- ``UserError``: a mistake in command-line input (an option, a path, a value).
- ``ConfigError``: a configuration the library cannot honour (bad arguments, a model whose classes do not fit).
- ``InputError``: an argument a library function cannot take (images of the wrong shape or range);
  ``InputTypeError``, its kind for an argument of the wrong type, is also a ``TypeError``.
- ``RunDirError``: a run directory that cannot be used: another run holds its lock, it holds a different
  configuration, it is not writable, or one of its files is corrupt.
- ``DataError``: a data set that cannot be used as given (a label file of colours, ids out of range, sizes that
  disagree); ``DataNotFoundError``, its kind for a missing file or folder, is also a ``FileNotFoundError``.
- ``ModelError``: the user's model failed (it raised, returned the wrong thing, or its weights do not fit), or
  cannot be wrapped as given (a NaN std); ``ModelTypeError``, its kind for a wrong type, is also a ``TypeError``.
- ``ResourceError``: the job would not fit in memory; the message gives the estimate and the fix.
- ``UnreadableImageError``: an image or label file exists but cannot be decoded (skipped and counted by runs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = [
    "SegattackError",
    "UserError",
    "ConfigError",
    "InputError",
    "InputTypeError",
    "RunDirError",
    "DataError",
    "DataNotFoundError",
    "ModelError",
    "ModelTypeError",
    "ResourceError",
    "UnreadableImageError",
]


class SegattackError(Exception):
    """Base of segattack's errors: the message is meant for the user (the CLI prints it as one line, exit 2)."""


class UserError(SegattackError, ValueError):
    """A mistake in the user's input on the command line."""


class ConfigError(SegattackError, ValueError):
    """A configuration the library cannot honour; ``field``: the configuration field at fault where one is (the
    command line names its option)."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@contextlib.contextmanager
def about_field(name: str) -> Iterator[None]:
    """Tag a ``ConfigError`` raised in the block with the field ``name`` (unless it names one already)."""
    try:
        yield
    except ConfigError as err:
        if err.field is None:
            err.field = name
        raise


class InputError(SegattackError, ValueError):
    """An argument a library function cannot take: images of the wrong shape or range, a blur wider than the image."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type (a list where a tensor belongs, integer images); also a ``TypeError``."""


class RunDirError(SegattackError, ValueError):
    """A run directory that cannot be used as asked (locked, different configuration, unwritable, corrupt)."""


class DataError(SegattackError, ValueError):
    """A data set whose files cannot be used as given (labels of colours, ids out of range, sizes that disagree)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A file or folder a data set needs does not exist (or is a file, not a folder); also a ``FileNotFoundError``."""


class ModelError(SegattackError, ValueError):
    """The user's model failed or does not fit: it raised, returned the wrong type or shape, or its weights do not
    load. ``spec`` names the model as the user gave it, where known."""

    def __init__(self, message: str, *, spec: str | None = None) -> None:
        super().__init__(message)
        self.spec = spec


class ModelTypeError(ModelError, TypeError):
    """A model of the wrong type (no ``nn.Module``), or one that returned a tuple or integer logits; also a
    ``TypeError``."""


class ResourceError(SegattackError, MemoryError):
    """The job would need more memory than the device has; the message gives the estimate and the fix."""


class UnreadableImageError(SegattackError, OSError):
    """An image (or its label) file exists but cannot be decoded."""
