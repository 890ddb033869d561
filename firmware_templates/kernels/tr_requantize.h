/*
 * tr_requantize.h - int32 accumulator -> int8 output, exactly as TensorFlow Lite Micro does it.
 *
 * gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, TFLM's double-rounding
 * MultiplyByQuantizedMultiplier, and two fast forms of the whole step (scale, add the output
 * zero point, clamp): tr_requantize for any multiplier QuantizeMultiplier produces, and
 * tr_requantize_doubled where the generator proved it exact. tr_requant_params (tr_params.h)
 * describes a layer's per-channel requantization.
 */
#ifndef TR_REQUANTIZE_H
#define TR_REQUANTIZE_H

#include "tr_params.h"

/* (a * b * 2) >> 32 rounded to nearest, saturating the single overflow case.
 * gemmlowp writes it as (ab + nudge) / 2^31 with nudge = ab >= 0 ? 2^30 : 1 - 2^30 and a
 * division that truncates toward zero; for negative ab that truncation adds 2^31 - 1
 * before an arithmetic shift, which makes both cases (ab + 2^30) >> 31: the same value,
 * in four instructions (SMULL, ADDS, ADC, and a funnel shift) instead of a branchy divide. */
TR_INLINE int32_t tr_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + (1LL << 30)) >> 31);
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
TR_INLINE int32_t tr_rounding_divide_by_pot(int32_t x, int exponent)
{
    int32_t mask = (int32_t)((1LL << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^(shift - 31), rounded twice as TFLite Micro does. */
TR_INLINE int32_t tr_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    int left_shift = shift > 0 ? shift : 0;
    int right_shift = shift > 0 ? 0 : -shift;
    /* unsigned multiply: wraps like the int32 product TFLM computes, without C's overflow UB */
    int32_t shifted = (int32_t)((uint32_t)x * ((uint32_t)1 << left_shift));
    return tr_rounding_divide_by_pot(tr_saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}

TR_INLINE int8_t tr_clamp_to_int8(int32_t x, int32_t lo, int32_t hi)
{
    if (x < lo) {
        x = lo;
    }
    if (x > hi) {
        x = hi;
    }
    return (int8_t)x;
}

/* Requantize an int32 accumulator to int8: scale, add the output zero point, clamp.
 * Equal to tr_multiply_by_quantized_multiplier(acc, multiplier, shift) + output_offset,
 * clamped, for every multiplier TFLite's QuantizeMultiplier produces (0 or in
 * [2^30, 2^31), never INT32_MIN, so the saturating case cannot occur and is not tested);
 * written out so the compiler emits ~20 instructions, since depthwise convolutions spend
 * one requantization per 9 MACs. */
TR_INLINE int8_t tr_requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                               int32_t act_min, int32_t act_max)
{
    int32_t left = shift & ~(shift >> 31); /* max(shift, 0), branch-free */
    int32_t right = left - shift;          /* max(-shift, 0) */
    int32_t x = (int32_t)((uint32_t)acc << left);
    int32_t high = (int32_t)(((int64_t)x * multiplier + (1LL << 30)) >> 31);
    int32_t mask = (int32_t)((1u << right) - 1u);
    int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)high >> 31);
    int32_t value = (high >> right) + ((high & mask) > threshold) + output_offset;
    value = value < act_min ? act_min : value;
    return (int8_t)(value > act_max ? act_max : value);
}

/* The requantization of tr_requantize in about ten instructions, for an accumulator that
 * arrives doubled (acc2 = 2 * acc) and a channel whose parameters the generator checked:
 * shift <= -1 (right = -shift in 1..22), |acc| < 2^30, and round = 2^(right-1) +
 * (output_offset << right). Then, exactly as TFLM's two roundings:
 *   SaturatingRoundingDoublingHighMul(acc, m) = (acc * m + 2^30) >> 31 = (acc2 * m + 2^31) >> 32,
 *   one SMMULR on the Cortex-M4 (the saturating case needs acc = INT32_MIN: excluded);
 *   RoundingDivideByPOT(high, right) = (high + 2^(right-1) - (high < 0)) >> right,
 *   and adding output_offset << right before the shift adds output_offset after it. */
TR_INLINE int8_t tr_requantize_doubled(int32_t acc2, int32_t multiplier, int32_t right, int32_t round,
                                       int32_t act_min, int32_t act_max)
{
#if TR_USE_DSP
    int32_t high;
    __asm__("smmulr %0, %1, %2" : "=r"(high) : "r"(acc2), "r"(multiplier));
#else
    int32_t high = (int32_t)(((int64_t)acc2 * multiplier + 0x80000000LL) >> 32);
#endif
    int32_t value = (high + round - (int32_t)((uint32_t)high >> 31)) >> right;
    value = value < act_min ? act_min : value;
    return (int8_t)(value > act_max ? act_max : value);
}

/* Output channel c of a layer, in the form tr_requant_params describes: `doubled` (pairs of
 * right shift and rounding constant) if not NULL, else TFLM's general form with shift[c]. */
TR_INLINE int8_t tr_requantize_channel(int32_t acc, const int32_t *multiplier, const int32_t *shift,
                                       const int32_t *doubled, int c, int32_t output_offset, int32_t act_min,
                                       int32_t act_max)
{
    if (doubled != NULL) {
        return tr_requantize_doubled((int32_t)((uint32_t)acc << 1), multiplier[c], doubled[2 * c],
                                     doubled[2 * c + 1], act_min, act_max);
    }
    return tr_requantize(acc, multiplier[c], shift[c], output_offset, act_min, act_max);
}

#endif /* TR_REQUANTIZE_H */
