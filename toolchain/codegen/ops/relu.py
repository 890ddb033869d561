"""Standalone RELU, RELU6 and LEAKY_RELU (int8), as TFLite Micro computes them.

RELU requantizes from the input to the output quantization (`ReluQuantized`); when
both are equal that is a plain clamp, otherwise a 256-entry table computed here.
TFLM's int8 RELU6 ignores the output quantization altogether and clamps the raw input
to [input zero point, quantized 6.0] (`Relu6Prepare`); that is reproduced as is.
LEAKY_RELU requantizes with one multiplier for x >= 0 and one for alpha * x below
(`QuantizeLeakyRelu`): a table too.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops.add import require_int8_per_tensor
from toolchain.codegen.ops.logistic import multiply_by_quantized_multiplier
from toolchain.codegen.quant import quantize_multiplier, round_half_away

OPCODES: tuple[str, ...] = ("RELU", "RELU6", "LEAKY_RELU")
INPLACE = True


def relu_table(src: Tensor, dst: Tensor, alpha: float | None = None) -> np.ndarray:
    """TFLM ReluQuantized (alpha None) or QuantizeLeakyRelu for every int8 input, indexed by input + 128.

    Multipliers are double(float32 arithmetic on the scales), as in TFLM: input / output,
    and (input * alpha) / output for the negative side of LEAKY_RELU.
    """
    in_scale, out_scale = np.float32(src.scale[0]), np.float32(dst.scale[0])
    identity = quantize_multiplier(float(in_scale / out_scale))
    negative = identity if alpha is None else quantize_multiplier(float(in_scale * np.float32(alpha) / out_scale))
    in_zp, out_zp = int(src.zero_point[0]), int(dst.zero_point[0])
    lo = max(-128, out_zp) if alpha is None else -128
    table = np.zeros(256, np.int8)
    for q in range(-128, 128):
        x = q - in_zp
        value = out_zp + multiply_by_quantized_multiplier(x, *(identity if x >= 0 else negative))
        table[q + 128] = min(max(value, lo), 127)
    return table


def relu6_bounds(src: Tensor) -> tuple[int, int]:
    """TFLM Relu6Prepare: [input zero point, FloatToQuantizedType(6.0f)] on the input's quantization."""
    zp = int(src.zero_point[0])
    six = round_half_away(float(np.float32(6.0) / np.float32(src.scale[0]))) + zp
    return zp, min(max(six, -128), 127)


def check(op: Op) -> None:
    require_int8_per_tensor(op, [op.inputs[0], op.outputs[0]])


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    comment = f"{op.opcode} {shape_text(src)} ({quant_text(src)}) -> {quant_text(dst)}"
    if op.opcode == "LEAKY_RELU":
        alpha = float(op.options.get("alpha", 0.2))
        table = ctx.constant(f"op{op.index}_leaky_relu_table", relu_table(src, dst, alpha), "int8_t")
        return KernelCall(source="tr_relu.c", function="tr_relu_requantize_int8",
                          args=[ctx.tensor(src), ctx.tensor(dst), str(src.size), table],
                          comment=f"{comment}, alpha {alpha:g}, 256-entry table")
    same = (np.float32(src.scale[0]) == np.float32(dst.scale[0])
            and int(src.zero_point[0]) == int(dst.zero_point[0]))
    if op.opcode == "RELU6" or same:
        lo, hi = relu6_bounds(src) if op.opcode == "RELU6" else (max(-128, int(dst.zero_point[0])), 127)
        return KernelCall(source="tr_relu.c", function="tr_relu_int8",
                          args=[ctx.tensor(src), ctx.tensor(dst), str(src.size), str(lo), str(hi)],
                          comment=f"{comment}, clamp to [{lo}, {hi}]")
    table = ctx.constant(f"op{op.index}_relu_table", relu_table(src, dst), "int8_t")
    return KernelCall(source="tr_relu.c", function="tr_relu_requantize_int8",
                      args=[ctx.tensor(src), ctx.tensor(dst), str(src.size), table],
                      comment=f"{comment}, 256-entry requantization table")
