/*
 * tr_softmax.c - TFLite SOFTMAX for int8 in, int8 out (scale 1/256, zero point -128),
 * bit-exact with TFLite Micro (reference_ops::Softmax with gemmlowp fixed point).
 *
 * exp_table[d] is TFLM's exp of the input difference -d (d = row max - x, 0..255) in
 * Q0.31, already 0 where TFLM skips the element (difference below diff_min); the code
 * generator computes it with TFLM's own arithmetic. The device sums the row's exps in
 * Q12.19, takes the fixed-point reciprocal and scales each exp by it.
 */
#include "tr_common.h"

/* --- the gemmlowp fixed-point helpers this kernel needs (gemmlowp/fixedpoint/fixedpoint.h),
 * on int32 raw values exactly as TFLite Micro uses them --- */

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

/* --- SOFTMAX --- */

#define TR_SOFTMAX_ACCUM_INTEGER_BITS 12

/* TFLite SOFTMAX, int8 -> int8, over the last dimension (depth) of outer rows.
 * output may be input: each element is written only after its last read. */
TR_KERNEL void tr_softmax_int8(const int8_t *input, int8_t *output, int32_t outer, int32_t depth, const int32_t *exp_table)
{
    for (int32_t row = 0; row < outer; row++) {
        const int8_t *x = input + row * depth;
        int8_t *y = output + row * depth;
        int32_t max = INT8_MIN;
        for (int32_t c = 0; c < depth; c++) {
            max = tr_max_i32(max, x[c]);
        }
        int32_t sum = 0;
        for (int32_t c = 0; c < depth; c++) {
            sum = tr_fp_add(sum, tr_rounding_divide_by_pot(exp_table[max - x[c]], TR_SOFTMAX_ACCUM_INTEGER_BITS));
        }
        /* TFLite GetReciprocal: 1 / sum as a Q0.31 scale and a power of two. */
        const int headroom_plus_one = tr_fp_count_leading_zeros((uint32_t)sum);
        const int num_bits_over_unit = TR_SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one;
        const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum << headroom_plus_one) - (1u << 31));
        const int32_t scale = tr_fp_one_over_one_plus_x(shifted_sum_minus_one);
        const int exponent = num_bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; c++) {
            int32_t p = tr_saturating_rounding_doubling_high_mul(scale, exp_table[max - x[c]]);
            y[c] = tr_clamp_to_int8(tr_rounding_divide_by_pot(p, exponent) + INT8_MIN, INT8_MIN, INT8_MAX);
        }
    }
}
