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
 * A layer is its weights, packed by four rows (packing.py), and one table of four int32 per
 * output channel (TR_CHANNEL_*: folded bias, multiplier, shift, rounding), so that a group of
 * outputs walks one pointer instead of four arrays. `doubled` says which requantization the
 * table holds: 1, tr_requantize_doubled (shift is the right shift, rounding includes the output
 * offset, and the table's bias is doubled: the accumulators are kept doubled, which on the DSP
 * path costs nothing since the widened input is doubled once per row); 0, TFLite Micro's general
 * form (tr_requantize; rounding unused). The scratch `wide`
 * holds TR_MATMUL_WIDE_WORDS(depth, rows) words (the generator reserves it).
 */
#ifndef TR_MATMUL_H
#define TR_MATMUL_H

#include "tr_conv_core.h"

#define TR_CHANNEL_BIAS 0
#define TR_CHANNEL_MULTIPLIER 1
#define TR_CHANNEL_SHIFT 2
#define TR_CHANNEL_ROUND 3

/* An output channel's accumulator (doubled when the table is) requantized as its table entry
 * says; `full` (a constant at every call, so each loop is compiled once per case) means the
 * clamp is the whole int8 range (no activation, or a ReLU whose zero point is -128). Then on the
 * DSP path SMMLAR adds the rounding constant to the high product, and since the generator
 * checked every multiplier is above 2^30, the high product is negative exactly when the
 * accumulator is: tr_requantize_doubled in five instructions, one SSAT for the clamp. */
TR_INLINE int8_t tr_requantize_entry(int32_t acc, const int32_t *entry, int doubled, int full,
                                     int32_t output_offset, int32_t act_min, int32_t act_max)
{
    if (!doubled) {
        return tr_requantize(acc, entry[TR_CHANNEL_MULTIPLIER], entry[TR_CHANNEL_SHIFT], output_offset, act_min,
                             act_max);
    }
#if TR_USE_DSP
    if (full) {
        int32_t value;
        __asm__("smmlar %0, %1, %2, %3"
                : "=r"(value)
                : "r"(acc), "r"(entry[TR_CHANNEL_MULTIPLIER]), "r"(entry[TR_CHANNEL_ROUND]));
        return (int8_t)__ssat((value - (int32_t)((uint32_t)acc >> 31)) >> entry[TR_CHANNEL_SHIFT], 8);
    }
#else
    (void)full;
#endif
    return tr_requantize_doubled(acc, entry[TR_CHANNEL_MULTIPLIER], entry[TR_CHANNEL_SHIFT],
                                 entry[TR_CHANNEL_ROUND], act_min, act_max);
}

/* Leftover output rows (past the last group of four, row-major) of one input row. */
TR_INLINE void tr_matmul_leftover_rows(const int8_t *x, const int8_t *filter, const int32_t *channels, int8_t *y,
                                       int o, int depth, int out_depth, int doubled, int32_t output_offset,
                                       int32_t act_min, int32_t act_max)
{
    for (; o < out_depth; ++o) {
        const int32_t *entry = channels + 4 * o;
        int32_t sum = tr_dot_int8(0, x, filter + o * depth, depth);
        int32_t acc = entry[TR_CHANNEL_BIAS] + (int32_t)((uint32_t)sum << doubled);
        y[o] = tr_requantize_entry(acc, entry, doubled, 0, output_offset, act_min, act_max);
    }
}

/* Words of widened scratch for `rows` (1 or 2) input rows of `depth` int8 values. */
#define TR_MATMUL_WIDE_WORDS(depth, rows) (2 * (rows) * ((depth) / 4))

#if TR_USE_DSP

/* Input words of a row as (x0 x2), (x1 x3) pairs at out[0], out[1], then out[step], ...,
 * doubled (2x fits int16) for a doubled table. */
TR_INLINE void tr_widen_row(const int8_t *x, int words, uint32_t *out, int step, int doubled)
{
    const int8_t *end = x + 4 * words;
    if (doubled) {
        for (; x < end; x += 4, out += step) {
            uint32_t v = (uint32_t)tr_read_int8x4(x), even = __sxtb16(v), odd = tr_sxtb16_ror8(v);
            out[0] = __sadd16(even, even);
            out[1] = __sadd16(odd, odd);
        }
        return;
    }
    for (; x < end; x += 4, out += step) {
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

/* acc[0..3] += four packed rows (group of `words` 16-byte steps) . widened row `x`; returns the
 * weight pointer past those words. */
TR_INLINE const int8_t *tr_dot_1x4_wide(const uint32_t *x, const int8_t *w, int words, int32_t acc[4])
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
    return w;
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

/* The leftover `rest` (< 4) inputs of a packed group, after its whole words (doubled or not). */
TR_INLINE void tr_dot_tail_4(const int8_t *x, const int8_t *tail, int rest, int doubled, int32_t acc[4])
{
    for (int k = 0; k < rest; ++k) {
        int32_t xk = x[k] * (1 + doubled);
        acc[0] += xk * tail[k];
        acc[1] += xk * tail[rest + k];
        acc[2] += xk * tail[2 * rest + k];
        acc[3] += xk * tail[3 * rest + k];
    }
}

/* Groups of four outputs of one widened row; returns the first output left (row-major rows). */
TR_INLINE int tr_matmul_row_groups(const int8_t *x, const uint32_t *wide, const int8_t *filter,
                                   const int32_t *channels, int8_t *y, int depth, int out_depth, int doubled,
                                   int full, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int words = depth / 4, rest = depth - 4 * words;
    const int8_t *w = filter; /* walks the packed groups: words, then the tail */
    int8_t *end = y + (out_depth & ~3);
    for (; y < end; y += 4, channels += 16) {
        int32_t acc[4] = { channels[0], channels[4], channels[8], channels[12] };
        w = tr_dot_1x4_wide(wide, w, words, acc);
        if (rest) {
            tr_dot_tail_4(x + 4 * words, w, rest, doubled, acc);
            w += 4 * rest;
        }
        y[0] = tr_requantize_entry(acc[0], channels, doubled, full, output_offset, act_min, act_max);
        y[1] = tr_requantize_entry(acc[1], channels + 4, doubled, full, output_offset, act_min, act_max);
        y[2] = tr_requantize_entry(acc[2], channels + 8, doubled, full, output_offset, act_min, act_max);
        y[3] = tr_requantize_entry(acc[3], channels + 12, doubled, full, output_offset, act_min, act_max);
    }
    return out_depth & ~3;
}

/* Groups of four outputs of two widened rows (interleaved in `wide`), by halves: rows 0, 1 of
 * the group, then rows 2, 3. */
TR_INLINE int tr_matmul_pair_groups(const int8_t *x0, const int8_t *x1, const uint32_t *wide,
                                    const int8_t *filter, const int32_t *channels, int8_t *y0, int8_t *y1,
                                    int depth, int out_depth, int doubled, int full, int32_t output_offset,
                                    int32_t act_min, int32_t act_max)
{
    const int words = depth / 4, rest = depth - 4 * words;
    const int halves = out_depth / 2 & ~1;
    for (int h = 0; h < halves; ++h, channels += 8, y0 += 2, y1 += 2) {
        const int8_t *group = filter + (h >> 1) * 4 * depth;
        const int half = 2 * (h & 1);
        int32_t acc[4] = { channels[0], channels[4], channels[0], channels[4] };
        tr_dot_2x2_wide(wide, group + 4 * half, words, acc);
        if (rest) {
            const int8_t *tail = group + 16 * words + half * rest;
            for (int k = 0; k < rest; ++k) {
                int32_t p = x0[4 * words + k] * (1 + doubled), q = x1[4 * words + k] * (1 + doubled);
                acc[0] += p * tail[k];
                acc[1] += p * tail[rest + k];
                acc[2] += q * tail[k];
                acc[3] += q * tail[rest + k];
            }
        }
        y0[0] = tr_requantize_entry(acc[0], channels, doubled, full, output_offset, act_min, act_max);
        y0[1] = tr_requantize_entry(acc[1], channels + 4, doubled, full, output_offset, act_min, act_max);
        y1[0] = tr_requantize_entry(acc[2], channels, doubled, full, output_offset, act_min, act_max);
        y1[1] = tr_requantize_entry(acc[3], channels + 4, doubled, full, output_offset, act_min, act_max);
    }
    return out_depth & ~3;
}

/* The three requantizations a layer can have, each with its own compiled loop. */
#define TR_MATMUL_BY_REQUANT(CALL_DOUBLED_FULL, CALL_DOUBLED, CALL_GENERAL) \
    do {                                                                 \
        if (!doubled) {                                                  \
            CALL_GENERAL;                                                \
        } else if (act_min == -128 && act_max == 127) {                  \
            CALL_DOUBLED_FULL;                                           \
        } else {                                                         \
            CALL_DOUBLED;                                                \
        }                                                                \
    } while (0)

/* One input row x (widened into `wide`) -> y. */
TR_LAYER_LOOP void tr_matmul_row(const int8_t *x, uint32_t *wide, const int8_t *filter, const int32_t *channels,
                                 int8_t *y, int depth, int out_depth, int doubled, int32_t output_offset,
                                 int32_t act_min, int32_t act_max)
{
    tr_widen_row(x, depth / 4, wide, 2, doubled);
    int o = 0;
    TR_MATMUL_BY_REQUANT(o = tr_matmul_row_groups(x, wide, filter, channels, y, depth, out_depth, 1, 1,
                                                  output_offset, act_min, act_max),
                         o = tr_matmul_row_groups(x, wide, filter, channels, y, depth, out_depth, 1, 0,
                                                  output_offset, act_min, act_max),
                         o = tr_matmul_row_groups(x, wide, filter, channels, y, depth, out_depth, 0, 0,
                                                  output_offset, act_min, act_max));
    tr_matmul_leftover_rows(x, filter, channels, y, o, depth, out_depth, doubled, output_offset, act_min,
                            act_max);
}

/* Two input rows x0, x1 (widened, interleaved, into `wide`) -> y0, y1: every weight word is
 * loaded and sign-extended once for both rows. */
TR_LAYER_LOOP void tr_matmul_row_pair(const int8_t *x0, const int8_t *x1, uint32_t *wide, const int8_t *filter,
                                      const int32_t *channels, int8_t *y0, int8_t *y1, int depth, int out_depth,
                                      int doubled, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    tr_widen_row(x0, depth / 4, wide, 4, doubled);
    tr_widen_row(x1, depth / 4, wide + 2, 4, doubled);
    int o = 0;
    TR_MATMUL_BY_REQUANT(o = tr_matmul_pair_groups(x0, x1, wide, filter, channels, y0, y1, depth, out_depth, 1, 1,
                                                   output_offset, act_min, act_max),
                         o = tr_matmul_pair_groups(x0, x1, wide, filter, channels, y0, y1, depth, out_depth, 1, 0,
                                                   output_offset, act_min, act_max),
                         o = tr_matmul_pair_groups(x0, x1, wide, filter, channels, y0, y1, depth, out_depth, 0, 0,
                                                   output_offset, act_min, act_max));
    tr_matmul_leftover_rows(x0, filter, channels, y0, o, depth, out_depth, doubled, output_offset, act_min,
                            act_max);
    tr_matmul_leftover_rows(x1, filter, channels, y1, o, depth, out_depth, doubled, output_offset, act_min,
                            act_max);
}
#else /* plain C: the packed-by-four loops of tr_common.h */

/* One input row -> y: groups of four outputs share every input load. */
TR_LAYER_LOOP void tr_matmul_row_plain(const int8_t *x, const int8_t *filter, const int32_t *channels, int8_t *y,
                                       int depth, int out_depth, int doubled, int32_t output_offset,
                                       int32_t act_min, int32_t act_max)
{
    int o = 0;
    for (; o + 4 <= out_depth; o += 4) {
        const int32_t *entry = channels + 4 * o;
        int32_t acc[4] = { 0, 0, 0, 0 };
        tr_dot_int8_x4(x, filter + o * depth, depth, acc);
        for (int k = 0; k < 4; ++k) {
            acc[k] = entry[4 * k] + (int32_t)((uint32_t)acc[k] << doubled);
            y[o + k] = tr_requantize_entry(acc[k], entry + 4 * k, doubled, 0, output_offset, act_min, act_max);
        }
    }
    tr_matmul_leftover_rows(x, filter, channels, y, o, depth, out_depth, doubled, output_offset, act_min,
                            act_max);
}

/* Two input rows -> y0, y1: every weight word serves both rows. */
TR_LAYER_LOOP void tr_matmul_pair_plain(const int8_t *x0, const int8_t *x1, const int8_t *filter,
                                        const int32_t *channels, int8_t *y0, int8_t *y1, int depth, int out_depth,
                                        int doubled, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int words = depth / 4, rest = depth - 4 * words;
    int o = 0;
    for (; o + 4 <= out_depth; o += 4) {
        const int8_t *group = filter + o * depth;
        for (int half = 0; half < 4; half += 2) {
            const int32_t *entry = channels + 4 * (o + half);
            int32_t acc[4] = { 0, 0, 0, 0 };
            tr_dot_int8_2x2_words(x0, x1, group + 4 * half, words, acc);
            const int8_t *tail = group + 16 * words + half * rest;
            for (int k = 0; k < rest; ++k) {
                int32_t p = x0[4 * words + k], q = x1[4 * words + k];
                acc[0] += p * tail[k];
                acc[1] += p * tail[rest + k];
                acc[2] += q * tail[k];
                acc[3] += q * tail[rest + k];
            }
            for (int k = 0; k < 4; ++k) {
                acc[k] = entry[4 * (k & 1)] + (int32_t)((uint32_t)acc[k] << doubled);
            }
            y0[o + half] = tr_requantize_entry(acc[0], entry, doubled, 0, output_offset, act_min, act_max);
            y0[o + half + 1] = tr_requantize_entry(acc[1], entry + 4, doubled, 0, output_offset, act_min, act_max);
            y1[o + half] = tr_requantize_entry(acc[2], entry, doubled, 0, output_offset, act_min, act_max);
            y1[o + half + 1] = tr_requantize_entry(acc[3], entry + 4, doubled, 0, output_offset, act_min, act_max);
        }
    }
    tr_matmul_leftover_rows(x0, filter, channels, y0, o, depth, out_depth, doubled, output_offset, act_min,
                            act_max);
    tr_matmul_leftover_rows(x1, filter, channels, y1, o, depth, out_depth, doubled, output_offset, act_min,
                            act_max);
}
#endif /* TR_USE_DSP */

/* `batches` input rows -> output rows, two at a time where there are two. */
TR_HELPER void tr_matmul_rows(const int8_t *input, int8_t *output, int batches, int depth, int out_depth,
                              const int8_t *filter, const int32_t *channels, int doubled, int32_t output_offset,
                              int32_t act_min, int32_t act_max, uint32_t *wide)
{
    int b = 0;
    for (; b + 2 <= batches; b += 2) {
        const int8_t *x0 = input + b * depth;
        int8_t *y0 = output + b * out_depth;
#if TR_USE_DSP
        tr_matmul_row_pair(x0, x0 + depth, wide, filter, channels, y0, y0 + out_depth, depth, out_depth, doubled,
                           output_offset, act_min, act_max);
#else
        tr_matmul_pair_plain(x0, x0 + depth, filter, channels, y0, y0 + out_depth, depth, out_depth, doubled,
                             output_offset, act_min, act_max);
#endif
    }
    if (b < batches) {
#if TR_USE_DSP
        tr_matmul_row(input + b * depth, wide, filter, channels, output + b * out_depth, depth, out_depth, doubled,
                      output_offset, act_min, act_max);
#else
        (void)wide;
        tr_matmul_row_plain(input + b * depth, filter, channels, output + b * out_depth, depth, out_depth, doubled,
                            output_offset, act_min, act_max);
#endif
    }
}

#endif /* TR_MATMUL_H */
