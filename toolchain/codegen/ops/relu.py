"""Standalone RELU, RELU6, LEAKY_RELU and HARD_SWISH (int8), as TFLite Micro computes them.

RELU requantizes from the input to the output quantization (`ReluQuantized`); when
both are equal that is a plain clamp, otherwise a 256-entry table computed here.
TFLM's int8 RELU6 ignores the output quantization altogether and clamps the raw input
to [input zero point, quantized 6.0] (`Relu6Prepare`); that is reproduced as is.
LEAKY_RELU requantizes with one multiplier for x >= 0 and one for alpha * x below
(`QuantizeLeakyRelu`), and HARD_SWISH (x * relu6(x + 3) / 6) runs TFLM's int16
fixed-point recipe (`HardSwishPrepare` + `reference_ops::HardSwish`): tables too.
"""

from __future__ import annotations

import numpy as np

from toolchain.codegen.fixedpoint import (
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_left_shift,
    sdhm,
    srdhm,
    wrap16,
)
from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops._common import lookup_call, lookup_table, require_int8_per_tensor, struct_name
from toolchain.codegen.quant import INT8_MAX, INT8_MIN, quantize_multiplier, round_half_away
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH")
INPLACE = True


def relu_table(src: Tensor, dst: Tensor, alpha: float | None = None) -> np.ndarray:
    """TFLM ReluQuantized (alpha None) or QuantizeLeakyRelu for every int8 input, indexed by input + 128.

    Multipliers are double(float32 arithmetic on the scales), as in TFLM: input / output,
    and (input * alpha) / output for the negative side of LEAKY_RELU.
    """
    in_scale, out_scale = np.float32(src.scale[0]), np.float32(dst.scale[0])
    identity = quantize_multiplier(float(in_scale / out_scale))
    negative = (
        identity if alpha is None else quantize_multiplier(float(in_scale * np.float32(alpha) / out_scale))
    )
    in_zp, out_zp = int(src.zero_point[0]), int(dst.zero_point[0])
    lo = max(INT8_MIN, out_zp) if alpha is None else INT8_MIN

    def output(q: int) -> int:
        x = q - in_zp
        value = out_zp + multiply_by_quantized_multiplier(x, *(identity if x >= 0 else negative))
        return min(max(value, lo), INT8_MAX)

    return lookup_table(output)


def _int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier, then TFLM's DownScaleInt32ToInt16Multiplier."""
    multiplier, exponent = quantize_multiplier(real)
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1, exponent
    return (multiplier + (1 << 15)) >> 16, exponent


def hard_swish_multipliers(src: Tensor, dst: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    """HardSwishPrepare: ((output m16, exponent), (reluish m16, exponent)), float32 scale arithmetic."""
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(src.scale[0])
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    output = _int16_multiplier(float(hires_input_scale / np.float32(dst.scale[0])))
    reluish = _int16_multiplier(float(hires_input_scale / reluish_scale))
    return output, reluish


def hard_swish_table(src: Tensor, dst: Tensor) -> np.ndarray:
    """TFLM reference HardSwish (int16 fixed point) for every int8 input, indexed by input + 128."""
    (out_m, out_exp), (rel_m, rel_exp) = hard_swish_multipliers(src, dst)
    in_zp, out_zp = int(src.zero_point[0]), int(dst.zero_point[0])

    def output(q: int) -> int:
        hires = wrap16((q - in_zp) * (1 << 7))
        preshift_output = srdhm(hires, out_m, bits=16)
        reluish = hires
        if rel_exp > 0:
            reluish = saturating_left_shift(reluish, rel_exp - 1)
        reluish = srdhm(reluish, rel_m, bits=16)
        if rel_exp > 0:
            reluish = saturating_left_shift(reluish, 1)
        if rel_exp < 0:
            reluish = rounding_divide_by_pot(reluish, -rel_exp)
        reluish = (reluish + (1 << 15)) >> 1
        value = rounding_divide_by_pot(sdhm(reluish, preshift_output), -out_exp) + out_zp
        return min(max(value, INT8_MIN), INT8_MAX)

    return lookup_table(output)


def relu6_bounds(src: Tensor) -> tuple[int, int]:
    """TFLM Relu6Prepare: [input zero point, FloatToQuantizedType(6.0f)] on the input's quantization."""
    zp = int(src.zero_point[0])
    six = round_half_away(float(np.float32(6.0) / np.float32(src.scale[0]))) + zp
    return zp, min(max(six, INT8_MIN), INT8_MAX)


def check(op: Op) -> None:
    require_int8_per_tensor(op, [op.inputs[0], op.outputs[0]])
    if op.opcode == "HARD_SWISH" and hard_swish_multipliers(op.inputs[0], op.outputs[0])[0][1] > 0:
        raise UnsupportedError(
            f"{op.describe()}: output scale {float(op.outputs[0].scale[0]):g} is below input "
            "scale / 128; supported: output scale >= input scale / 128 (TFLite Micro's limit)"
        )


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    comment = f"{op.opcode} {shape_text(src)} ({quant_text(src)}) -> {quant_text(dst)}"
    same = np.float32(src.scale[0]) == np.float32(dst.scale[0]) and int(src.zero_point[0]) == int(
        dst.zero_point[0]
    )
    if op.opcode == "RELU6" or (op.opcode == "RELU" and same):
        lo, hi = (
            relu6_bounds(src) if op.opcode == "RELU6" else (max(INT8_MIN, int(dst.zero_point[0])), INT8_MAX)
        )
        fields = {"size": src.size, "lo": lo, "hi": hi}
        return KernelCall(
            source="tr_relu.c",
            function="tr_relu_int8",
            params=ctx.params("tr_relu_params", struct_name(op, ctx), fields),
            args=[ctx.tensor(src), ctx.tensor(dst)],
            comment=f"{comment}, clamp to [{lo}, {hi}]",
        )
    if op.opcode == "HARD_SWISH":
        table, note = hard_swish_table(src, dst), ""
    elif op.opcode == "LEAKY_RELU":
        alpha = float(op.options.get("alpha", 0.2))
        table, note = relu_table(src, dst, alpha), f"alpha {alpha:g}, "
    else:
        table, note = relu_table(src, dst), "requantizing "
    return lookup_call(op, ctx, table, f"{comment}, {note}256-entry table")
