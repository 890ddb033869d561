"""LOGISTIC (int8): a 256-entry lookup table computed with TFLite Micro's own arithmetic.

An int8 input has only 256 values, so instead of running gemmlowp's fixed-point
logistic on the device for every element, the table is computed here with the exact
integer steps of TFLM's `reference_integer_ops::Logistic` (`fixedpoint.py`) and the
kernel only looks up.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.fixedpoint import gemmlowp_logistic
from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import lookup_call, require_int8_per_tensor, sigmoid_style_table
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("LOGISTIC",)
INPLACE = True


def logistic_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """TFLM reference Logistic: output in Q0.8 with zero point -128 (scale 1/256)."""
    return sigmoid_style_table(input_scale, input_zero_point, gemmlowp_logistic, 8, -128)


def check(op: Op) -> None:
    require_int8_per_tensor(op, [op.input(0), op.outputs[0]])
    out = op.outputs[0]
    if int(out.zero_point[0]) != -128:
        raise UnsupportedError(
            f"{op.describe()}: output zero point {int(out.zero_point[0])} is not supported; "
            "supported: -128 (TFLite Micro requires it for int8 LOGISTIC)"
        )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.input(0), op.outputs[0]
    table = logistic_table(float(src.scale[0]), int(src.zero_point[0]))
    return lookup_call(
        op,
        ctx,
        table,
        f"LOGISTIC {shape_text(src)} ({quant_text(src)}) -> {quant_text(dst)}, 256-entry table",
    )
