"""RESHAPE and SQUEEZE: the same bytes under another shape, so no kernel at all.

The planner gives the output the input's arena buffer (an alias); `lower` returns None.
"""

from __future__ import annotations

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext
from toolchain.errors import UnsupportedError

OPCODES = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
ALIAS = True


def check(op: Op) -> None:
    inp, out = op.input(0), op.outputs[0]
    if inp is None or inp.data is not None:
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): constant input; supported: an activation tensor"
        )
    if inp.size != out.size or inp.dtype != out.dtype:
        raise UnsupportedError(
            f"op {op.index} ({op.opcode}): {inp.dtype}{list(inp.shape)} -> "
            f"{out.dtype}{list(out.shape)} changes the data; supported: same type and size"
        )
    same_quant = (
        inp.scale.tolist() == out.scale.tolist() and inp.zero_point.tolist() == out.zero_point.tolist()
    )
    if not same_quant:
        raise UnsupportedError(f"op {op.index} ({op.opcode}): output quantization differs from the input's")


def lower(op: Op, ctx: LoweringContext) -> KernelCall | None:
    ctx.tensor(op.input(0))
    ctx.tensor(op.outputs[0])
    return None
