"""TANH (int8): a 256-entry lookup table computed with TFLite Micro's own arithmetic.

TFLM's `reference_integer_ops::Tanh` rescales the input into Q4.27 (multiplier from
frexp, as in LOGISTIC), runs gemmlowp's fixed-point tanh and writes Q0.7 (scale 1/128,
zero point 0, which the converter always gives TANH). Every int8 input is run through
those steps here; the kernel only looks up.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.fixedpoint import gemmlowp_tanh
from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import lookup_call, require_int8_per_tensor, sigmoid_style_table

OPCODES: tuple[str, ...] = ("TANH",)
INPLACE = True


def tanh_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """TFLM reference Tanh: output in Q0.7 with zero point 0 (scale 1/128)."""
    return sigmoid_style_table(input_scale, input_zero_point, gemmlowp_tanh, 7, 0)


def check(op: Op) -> None:
    require_int8_per_tensor(op, [op.input(0), op.outputs[0]])


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.input(0), op.outputs[0]
    table = tanh_table(float(src.scale[0]), int(src.zero_point[0]))
    return lookup_call(
        op, ctx, table, f"TANH {shape_text(src)} ({quant_text(src)}) -> {quant_text(dst)}, 256-entry table"
    )
