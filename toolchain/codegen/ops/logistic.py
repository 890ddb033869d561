"""LOGISTIC (int8): a 256-entry lookup table computed with TFLite Micro's own arithmetic.

An int8 input has only 256 values, so instead of running gemmlowp's fixed-point
logistic on the device for every element, the table is computed here with the exact
integer steps of TFLM's `reference_integer_ops::Logistic` and the kernel only looks up.

This module also holds the Python port of the gemmlowp fixed-point functions that
TFLM's LOGISTIC, TANH and SOFTMAX use (`exp_on_negative_values` and friends); every
value is a Python int kept in int32 range exactly as the C++ wraps or saturates it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from toolchain.codegen.graph import Op
from toolchain.codegen.lowering import KernelCall, LoweringContext, quant_text, shape_text
from toolchain.codegen.ops.add import require_int8_per_tensor
from toolchain.codegen.quant import round_half_away
from toolchain.errors import UnsupportedError

OPCODES: tuple[str, ...] = ("LOGISTIC",)
INPLACE = True

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


# --- gemmlowp fixed-point arithmetic on int32 raw values -------------------------------

def wrap32(x: int) -> int:
    """Two's-complement int32 wrap-around of an int (what int32 + and - do in C++)."""
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _trunc_div(ab + nudge, 1 << 31)


def _trunc_div(a: int, b: int) -> int:
    """C integer division (rounds toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def saturating_rounding_multiply_by_pot(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32."""
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrap32(x << exponent)


def rescale(x: int, from_integer_bits: int, to_integer_bits: int) -> int:
    """gemmlowp Rescale<to>(FixedPoint<int32, from>)."""
    return saturating_rounding_multiply_by_pot(x, from_integer_bits - to_integer_bits)


def one(integer_bits: int) -> int:
    """FixedPoint<int32, integer_bits>::One()."""
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


def rounding_half_sum(a: int, b: int) -> int:
    """gemmlowp RoundingHalfSum on int32 (through int64)."""
    total = a + b
    sign = 1 if total >= 0 else -1
    return _trunc_div(total + sign, 2)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLM's double-rounding MultiplyByQuantizedMultiplier (int32 x)."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rounding_divide_by_pot(srdhm(wrap32(x * (1 << left)), multiplier), right)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """gemmlowp: exp(a) for a in [-1/4, 0), Q0.31 in and out."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp exp_on_negative_values: FixedPoint<int32, integer_bits> a <= 0 -> Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            if remainder & (1 << (fractional_bits + exponent)):
                result = srdhm(result, multiplier)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = one(0)
    return result


def _newton_reciprocal_f2(a: int) -> tuple[int, int]:
    """The Newton-Raphson loop shared by gemmlowp's 1/(1+x) and (1-x)/(1+x): (x in Q2.29, half_denominator)."""
    half_denominator = rounding_half_sum(a, one(0))
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap32(one(2) - half_denominator_times_x)
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return x, half_denominator


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31 in and out)."""
    x, _ = _newton_reciprocal_f2(a)
    return rescale(x, 1, 0)  # ExactMulByPot<-1> keeps the raw value, Q2.29 -> Q1.30


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1 (Q0.31 in and out)."""
    x, _ = _newton_reciprocal_f2(a)
    return rescale(wrap32(x - one(2)), 2, 0)


def gemmlowp_logistic(a: int, integer_bits: int) -> int:
    """gemmlowp logistic: FixedPoint<int32, integer_bits> -> Q0.31."""
    if a == 0:
        return 1 << 30
    abs_input = a if a > 0 else wrap32(-a)
    positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_input), integer_bits))
    return positive if a > 0 else wrap32(one(0) - positive)


def gemmlowp_tanh(a: int, integer_bits: int) -> int:
    """gemmlowp tanh: FixedPoint<int32, integer_bits> -> Q0.31."""
    if a == 0:
        return 0
    n = wrap32(-a) if a < 0 else a
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-n), integer_bits + 1))
    return wrap32(-t) if a < 0 else t


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite CalculateInputRadius (double arithmetic, floored)."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1)
                          * float(1 << (total_signed_bits - input_integer_bits))
                          / math.ldexp(1.0, input_left_shift))
    return int(math.floor(max_input_rescaled))


def sigmoid_style_table(input_scale: float, input_zero_point: int, function: Callable[[int, int], int],
                        output_fraction_bits: int, output_offset: int) -> np.ndarray:
    """TFLM's int8 LOGISTIC / TANH for every int8 input, indexed by input + 128.

    Prepare: the input rescaled into Q4.27 with a frexp multiplier (no QuantizeMultiplier
    rounding fix-up) and a saturation radius. Eval: outside the radius the int8 extremes,
    inside gemmlowp's `function` in Q0.31 rounded to `output_fraction_bits`, offset, clamped.
    """
    integer_bits = 4
    real = float(np.float32(input_scale)) * float(1 << (31 - integer_bits))
    q, left_shift = math.frexp(real)
    multiplier = round_half_away(q * (1 << 31))
    radius = calculate_input_radius(integer_bits, left_shift)
    table = np.zeros(256, np.int8)
    for value in range(-128, 128):
        x = value - input_zero_point
        if x <= -radius:
            out = -128
        elif x >= radius:
            out = 127
        else:
            x_q4 = multiply_by_quantized_multiplier(x, multiplier, left_shift)
            out = rounding_divide_by_pot(function(x_q4, integer_bits), 31 - output_fraction_bits) + output_offset
            out = min(max(out, -128), 127)
        table[value + 128] = out
    return table


# --- LOGISTIC ---------------------------------------------------------------------------

def logistic_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """TFLM reference Logistic: output in Q0.8 with zero point -128 (scale 1/256)."""
    return sigmoid_style_table(input_scale, input_zero_point, gemmlowp_logistic, 8, -128)


def check(op: Op) -> None:
    require_int8_per_tensor(op, [op.inputs[0], op.outputs[0]])
    out = op.outputs[0]
    if int(out.zero_point[0]) != -128:
        raise UnsupportedError(
            f"{op.describe()}: output zero point {int(out.zero_point[0])} is not supported; "
            "supported: -128 (TFLite Micro requires it for int8 LOGISTIC)")


def lower(op: Op, ctx: LoweringContext) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    table = logistic_table(float(src.scale[0]), int(src.zero_point[0]))
    name = ctx.constant(f"op{op.index}_logistic_table", table, "int8_t")
    return KernelCall(
        source="tr_logistic.c", function="tr_logistic_int8",
        args=[ctx.tensor(src), ctx.tensor(dst), str(src.size), name],
        comment=f"LOGISTIC {shape_text(src)} ({quant_text(src)}) -> {quant_text(dst)}, 256-entry table")
