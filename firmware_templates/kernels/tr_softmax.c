/*
 * tr_softmax.c - TFLite SOFTMAX for int8 (tr_softmax.h).
 *
 * The code generator computes the exp table with TFLM's own arithmetic; the device sums the
 * row's exps in Q12.19, takes the fixed-point reciprocal and scales each exp by it.
 */
#include "tr_softmax.h"

#include "tr_fixedpoint.h"

#define TR_SOFTMAX_ACCUM_INTEGER_BITS 12

TR_KERNEL void tr_softmax_int8(const tr_softmax_params *params, const int8_t *input, int8_t *output)
{
    const int32_t outer = params->outer, depth = params->depth;
    const int32_t *exp_table = params->exp_table;
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
