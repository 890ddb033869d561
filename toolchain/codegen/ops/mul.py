"""MUL (int8), with broadcasting and fused activations, as TFLite Micro computes it.

TFLM multiplies the zero-point-corrected inputs in int32 and requantizes the product
once with input1_scale * input2_scale / output_scale (`CalculateOpDataMul`, double
precision on float32 scales).
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import FieldValue, KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import (
    check_elementwise_pair,
    elementwise_pair_call,
    require_fused_activation,
    struct_name,
)
from toolchain.codegen.quant import activation_range_int8, quantize_multiplier

OPCODES: tuple[str, ...] = ("MUL",)
INPLACE = True  # each output element is written after the inputs it reads


def check(op: Op) -> None:
    check_elementwise_pair(op)


def mul_params(a: Tensor, b: Tensor, out: Tensor, act: str) -> np.ndarray:
    """TFLM's OpDataMul for int8, in the order of tr_mul_params: [input1 offset, input2 offset,
    output multiplier, output shift, output zero point, activation min, activation max]."""
    real = float(np.float32(a.scale[0])) * float(np.float32(b.scale[0])) / float(np.float32(out.scale[0]))
    multiplier, shift = quantize_multiplier(real)
    lo, hi = activation_range_int8(act, float(out.scale[0]), int(out.zero_point[0]))
    return np.array(
        [-int(a.zero_point[0]), -int(b.zero_point[0]), multiplier, shift, int(out.zero_point[0]), lo, hi],
        np.int32,
    )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    a, b, out = op.inputs[0], op.inputs[1], op.outputs[0]
    act = require_fused_activation(op)
    offset1, offset2, multiplier, shift, offset, lo, hi = (int(v) for v in mul_params(a, b, out, act))
    fields: dict[str, FieldValue] = {
        "input1_offset": offset1,
        "input2_offset": offset2,
        "output": {
            "multiplier": multiplier,
            "shift": shift,
            "output_offset": offset,
            "act_min": lo,
            "act_max": hi,
        },
    }
    comment = (
        f"MUL {shape_text(a)} ({quant_text(a)}) * {shape_text(b)} ({quant_text(b)}) -> "
        f"{shape_text(out)} ({quant_text(out)}), act {act}"
    )
    return elementwise_pair_call(op, ctx, "mul", struct_name(op, ctx), fields, comment, macs=out.size)
