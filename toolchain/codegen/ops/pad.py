"""PAD and PADV2 (int8, up to 4-D), as TFLite Micro's pad.cc.

The padding value is the output zero point for PAD (a real 0.0) and the constant
value tensor for PADV2; the values are copied raw, TFLM does not requantize.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import MAX_DIMS, extended_shape, require_int8_per_tensor, struct_name
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("PAD", "PADV2")


def paddings(op: Op) -> np.ndarray:
    """The constant paddings tensor as a [rank, 2] int array (before, after)."""
    src = op.inputs[0]
    pads = op.inputs[1] if len(op.inputs) > 1 else None
    if pads is None or pads.data is None or pads.dtype != "int32":
        what = "a missing" if pads is None else "a non-constant" if pads.data is None else f"a {pads.dtype}"
        raise UnsupportedError(
            f"{op.describe()}: {what} paddings tensor is not supported; supported: constant int32 paddings"
        )
    table = np.asarray(pads.data, np.int64).reshape(-1, 2)
    if table.shape[0] != len(src.shape) or (table < 0).any():
        raise UnsupportedError(
            f"{op.describe()}: paddings {table.tolist()} are not supported for "
            f"{shape_text(src)}; supported: one non-negative (before, after) pair per dimension"
        )
    return table


def pad_value(op: Op) -> int:
    """The int8 value written into the padding."""
    if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] is not None:
        value = op.inputs[2]
        if value.data is None or value.dtype != "int8" or value.size != 1:
            raise UnsupportedError(
                f"{op.describe()}: constant_values {shape_text(value)} is not supported; "
                "supported: a constant int8 scalar"
            )
        return int(np.asarray(value.data).reshape(-1)[0])
    return int(op.outputs[0].zero_point[0])


def collapsed(shape: tuple[int, ...], table: np.ndarray) -> tuple[list[int], list[list[int]]]:
    """Merge each unpadded innermost dimension into the one before it.

    Padding H and W of an NHWC tensor then copies whole W*C rows with one memcpy
    instead of one call per pixel.
    """
    dims, pads = list(shape), [[int(a), int(b)] for a, b in table]
    while len(dims) > 1 and pads[-1] == [0, 0]:
        inner = dims.pop()
        pads.pop()
        dims[-1] *= inner
        pads[-1] = [pads[-1][0] * inner, pads[-1][1] * inner]
    return dims, pads


def check(op: Op) -> None:
    src, dst = op.inputs[0], op.outputs[0]
    require_int8_per_tensor(op, [src, dst])
    if len(src.shape) > MAX_DIMS:
        raise UnsupportedError(
            f"{op.describe()}: input {shape_text(src)} is not supported; "
            f"supported: up to {MAX_DIMS} dimensions"
        )
    table = paddings(op)
    expected = tuple(int(d + a + b) for d, (a, b) in zip(src.shape, table, strict=True))
    if expected != tuple(dst.shape):
        raise UnsupportedError(
            f"{op.describe()}: output {shape_text(dst)} does not match input {shape_text(src)} "
            f"padded by {table.tolist()}; supported: output shape = input + paddings"
        )
    pad_value(op)


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    table = paddings(op)
    dims, pads = collapsed(src.shape, table)
    out_dims = [d + a + b for d, (a, b) in zip(dims, pads, strict=True)]
    before = (0,) * (MAX_DIMS - len(dims)) + tuple(int(a) for a, _ in pads)
    value = pad_value(op)
    fields = {
        "input_dims": [int(d) for d in extended_shape(tuple(dims))],
        "output_dims": [int(d) for d in extended_shape(tuple(out_dims))],
        "before": list(before),
        "value": value,
    }
    return KernelCall(
        source="tr_pad.c",
        function="tr_pad_int8",
        params=ctx.params("tr_pad_params", struct_name(op, ctx, "pad"), fields),
        args=[ctx.tensor(src), ctx.tensor(dst)],
        comment=f"{op.opcode} {shape_text(src)} by {table.tolist()} -> {shape_text(dst)} ({quant_text(dst)}), "
        f"pad value {value}",
    )
