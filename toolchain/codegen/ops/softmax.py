"""SOFTMAX (int8 -> int8 with scale 1/256, zero point -128), bit-exact with TFLite Micro.

TFLM rescales each input difference from the row maximum by beta * input_scale into
Q5.26, takes gemmlowp's fixed-point exp, sums in Q12.19 and divides with a fixed-point
reciprocal. An int8 difference has only 256 values, so the exps are computed here once
(with TFLM's integer steps, `PreprocessSoftmaxScaling` included) into a table; the
kernel does the max, the sum, the reciprocal and the scaling.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.fixedpoint import calculate_input_radius, exp_on_negative_values, srdhm, wrap32
from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import require_int8_per_tensor, struct_name
from toolchain.codegen.quant import quantize_multiplier
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("SOFTMAX",)
INPLACE = True  # each output element is written after the inputs it reads

SCALED_DIFF_INTEGER_BITS = 5
# The final right shift is 35 - clz(sum of exps), and each exp adds at most 2^19 to the
# sum: from 512 elements on, the shift can reach 32, where TFLM's C++ shifts are
# undefined (x86 and Arm then differ), so exactness cannot be promised.
MAX_DEPTH = 511


def softmax_scaling(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius: (multiplier, left_shift, diff_min)."""
    real = min(
        float(np.float32(beta))
        * float(np.float32(input_scale))
        * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)),
        float((1 << 31) - 1),
    )
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, left_shift)
    return multiplier, left_shift, diff_min


def exp_table(beta: float, input_scale: float) -> np.ndarray:
    """TFLM's Q0.31 exp of every int8 input difference -d, d = 0..255; 0 where TFLM skips it."""
    multiplier, left_shift, diff_min = softmax_scaling(beta, input_scale)
    table = np.zeros(256, np.int32)
    for d in range(256):
        diff = -d
        if diff >= diff_min:
            rescaled = srdhm(wrap32(diff * (1 << left_shift)), multiplier)
            table[d] = exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
    return table


def check(op: Op) -> None:
    src, dst = op.inputs[0], op.outputs[0]
    require_int8_per_tensor(op, [src, dst])
    if int(dst.zero_point[0]) != -128 or np.float32(dst.scale[0]) != np.float32(1.0 / 256):
        raise UnsupportedError(
            f"{op.describe()}: output quantization {quant_text(dst)} is not supported; "
            "supported: scale 1/256, zero point -128 (TFLite Micro's int8 SOFTMAX)"
        )
    depth = src.shape[-1] if src.shape else 1
    if depth > MAX_DEPTH:
        raise UnsupportedError(
            f"{op.describe()}: depth {depth} (last dimension of {shape_text(src)}) is not "
            f"supported; supported: up to {MAX_DEPTH}"
        )
    multiplier, _, _ = softmax_scaling(float(op.options.get("beta", 1.0)), float(src.scale[0]))
    if multiplier == 0 or float(op.options.get("beta", 1.0)) * float(src.scale[0]) * (1 << 26) <= 1.0:
        raise UnsupportedError(
            f"{op.describe()}: beta {op.options.get('beta')} with input {quant_text(src)} is "
            "not supported; supported: beta * input scale above 2^-26"
        )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    beta = float(op.options.get("beta", 1.0))
    depth = src.shape[-1] if src.shape else 1
    name = struct_name(op, ctx)
    table = ctx.constant(f"{name}_exp_table", exp_table(beta, float(src.scale[0])), "int32_t")
    fields = {"outer": src.size // depth, "depth": depth, "exp_table": table}
    return KernelCall(
        source="tr_softmax.c",
        function="tr_softmax_int8",
        params=ctx.params("tr_softmax_params", name, fields),
        args=[ctx.tensor(src), ctx.tensor(dst)],
        comment=f"SOFTMAX {shape_text(src)} ({quant_text(src)}) beta {beta:g} -> {shape_text(dst)} ({quant_text(dst)})",
    )
