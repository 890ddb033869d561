"""Op lowerings: one module per op kind, found by name so adding an op touches one file.

Each module defines `OPCODES` (the TFLite builtin names it handles), `check(op)` (raise
`UnsupportedError` for what it cannot do) and `lower(op, ctx) -> KernelCall | None`
(None only for ops that become memory aliases, such as RESHAPE). A module may also set
`INPLACE = True` when its kernel allows the output to overwrite its first input, and
`ALIAS = True` when the output is the input's memory (no kernel call).

Modules named `_*` (`_common.py`) are helpers the op modules share, not ops: the registry
skips them, and if one fails to import, every op module using it is reported broken.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType

from toolchain.codegen.graph import Op
from toolchain.errors import UnsupportedError

# Op modules that failed to import, with the reason: named in "unsupported op" errors so a
# broken module is not mistaken for a missing one.
BROKEN: dict[str, str] = {}


@lru_cache(maxsize=1)
def registry() -> dict[str, ModuleType]:
    """{opcode: module} over every op module of this package (each defines OPCODES)."""
    table: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except Exception as exc:  # one broken op module must not take every other op down
            BROKEN[info.name] = f"{type(exc).__name__}: {exc}"
            continue
        for opcode in getattr(module, "OPCODES", ()):
            table[opcode] = module
    return table


def supported_opcodes() -> list[str]:
    return sorted(registry())


def module_for(op: Op) -> ModuleType:
    """The lowering module of an op, or an UnsupportedError naming the op and the supported list."""
    module = registry().get(op.opcode)
    if module is None:
        broken = "".join(
            f"; op module '{name}' failed to load ({why})" for name, why in sorted(BROKEN.items())
        )
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): not supported by codegen; "
            f"supported ops: {', '.join(supported_opcodes())}{broken}"
        )
    return module
