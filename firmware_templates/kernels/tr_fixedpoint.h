/*
 * tr_fixedpoint.h - the gemmlowp fixed-point helpers (gemmlowp/fixedpoint/fixedpoint.h) that
 * kernels run on the device, on int32 raw values exactly as TFLite Micro uses them.
 *
 * The code generator runs the same arithmetic in Python (toolchain/codegen/fixedpoint.py)
 * to build lookup tables; what is left for the device (SOFTMAX's reciprocal of a row sum)
 * is here. tr_requantize.h has the two basic ones: tr_saturating_rounding_doubling_high_mul
 * and tr_rounding_divide_by_pot.
 */
#ifndef TR_FIXEDPOINT_H
#define TR_FIXEDPOINT_H

#include "tr_requantize.h"

/* a + b with int32 wrap-around, without C's signed-overflow undefined behaviour. */
TR_INLINE int32_t tr_fp_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for 0 < exponent < 31. */
TR_INLINE int32_t tr_fp_saturating_shift_left(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* gemmlowp RoundingHalfSum: (a + b) / 2 rounded away from zero. */
TR_INLINE int32_t tr_fp_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a), a in Q0.31, result in Q0.31,
 * by three Newton-Raphson steps in Q2.29. */
TR_INLINE int32_t tr_fp_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = tr_fp_rounding_half_sum(a, INT32_MAX);
    const int32_t one_q2 = 1 << 29;
    int32_t x = tr_fp_add(1515870810 /* 48/17 */,
                          tr_saturating_rounding_doubling_high_mul(half_denominator, -1010580540 /* -32/17 */));
    for (int i = 0; i < 3; i++) {
        const int32_t half_denominator_times_x = tr_saturating_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus = tr_fp_add(one_q2, -half_denominator_times_x);
        x = tr_fp_add(x, tr_fp_saturating_shift_left(tr_saturating_rounding_doubling_high_mul(x, one_minus), 2));
    }
    return tr_fp_saturating_shift_left(x, 1);
}

/* Number of leading zero bits of a non-zero 32-bit value. */
TR_INLINE int tr_fp_count_leading_zeros(uint32_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_clz(x);
#else
    int n = 0;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
#endif
}

#endif /* TR_FIXEDPOINT_H */
