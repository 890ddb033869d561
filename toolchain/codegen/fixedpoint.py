"""A Python port of the integer arithmetic TFLite Micro runs: gemmlowp fixed point and friends.

The op lowerings compute lookup tables (LOGISTIC, TANH, SOFTMAX's exps, HARD_SWISH,
ADD's input rescaling) by running TFLM's own integer steps for every int8 input, so the
device only looks up. Bit-exactness needs every rounding and wrap-around of the C++, so
each value here is a Python int kept in int32 (or int16) range exactly as the C++ wraps
or saturates it. `firmware_templates/kernels/tr_fixedpoint.h` is the C side of the few
helpers a kernel runs on the device.
"""

from __future__ import annotations

import math

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


# --- integer basics ---------------------------------------------------------------------


def _wrap(x: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return (x + half) % (1 << bits) - half


def wrap32(x: int) -> int:
    """Two's-complement int32 wrap-around of an int (what int32 + and - do in C++)."""
    return _wrap(x, 32)


def wrap16(x: int) -> int:
    """static_cast<int16_t>: two's-complement int16 wrap-around."""
    return _wrap(x, 16)


def _trunc_div(a: int, b: int) -> int:
    """C integer division (rounds toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _doubling_high_mul(a: int, b: int, bits: int, rounding: bool) -> int:
    """(a * b * 2) >> bits on int`bits` values, saturating the one overflow (lowest * lowest)."""
    lowest = -(1 << (bits - 1))
    if a == lowest and b == lowest:
        return -lowest - 1
    ab = a * b
    nudge = 0
    if rounding:
        nudge = (1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2))
    return _trunc_div(ab + nudge, 1 << (bits - 1))


def srdhm(a: int, b: int, bits: int = 32) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 (or int16 with bits=16)."""
    return _doubling_high_mul(a, b, bits, rounding=True)


def sdhm(a: int, b: int, bits: int = 16) -> int:
    """TFLM's SaturatingDoublingHighMul (HARD_SWISH's int16 maths): srdhm without the rounding."""
    return _doubling_high_mul(a, b, bits, rounding=False)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def saturating_left_shift(x: int, amount: int, bits: int = 16) -> int:
    """TFLM's SaturatingLeftShift: x * 2^amount clamped to the int`bits` range."""
    return min(max(x * (1 << amount), -(1 << (bits - 1))), (1 << (bits - 1)) - 1)


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


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLM's double-rounding MultiplyByQuantizedMultiplier (int32 x; shift > 0 is left)."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rounding_divide_by_pot(srdhm(wrap32(x * (1 << left)), multiplier), right)


# --- gemmlowp FixedPoint<int32, integer_bits> on raw values --------------------------------


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
        wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1
    )
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp exp_on_negative_values: FixedPoint<int32, integer_bits> a <= 0 -> Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0)
    )
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
    """The Newton-Raphson loop shared by gemmlowp's 1/(1+x) and (1-x)/(1+x).

    Returns (x in Q2.29, half_denominator).
    """
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


def calculate_input_radius(
    input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31
) -> int:
    """TFLite CalculateInputRadius (double arithmetic, floored)."""
    max_input_rescaled = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * float(1 << (total_signed_bits - input_integer_bits))
        / math.ldexp(1.0, input_left_shift)
    )
    return int(math.floor(max_input_rescaled))
