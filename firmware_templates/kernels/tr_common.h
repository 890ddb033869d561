/*
 * tr_common.h - integer requantization shared by every tinyrank kernel.
 *
 * These follow TensorFlow Lite Micro's reference arithmetic exactly (gemmlowp's
 * SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, and TFLM's double-rounding
 * MultiplyByQuantizedMultiplier), so generated models match TFLM byte for byte.
 *
 * Kernels are prefix-free shared code: every kernel function is defined with TR_KERNEL,
 * a weak symbol on GCC/Clang, so two generated models (different --prefix) linked into
 * one firmware each bring identical copies and the linker keeps one.
 */
#ifndef TR_COMMON_H
#define TR_COMMON_H

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define TR_KERNEL __attribute__((weak))
#define TR_INLINE static inline __attribute__((always_inline))
#else
#define TR_KERNEL
#define TR_INLINE static inline
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TR_NO_DSP)
#define TR_USE_DSP 1
#include <arm_acle.h>
#else
#define TR_USE_DSP 0
#endif

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

TR_INLINE int32_t tr_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
TR_INLINE int32_t tr_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

#if defined(__GNUC__) || defined(__clang__)
#define TR_ALIGNED(n) __attribute__((aligned(n)))
#else
#define TR_ALIGNED(n)
#endif

#if TR_USE_DSP
#include <string.h>

/* Four int8 from any address as one word (the M4 allows unaligned LDR). */
TR_INLINE int32_t tr_read_int8x4(const int8_t *p)
{
    int32_t word;
    memcpy(&word, p, 4);
    return word;
}

/* Bytes 1 and 3 of a word, sign-extended to two halfwords: one SXTB16 with its rotate
 * operand (gcc 12 has no __ror, and a shift-or is not folded into the SXTB16). */
TR_INLINE uint32_t tr_sxtb16_ror8(uint32_t x)
{
    uint32_t result;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(result) : "r"(x));
    return result;
}

/* acc + dot(a[0..3], b[0..3]) with two SMLADs; bytes 0,2 and 1,3 pair up on both sides,
 * so the sum equals the plain C loop exactly. */
TR_INLINE int32_t tr_dot4_int8(int32_t acc, int32_t a, int32_t b)
{
    uint32_t a_even = __sxtb16((uint32_t)a);
    uint32_t b_even = __sxtb16((uint32_t)b);
    acc = (int32_t)__smlad(a_even, b_even, (uint32_t)acc);
    return (int32_t)__smlad(tr_sxtb16_ror8((uint32_t)a), tr_sxtb16_ror8((uint32_t)b), (uint32_t)acc);
}
#endif

/* acc + sum a[i] * b[i] over n int8 pairs. */
TR_INLINE int32_t tr_dot_int8(int32_t acc, const int8_t *a, const int8_t *b, int n)
{
    int i = 0;
#if TR_USE_DSP
    for (; i + 4 <= n; i += 4) {
        acc = tr_dot4_int8(acc, tr_read_int8x4(a + i), tr_read_int8x4(b + i));
    }
#endif
    for (; i < n; ++i) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

/* acc[r] += dot(x, row r) for a group of four rows of length n stored "packed by four":
 * for every whole word of the rows, 16 bytes (row 0's four bytes, then rows 1, 2, 3),
 * then the n % 4 leftover bytes of row 0, 1, 2, 3. The generator packs weights this way
 * (codegen/packing.py), so one pointer walks all four rows and each input word is loaded
 * and sign-extended once for the four. */
TR_INLINE void tr_dot_int8_x4(const int8_t *x, const int8_t *packed, int n, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int words = n / 4;
    const int8_t *w = packed;
#if TR_USE_DSP
    for (const int8_t *end = x + 4 * words; x < end; x += 4, w += 16) {
        uint32_t word = (uint32_t)tr_read_int8x4(x);
        uint32_t even = __sxtb16(word), odd = tr_sxtb16_ror8(word);
        uint32_t w0 = (uint32_t)tr_read_int8x4(w), w1 = (uint32_t)tr_read_int8x4(w + 4);
        a0 = (int32_t)__smlad(odd, tr_sxtb16_ror8(w0), __smlad(even, __sxtb16(w0), (uint32_t)a0));
        a1 = (int32_t)__smlad(odd, tr_sxtb16_ror8(w1), __smlad(even, __sxtb16(w1), (uint32_t)a1));
        uint32_t w2 = (uint32_t)tr_read_int8x4(w + 8), w3 = (uint32_t)tr_read_int8x4(w + 12);
        a2 = (int32_t)__smlad(odd, tr_sxtb16_ror8(w2), __smlad(even, __sxtb16(w2), (uint32_t)a2));
        a3 = (int32_t)__smlad(odd, tr_sxtb16_ror8(w3), __smlad(even, __sxtb16(w3), (uint32_t)a3));
    }
#else
    for (int j = 0; j < words; ++j, x += 4, w += 16) {
        for (int k = 0; k < 4; ++k) {
            int32_t xk = x[k];
            a0 += xk * w[k];
            a1 += xk * w[4 + k];
            a2 += xk * w[8 + k];
            a3 += xk * w[12 + k];
        }
    }
#endif
    const int rest = n - 4 * words;
    for (int k = 0; k < rest; ++k) {
        int32_t xk = x[k];
        a0 += xk * w[k];
        a1 += xk * w[rest + k];
        a2 += xk * w[2 * rest + k];
        a3 += xk * w[3 * rest + k];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Two input rows x0, x1 against two consecutive rows of a packed-by-four group (`w` points
 * at the first of them inside the group; words are 16 bytes apart): acc[0], acc[1] for x0
 * with rows 0, 1 and acc[2], acc[3] for x1. Each weight word is loaded and sign-extended
 * once for the two inputs, which halves the weight work of 1x1 convolutions. Whole words
 * only; the caller adds the leftover bytes. */
TR_INLINE void tr_dot_int8_2x2_words(const int8_t *x0, const int8_t *x1, const int8_t *w, int words,
                                     int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
#if TR_USE_DSP
    for (const int8_t *end = x0 + 4 * words; x0 < end; x0 += 4, x1 += 4, w += 16) {
        uint32_t p = (uint32_t)tr_read_int8x4(x0), q = (uint32_t)tr_read_int8x4(x1);
        uint32_t pe = __sxtb16(p), po = tr_sxtb16_ror8(p), qe = __sxtb16(q), qo = tr_sxtb16_ror8(q);
        uint32_t r = (uint32_t)tr_read_int8x4(w);
        uint32_t re = __sxtb16(r), ro = tr_sxtb16_ror8(r);
        a0 = (int32_t)__smlad(po, ro, __smlad(pe, re, (uint32_t)a0));
        b0 = (int32_t)__smlad(qo, ro, __smlad(qe, re, (uint32_t)b0));
        r = (uint32_t)tr_read_int8x4(w + 4);
        re = __sxtb16(r);
        ro = tr_sxtb16_ror8(r);
        a1 = (int32_t)__smlad(po, ro, __smlad(pe, re, (uint32_t)a1));
        b1 = (int32_t)__smlad(qo, ro, __smlad(qe, re, (uint32_t)b1));
    }
#else
    for (int j = 0; j < words; ++j, x0 += 4, x1 += 4, w += 16) {
        for (int k = 0; k < 4; ++k) {
            a0 += (int32_t)x0[k] * w[k];
            a1 += (int32_t)x0[k] * w[4 + k];
            b0 += (int32_t)x1[k] * w[k];
            b1 += (int32_t)x1[k] * w[4 + k];
        }
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* Requantize an int32 accumulator to int8: scale, add the output zero point, clamp.
 * Equal to tr_multiply_by_quantized_multiplier(acc, multiplier, shift) + output_offset,
 * clamped, for every multiplier TFLite's QuantizeMultiplier produces (0 or in
 * [2^30, 2^31), never INT32_MIN, so the saturating case cannot occur and is not tested);
 * written out so the compiler emits ~20 instructions, since depthwise convolutions spend
 * one requantization per 9 MACs. */
TR_INLINE int8_t tr_requantize(int32_t acc, int32_t multiplier, int shift, int32_t output_offset,
                               int32_t act_min, int32_t act_max)
{
    int left = shift & ~(shift >> 31); /* max(shift, 0), branch-free */
    int right = left - shift;          /* max(-shift, 0) */
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

/* Output channel c of a layer requantized either in TFLM's general form (round == NULL:
 * tr_requantize with multiplier[c], shift[c]) or, where the generator proved it exact, in the
 * doubled form (shift[c] holds the right shift and round[c] the rounding constant with the
 * output offset; see tr_requantize_doubled). */
TR_INLINE int8_t tr_requantize_channel(int32_t acc, const int32_t *multiplier, const int32_t *shift,
                                       const int32_t *round, int c, int32_t output_offset, int32_t act_min,
                                       int32_t act_max)
{
    if (round != 0) {
        return tr_requantize_doubled((int32_t)((uint32_t)acc << 1), multiplier[c], shift[c], round[c], act_min,
                                     act_max);
    }
    return tr_requantize(acc, multiplier[c], shift[c], output_offset, act_min, act_max);
}

/* Four outputs (one packed group, rows 0..3 of `group`) for two input rows at once, requantized
 * into y0[0..3] and y1[0..3]: every weight word serves both inputs (1x1 convolution pixels,
 * im2col columns). `round` as in tr_requantize_channel (NULL: the general form). */
TR_INLINE void tr_dense_pair_group(const int8_t *x0, const int8_t *x1, const int8_t *group, const int32_t *bias,
                                   int depth, int8_t *y0, int8_t *y1, const int32_t *multiplier, const int32_t *shift,
                                   const int32_t *round, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int words = depth / 4, rest = depth - 4 * words;
    int32_t lo[4] = { bias[0], bias[1], bias[0], bias[1] };
    int32_t hi[4] = { bias[2], bias[3], bias[2], bias[3] };
    tr_dot_int8_2x2_words(x0, x1, group, words, lo);     /* rows 0, 1 */
    tr_dot_int8_2x2_words(x0, x1, group + 8, words, hi); /* rows 2, 3 */
    const int8_t *tail = group + 16 * words;
    for (int k = 0; k < rest; ++k) {
        int32_t p = x0[4 * words + k], q = x1[4 * words + k];
        lo[0] += p * tail[k];
        lo[1] += p * tail[rest + k];
        hi[0] += p * tail[2 * rest + k];
        hi[1] += p * tail[3 * rest + k];
        lo[2] += q * tail[k];
        lo[3] += q * tail[rest + k];
        hi[2] += q * tail[2 * rest + k];
        hi[3] += q * tail[3 * rest + k];
    }
    if (round != 0) { /* one test for eight outputs */
        y0[0] = tr_requantize_channel(lo[0], multiplier, shift, round, 0, output_offset, act_min, act_max);
        y0[1] = tr_requantize_channel(lo[1], multiplier, shift, round, 1, output_offset, act_min, act_max);
        y0[2] = tr_requantize_channel(hi[0], multiplier, shift, round, 2, output_offset, act_min, act_max);
        y0[3] = tr_requantize_channel(hi[1], multiplier, shift, round, 3, output_offset, act_min, act_max);
        y1[0] = tr_requantize_channel(lo[2], multiplier, shift, round, 0, output_offset, act_min, act_max);
        y1[1] = tr_requantize_channel(lo[3], multiplier, shift, round, 1, output_offset, act_min, act_max);
        y1[2] = tr_requantize_channel(hi[2], multiplier, shift, round, 2, output_offset, act_min, act_max);
        y1[3] = tr_requantize_channel(hi[3], multiplier, shift, round, 3, output_offset, act_min, act_max);
        return;
    }
    y0[0] = tr_requantize(lo[0], multiplier[0], shift[0], output_offset, act_min, act_max);
    y0[1] = tr_requantize(lo[1], multiplier[1], shift[1], output_offset, act_min, act_max);
    y0[2] = tr_requantize(hi[0], multiplier[2], shift[2], output_offset, act_min, act_max);
    y0[3] = tr_requantize(hi[1], multiplier[3], shift[3], output_offset, act_min, act_max);
    y1[0] = tr_requantize(lo[2], multiplier[0], shift[0], output_offset, act_min, act_max);
    y1[1] = tr_requantize(lo[3], multiplier[1], shift[1], output_offset, act_min, act_max);
    y1[2] = tr_requantize(hi[2], multiplier[2], shift[2], output_offset, act_min, act_max);
    y1[3] = tr_requantize(hi[3], multiplier[3], shift[3], output_offset, act_min, act_max);
}

#endif /* TR_COMMON_H */
