/*
 * tr_matmul.h - the int8 matrix loops of FULLY_CONNECTED, pointwise CONV_2D and their factored
 * (low-rank) pairs, one or two input rows at a time.
 *
 * On the DSP path (Cortex-M4/M7/M33) an input row is first widened into scratch as int16 pairs
 * in the order SMLAD wants against a sign-extended weight word: for each input word
 * (x0 x1 x2 x3) the two words (x0 x2) and (x1 x3). Every output then costs per four inputs one
 * weight word, two SXTB16 and two SMLAD, and the input loads are shared by a tile of outputs:
 *   - one row:  4 outputs, the four weight words of a packed group loaded by one LDM
 *               (8 SXTB16 + 8 SMLAD per 16 MACs);
 *   - two rows: 2 outputs x 2 rows, both rows' pairs loaded by one LDM, each sign-extended
 *               weight word serving both rows (4 SXTB16 + 8 SMLAD per 16 MACs).
 * The loops are inline assembly because gcc 12 neither uses LDM nor post-increments here, and
 * the loop counter would cost as much as the loads. A Cortex-M4 charges 1+N cycles for LDM
 * and 3 for LDRD: the same as the single loads they replace, so fewer instructions here are
 * also fewer cycles.
 *
 * The plain C path (Cortex-M0/M3) runs tr_dense_rows of tr_conv_core.h. Both give the bytes of
 * TFLite Micro's reference kernel: the sums are exact int32 sums in any order.
 *
 * Weights are packed by four rows (packing.py); the scratch `wide` holds
 * tr_matmul_wide_words(depth, rows) words (the generator reserves it).
 */
#ifndef TR_MATMUL_H
#define TR_MATMUL_H

#include "tr_conv_core.h"

/* Words of widened scratch for `rows` (1 or 2) input rows of `depth` int8 values. */
#define TR_MATMUL_WIDE_WORDS(depth, rows) (2 * (rows) * ((depth) / 4))

#if TR_USE_DSP

/* Input words of a row as (x0 x2), (x1 x3) pairs at out[0], out[1], then out[step], ... */
TR_INLINE void tr_widen_row(const int8_t *x, int words, uint32_t *out, int step)
{
    for (const int8_t *end = x + 4 * words; x < end; x += 4, out += step) {
        uint32_t v = (uint32_t)tr_read_int8x4(x);
        out[0] = __sxtb16(v);
        out[1] = tr_sxtb16_ror8(v);
    }
}

/* One weight word (register W, row accumulator A) against the pairs XE, XO of one row. */
#define TR_MAC1(W, A) \
    "sxtb16 %[t], " W "\n\t" \
    "smlad %[" A "], %[xe], %[t], %[" A "]\n\t" \
    "sxtb16 " W ", " W ", ror #8\n\t" \
    "smlad %[" A "], %[xo], " W ", %[" A "]\n\t"
#define TR_STEP_1X4 \
    "ldrd %[xe], %[xo], [%[x]], #8\n\t" \
    "ldm %[w]!, {r8, r9, r10, r11}\n\t" \
    TR_MAC1("r8", "a0") TR_MAC1("r9", "a1") TR_MAC1("r10", "a2") TR_MAC1("r11", "a3")

/* acc[0..3] += four packed rows (group of `words` 16-byte steps) . widened row `x`. */
TR_INLINE void tr_dot_1x4_wide(const uint32_t *x, const int8_t *w, int words, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    uint32_t xe, xo, t;
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    if (words & 1) {
        __asm__ volatile(TR_STEP_1X4
                         : [x] "+r"(x), [w] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),
                           [a3] "+r"(a3), [xe] "=&r"(xe), [xo] "=&r"(xo), [t] "=&r"(t), "=&r"(r8), "=&r"(r9),
                           "=&r"(r10), "=&r"(r11)
                         :
                         : "memory");
    }
    if (words >= 2) {
        const uint32_t *end = x + 2 * (words & ~1);
        __asm__ volatile("1:\n\t" TR_STEP_1X4 TR_STEP_1X4 "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : [x] "+r"(x), [w] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),
                           [a3] "+r"(a3), [xe] "=&r"(xe), [xo] "=&r"(xo), [t] "=&r"(t), "=&r"(r8), "=&r"(r9),
                           "=&r"(r10), "=&r"(r11)
                         : [end] "r"(end)
                         : "cc", "memory");
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* One weight word (register W) against both rows' pairs (r8, r9 and r10, r11). */
#define TR_MAC2(W, A, B) \
    "sxtb16 %[t], %[" W "]\n\t" \
    "smlad %[" A "], r8, %[t], %[" A "]\n\t" \
    "smlad %[" B "], r10, %[t], %[" B "]\n\t" \
    "sxtb16 %[" W "], %[" W "], ror #8\n\t" \
    "smlad %[" A "], r9, %[" W "], %[" A "]\n\t" \
    "smlad %[" B "], r11, %[" W "], %[" B "]\n\t"
#define TR_STEP_2X2 \
    "ldm %[x]!, {r8, r9, r10, r11}\n\t" \
    "ldrd %[w0], %[w1], [%[w]], #16\n\t" \
    TR_MAC2("w0", "a0", "b0") TR_MAC2("w1", "a1", "b1")

/* Rows 0, 1 of a packed group (`w` points at row 0's first word) against two widened rows
 * interleaved in `x` (per input word: row 0's pairs, then row 1's): acc = {a0, a1, b0, b1}. */
TR_INLINE void tr_dot_2x2_wide(const uint32_t *x, const int8_t *w, int words, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    uint32_t w0, w1, t;
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    if (words & 1) {
        __asm__ volatile(TR_STEP_2X2
                         : [x] "+r"(x), [w] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0),
                           [b1] "+r"(b1), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t), "=&r"(r8), "=&r"(r9),
                           "=&r"(r10), "=&r"(r11)
                         :
                         : "memory");
    }
    if (words >= 2) {
        const uint32_t *end = x + 4 * (words & ~1);
        __asm__ volatile("1:\n\t" TR_STEP_2X2 TR_STEP_2X2 "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : [x] "+r"(x), [w] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0),
                           [b1] "+r"(b1), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t), "=&r"(r8), "=&r"(r9),
                           "=&r"(r10), "=&r"(r11)
                         : [end] "r"(end)
                         : "cc", "memory");
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* tr_requantize_doubled for a layer whose clamp is the whole int8 range (no activation, or a
 * ReLU whose zero point is -128): one SSAT clamps. `FULL` is a constant at every call, so each
 * loop below is compiled twice, once per clamp. */
TR_INLINE int8_t tr_requantize_fast(int32_t acc, const int32_t *multiplier, const int32_t *right,
                                    const int32_t *round, int c, int full, int32_t act_min, int32_t act_max)
{
    if (!full) {
        return tr_requantize_doubled((int32_t)((uint32_t)acc << 1), multiplier[c], right[c], round[c], act_min,
                                     act_max);
    }
    int32_t high;
    __asm__("smmulr %0, %1, %2" : "=r"(high) : "r"((int32_t)((uint32_t)acc << 1)), "r"(multiplier[c]));
    return (int8_t)__ssat((high + round[c] - (int32_t)((uint32_t)high >> 31)) >> right[c], 8);
}

/* The leftover `rest` (< 4) inputs of a packed group, after its whole words. */
TR_INLINE void tr_dot_tail_4(const int8_t *x, const int8_t *tail, int rest, int32_t acc[4])
{
    for (int k = 0; k < rest; ++k) {
        int32_t xk = x[k];
        acc[0] += xk * tail[k];
        acc[1] += xk * tail[rest + k];
        acc[2] += xk * tail[2 * rest + k];
        acc[3] += xk * tail[3 * rest + k];
    }
}

/* Groups of four outputs of one widened row; returns the first output left (row-major rows). */
TR_INLINE int tr_matmul_row_groups(const int8_t *x, const uint32_t *wide, const int8_t *filter,
                                   const int32_t *bias, int8_t *y, int depth, int out_depth,
                                   const int32_t *multiplier, const int32_t *right, const int32_t *round,
                                   int full, int32_t act_min, int32_t act_max)
{
    const int words = depth / 4, rest = depth - 4 * words;
    int o = 0;
    for (; o + 4 <= out_depth; o += 4) {
        const int8_t *group = filter + o * depth;
        int32_t acc[4] = { bias[o], bias[o + 1], bias[o + 2], bias[o + 3] };
        tr_dot_1x4_wide(wide, group, words, acc);
        if (rest) {
            tr_dot_tail_4(x + 4 * words, group + 16 * words, rest, acc);
        }
        y[o] = tr_requantize_fast(acc[0], multiplier, right, round, o, full, act_min, act_max);
        y[o + 1] = tr_requantize_fast(acc[1], multiplier, right, round, o + 1, full, act_min, act_max);
        y[o + 2] = tr_requantize_fast(acc[2], multiplier, right, round, o + 2, full, act_min, act_max);
        y[o + 3] = tr_requantize_fast(acc[3], multiplier, right, round, o + 3, full, act_min, act_max);
    }
    return o;
}

/* Groups of four outputs of two widened rows (interleaved in `wide`). */
TR_INLINE int tr_matmul_pair_groups(const int8_t *x0, const int8_t *x1, const uint32_t *wide,
                                    const int8_t *filter, const int32_t *bias, int8_t *y0, int8_t *y1,
                                    int depth, int out_depth, const int32_t *multiplier, const int32_t *right,
                                    const int32_t *round, int full, int32_t act_min, int32_t act_max)
{
    const int words = depth / 4, rest = depth - 4 * words;
    int o = 0;
    for (; o + 4 <= out_depth; o += 4) {
        const int8_t *group = filter + o * depth;
        for (int half = 0; half < 4; half += 2) { /* rows 0, 1 of the group, then rows 2, 3 */
            const int c = o + half;
            int32_t acc[4] = { bias[c], bias[c + 1], bias[c], bias[c + 1] };
            tr_dot_2x2_wide(wide, group + 4 * half, words, acc);
            if (rest) {
                const int8_t *tail = group + 16 * words + half * rest;
                for (int k = 0; k < rest; ++k) {
                    int32_t p = x0[4 * words + k], q = x1[4 * words + k];
                    acc[0] += p * tail[k];
                    acc[1] += p * tail[rest + k];
                    acc[2] += q * tail[k];
                    acc[3] += q * tail[rest + k];
                }
            }
            y0[c] = tr_requantize_fast(acc[0], multiplier, right, round, c, full, act_min, act_max);
            y0[c + 1] = tr_requantize_fast(acc[1], multiplier, right, round, c + 1, full, act_min, act_max);
            y1[c] = tr_requantize_fast(acc[2], multiplier, right, round, c, full, act_min, act_max);
            y1[c + 1] = tr_requantize_fast(acc[3], multiplier, right, round, c + 1, full, act_min, act_max);
        }
    }
    return o;
}

/* Leftover output rows (past the last group of four, row-major) of one input row. */
TR_INLINE void tr_dense_leftover_rows(const int8_t *x, const int8_t *filter, const int32_t *bias, int8_t *y, int o,
                                      int depth, int out_depth, const int32_t *multiplier, const int32_t *shift,
                                      const int32_t *round, int32_t output_offset, int32_t act_min,
                                      int32_t act_max)
{
    for (; o < out_depth; ++o) {
        int32_t acc = tr_dot_int8(bias[o], x, filter + o * depth, depth);
        y[o] = tr_requantize_channel(acc, multiplier, shift, round, o, output_offset, act_min, act_max);
    }
}

/* One input row x (widened into `wide`) -> y, in the doubled requantization (round != 0). */
TR_LAYER_LOOP void tr_matmul_row(const int8_t *x, uint32_t *wide, const int8_t *filter, const int32_t *bias,
                                 int8_t *y, int depth, int out_depth, const int32_t *multiplier,
                                 const int32_t *shift, const int32_t *round, int32_t output_offset,
                                 int32_t act_min, int32_t act_max)
{
    tr_widen_row(x, depth / 4, wide, 2);
    int o;
    if (act_min == -128 && act_max == 127) {
        o = tr_matmul_row_groups(x, wide, filter, bias, y, depth, out_depth, multiplier, shift, round, 1, act_min,
                                 act_max);
    } else {
        o = tr_matmul_row_groups(x, wide, filter, bias, y, depth, out_depth, multiplier, shift, round, 0, act_min,
                                 act_max);
    }
    tr_dense_leftover_rows(x, filter, bias, y, o, depth, out_depth, multiplier, shift, round, output_offset,
                           act_min, act_max);
}

/* Two input rows x0, x1 (widened, interleaved, into `wide`) -> y0, y1, in the doubled
 * requantization: every weight word is loaded and sign-extended once for both rows. */
TR_LAYER_LOOP void tr_matmul_row_pair(const int8_t *x0, const int8_t *x1, uint32_t *wide, const int8_t *filter,
                                      const int32_t *bias, int8_t *y0, int8_t *y1, int depth, int out_depth,
                                      const int32_t *multiplier, const int32_t *shift, const int32_t *round,
                                      int32_t output_offset, int32_t act_min, int32_t act_max)
{
    tr_widen_row(x0, depth / 4, wide, 4);
    tr_widen_row(x1, depth / 4, wide + 2, 4);
    int o;
    if (act_min == -128 && act_max == 127) {
        o = tr_matmul_pair_groups(x0, x1, wide, filter, bias, y0, y1, depth, out_depth, multiplier, shift, round,
                                  1, act_min, act_max);
    } else {
        o = tr_matmul_pair_groups(x0, x1, wide, filter, bias, y0, y1, depth, out_depth, multiplier, shift, round,
                                  0, act_min, act_max);
    }
    tr_dense_leftover_rows(x0, filter, bias, y0, o, depth, out_depth, multiplier, shift, round, output_offset,
                           act_min, act_max);
    tr_dense_leftover_rows(x1, filter, bias, y1, o, depth, out_depth, multiplier, shift, round, output_offset,
                           act_min, act_max);
}
#endif /* TR_USE_DSP */

/* `batches` input rows -> output rows, two at a time where there are two. */
TR_HELPER void tr_matmul_rows(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                              int batches, int depth, int out_depth, const int32_t *multiplier,
                              const int32_t *shift, const int32_t *round, int32_t output_offset,
                              int32_t act_min, int32_t act_max, uint32_t *wide)
{
#if TR_USE_DSP
    if (round == 0) { /* TFLM's general requantization: the plain loops */
        tr_dense_rows(input, filter, bias, output, batches, depth, out_depth, multiplier, shift, round,
                      output_offset, act_min, act_max);
        return;
    }
    int b = 0;
    for (; b + 2 <= batches; b += 2) {
        const int8_t *x0 = input + b * depth;
        int8_t *y0 = output + b * out_depth;
        tr_matmul_row_pair(x0, x0 + depth, wide, filter, bias, y0, y0 + out_depth, depth, out_depth, multiplier,
                           shift, round, output_offset, act_min, act_max);
    }
    if (b < batches) {
        tr_matmul_row(input + b * depth, wide, filter, bias, output + b * out_depth, depth, out_depth, multiplier,
                      shift, round, output_offset, act_min, act_max);
    }
#else
    (void)wide;
    tr_dense_rows(input, filter, bias, output, batches, depth, out_depth, multiplier, shift, round, output_offset,
                  act_min, act_max);
#endif
}

#endif /* TR_MATMUL_H */
