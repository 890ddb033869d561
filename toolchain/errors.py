"""Errors the CLI turns into one line and a non-zero exit.

Every failure a user can cause (bad file, bad option, a model that does not fit) is a
`TinyrankError` whose message names the thing at fault: the file, the layer or op, the
key, and the limit it broke. Anything else escaping is a bug in tinyrank.
"""


class TinyrankError(Exception):
    """A user-facing failure; `str(error)` is the whole explanation, on one line."""


class DataError(TinyrankError):
    """The `.npz` data set is missing a key, has the wrong shape or holds NaN/Inf."""


class ModelError(TinyrankError):
    """A model file cannot be read, or holds something tinyrank cannot handle."""


class UnsupportedError(TinyrankError):
    """An op, layer, dtype or option outside what a stage supports."""


class BudgetError(TinyrankError):
    """The model does not fit the board's flash or RAM."""


class BuildError(TinyrankError):
    """The compiler, linker or PlatformIO failed."""


class DeviceError(TinyrankError):
    """The board or emulator did not answer as the protocol expects."""
