/*
 * tr_matmul.h - the int8 matrix loops of FULLY_CONNECTED, pointwise CONV_2D and their factored
 * (low-rank) pairs, one or two input rows at a time.
 *
 * A layer is its weights in the matmul layout (packing.pack_matmul) and one table of four int32
 * per output channel (TR_CHANNEL_*: folded bias, multiplier, shift, rounding), so that a group
 * of outputs walks one pointer instead of four arrays. The layout pads the depth to whole words
 * and the rows to whole groups of four with zeros, then stores each group word by word (row 0's
 * word j, rows 1, 2, 3, then word j + 1): every group is the same straight loop, with no ragged
 * tail and no leftover rows; a last partial group is computed whole and stored in part.
 * `doubled` says which requantization the table holds: 1, tr_requantize_doubled (shift is the
 * right shift, rounding includes the output offset, and the table's bias is doubled: the
 * accumulators are kept doubled, which on the DSP path costs nothing since the widened input
 * is doubled once per row); 0, TFLite Micro's general form (tr_requantize; rounding unused).
 *
 * On the DSP path (Cortex-M4/M7/M33) an input row is first widened into scratch (`wide`,
 * TR_MATMUL_WIDE_WORDS(depth, rows) words) as int16 pairs in the order SMLAD wants against a
 * sign-extended weight word: for each input word (x0 x1 x2 x3) the words (x0 x2) and (x1 x3).
 * Every output then costs per four inputs one weight word, two SXTB16 and two SMLAD, and the
 * input loads are shared by a tile of outputs:
 *   - one row:  4 outputs, the four weight words of a group loaded by one LDM
 *               (8 SXTB16 + 8 SMLAD per 16 MACs);
 *   - two rows: 2 outputs x 2 rows, both rows' pairs loaded by one LDM, each sign-extended
 *               weight word serving both rows (4 SXTB16 + 8 SMLAD per 16 MACs).
 * Up to 16 input words (64 values: the narrow side of a factored layer, small layers) with a
 * full-range doubled table, a whole group of four outputs (biases, straight steps entered by one
 * jump, requantization) is one assembly block, with no spills and no loop control, for one row
 * (tr_group_1x4_full) or two (tr_group_2x4_full, two 2x2 halves). The cost per group that is not
 * MACs (about 60 instructions before) is what a rank-r layer pays on only 4r MACs.
 * The tile is chosen from the row count alone. (A one-row FULLY_CONNECTED generated for a DSP
 * target runs tr_fully_connected_row_int8 in tr_fully_connected.c instead: the same weight bytes
 * permuted, one SXTB16 per weight word.) The loops are inline assembly because gcc 12
 * neither uses LDM nor post-increments here. A Cortex-M4 charges 1+N cycles for LDM and 3 for
 * LDRD, as much as the single loads they replace, so fewer instructions are also fewer cycles.
 *
 * The plain C path (Cortex-M0/M3) runs the packed-by-four loops of tr_dot.h on the same
 * layout. Both give the bytes of TFLite Micro's reference kernel: the sums are exact int32 sums.
 */
#ifndef TR_MATMUL_H
#define TR_MATMUL_H

#include <string.h>

#include "tr_dot.h"
#include "tr_fully_connected.h"
#include "tr_requantize.h"

#define TR_CHANNEL_BIAS 0
#define TR_CHANNEL_MULTIPLIER 1
#define TR_CHANNEL_SHIFT 2
#define TR_CHANNEL_ROUND 3

/* Words of widened scratch for `rows` (1 or 2) input rows of `depth` int8 values. */
#define TR_MATMUL_WIDE_WORDS(depth, rows) (2 * (rows) * (((depth) + 3) / 4))

#if defined(__GNUC__) || defined(__clang__)
/* A layer's loop nest: out of line (inlined into a wrapper, gcc 12 spills the loop variables:
 * ResNet-8 ran 24% slower) and weak, so the kernel files that include this header (FULLY_CONNECTED,
 * CONV_2D, the fused kernels) share one copy in the firmware instead of compiling one each. */
#define TR_MATMUL_LOOP __attribute__((weak, noinline))
#define TR_MATMUL_HELPER static __attribute__((unused))
#else
#define TR_MATMUL_LOOP static
#define TR_MATMUL_HELPER static
#endif

/* The loop nests (defined below, one per path). */
TR_MATMUL_LOOP void tr_matmul_row(const int8_t *x, uint32_t *wide, const int8_t *filter, const int32_t *channels,
                                  int8_t *y, int depth, int out_depth, int doubled, int32_t output_offset,
                                  int32_t act_min, int32_t act_max);
TR_MATMUL_LOOP void tr_matmul_row_pair(const int8_t *x0, const int8_t *x1, uint32_t *wide, const int8_t *filter,
                                       const int32_t *channels, int8_t *y0, int8_t *y1, int depth, int out_depth,
                                       int doubled, int32_t output_offset, int32_t act_min, int32_t act_max);
TR_MATMUL_LOOP void tr_matmul_pair_plain(const int8_t *x0, const int8_t *x1, const int8_t *filter,
                                         const int32_t *channels, int8_t *y0, int8_t *y1, int depth, int out_depth,
                                         int doubled, int32_t output_offset, int32_t act_min, int32_t act_max);
TR_MATMUL_LOOP void tr_matmul_row_plain(const int8_t *x, const int8_t *filter, const int32_t *channels, int8_t *y,
                                        int depth, int out_depth, int doubled, int32_t output_offset,
                                        int32_t act_min, int32_t act_max);

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
        value = (value - (int32_t)((uint32_t)acc >> 31)) >> entry[TR_CHANNEL_SHIFT];
        __asm__("ssat %0, #8, %1" : "=r"(value) : "r"(value));
        return (int8_t)value;
    }
#else
    (void)full;
#endif
    return tr_requantize_doubled(acc, entry[TR_CHANNEL_MULTIPLIER], entry[TR_CHANNEL_SHIFT],
                                 entry[TR_CHANNEL_ROUND], act_min, act_max);
}

/* The first `count` (1..3) outputs of a partial group of four, requantized into y. */
TR_INLINE void tr_store_partial_group(const int32_t acc[4], const int32_t *entries, int8_t *y, int count,
                                      int doubled, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    for (int k = 0; k < count; ++k) {
        y[k] = tr_requantize_entry(acc[k], entries + 4 * k, doubled, 0, output_offset, act_min, act_max);
    }
}

/* The three requantizations a layer can have, each with its own compiled loop. */
#define TR_MATMUL_BY_REQUANT(CALL)                       \
    do {                                                 \
        if (!doubled) {                                  \
            CALL(0, 0);                                  \
        } else if (act_min == -128 && act_max == 127) { \
            CALL(1, 1);                                  \
        } else {                                         \
            CALL(1, 0);                                  \
        }                                                \
    } while (0)

#if TR_USE_DSP

/* One input word as its (x0 x2), (x1 x3) int16 pairs at out[0], out[1], doubled (2x fits int16)
 * for a doubled table. */
TR_INLINE void tr_widen_word(uint32_t v, uint32_t *out, int doubled)
{
    int32_t even = __sxtb16((int32_t)v), odd = tr_sxtb16_ror8((int32_t)v);
    if (doubled) {
        even = __sadd16(even, even);
        odd = __sadd16(odd, odd);
    }
    out[0] = (uint32_t)even;
    out[1] = (uint32_t)odd;
}

/* A row's int8 values widened word by word into out[0], out[1], then out[step], ..., the last
 * word zero-filled past `depth`. */
TR_INLINE void tr_widen_row(const int8_t *x, int depth, uint32_t *out, int step, int doubled)
{
    const int8_t *end = x + (depth & ~3);
    for (; x < end; x += 4, out += step) {
        tr_widen_word((uint32_t)tr_read_int8x4(x), out, doubled);
    }
    if (depth & 3) {
        uint8_t bytes[4] = { 0, 0, 0, 0 };
        for (int k = 0; k < (depth & 3); ++k) { /* not memcpy: a call for at most three bytes */
            bytes[k] = (uint8_t)x[k];
        }
        tr_widen_word((uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16, out, doubled);
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

/* acc[0..3] += a group of four rows (`words` 16-byte steps) . widened row `x`; returns the
 * weight pointer past the group. The loop runs eight steps a pass (each exactly 72 bytes of
 * 32-bit instructions), entered by one jump so that the first pass runs words % 8 of them:
 * two instructions of loop control per 128 MACs, and no odd-step test. */
TR_INLINE const int8_t *tr_dot_1x4_wide(const uint32_t *x, const int8_t *w, int words, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    uint32_t xe, xo, t = (uint32_t)(-words & 7); /* steps the first pass skips */
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    const uint32_t *end = x + 2 * words;
    __asm__ volatile("adr %[xe], 1f\n\t"
                     "mov %[xo], #72\n\t"
                     "mla %[t], %[t], %[xo], %[xe]\n\t"
                     "mov pc, %[t]\n\t"
                     ".p2align 2\n\t"
                     "1:\n\t" TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4
                         TR_STEP_1X4 "cmp %[x], %[end]\n\t"
                     "bne 1b\n\t"
                     : [x] "+r"(x), [w] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                       [xe] "=&r"(xe), [xo] "=&r"(xo), [t] "+r"(t), "=&r"(r8), "=&r"(r9), "=&r"(r10), "=&r"(r11)
                     : [end] "r"(end)
                     : "cc", "memory");
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

/* Two rows of a group (`w` points at the first one's first word) against two widened rows
 * interleaved in `x` (per input word: row 0's pairs, then row 1's): acc = {a0, a1, b0, b1}.
 * Eight steps a pass (56 bytes each), entered as in tr_dot_1x4_wide. */
TR_INLINE void tr_dot_2x2_wide(const uint32_t *x, const int8_t *w, int words, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    uint32_t w0, w1, t = (uint32_t)(-words & 7); /* steps the first pass skips */
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    const uint32_t *end = x + 4 * words;
    __asm__ volatile("adr %[w1], 1f\n\t"
                     "mov %[w0], #56\n\t"
                     "mla %[t], %[t], %[w0], %[w1]\n\t"
                     "mov pc, %[t]\n\t"
                     ".p2align 2\n\t"
                     "1:\n\t" TR_STEP_2X2 TR_STEP_2X2 TR_STEP_2X2 TR_STEP_2X2 TR_STEP_2X2 TR_STEP_2X2 TR_STEP_2X2
                         TR_STEP_2X2 "cmp %[x], %[end]\n\t"
                     "bne 1b\n\t"
                     : [x] "+r"(x), [w] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1),
                       [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "+r"(t), "=&r"(r8), "=&r"(r9), "=&r"(r10), "=&r"(r11)
                     : [end] "r"(end)
                     : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* A group of four outputs of one widened row in one piece, for a full-range doubled table and at
 * most TR_MATMUL_SHORT_WORDS input words (the narrow side of a factored layer, small layers):
 * the four biases, a jump into the last `words` of sixteen straight steps (each exactly 72 bytes
 * of 32-bit instructions: no loop control, no odd-word test), then the four requantizations
 * (tr_requantize_entry's DSP form: SMMLAR, SUB, ASR, SSAT), all in registers; out[k] is the
 * int8 result of output k. Returns the weight pointer past the group. */
#define TR_MATMUL_SHORT_WORDS 16
#define TR_GROUP_REQUANT(A, OFFSET) \
    "ldrd %[xe], %[xo], [%[e], #" #OFFSET " + 4]\n\t" \
    "ldr %[t], [%[e], #" #OFFSET " + 12]\n\t" \
    "smmlar %[t], %[" A "], %[xe], %[t]\n\t" \
    "sub %[t], %[t], %[" A "], lsr #31\n\t" \
    "asr %[t], %[t], %[xo]\n\t" \
    "ssat %[" A "], #8, %[t]\n\t"
#define TR_ROW_STEPS8 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4 TR_STEP_1X4
TR_INLINE const int8_t *tr_group_1x4_full(const uint32_t *x, const int8_t *w, const int32_t *entries, int words,
                                          int32_t out[4])
{
    int32_t a0, a1, a2, a3 = words;
    uint32_t xe, xo, t;
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    __asm__ volatile("adr %[t], 2f\n\t"
                     "mov %[xe], #72\n\t"
                     "mls %[t], %[a3], %[xe], %[t]\n\t"
                     "ldr %[a0], [%[e]]\n\t"
                     "ldr %[a1], [%[e], #16]\n\t"
                     "ldr %[a2], [%[e], #32]\n\t"
                     "ldr %[a3], [%[e], #48]\n\t"
                     "mov pc, %[t]\n\t"
                     ".p2align 2\n\t" TR_ROW_STEPS8 TR_ROW_STEPS8 "2:\n\t" TR_GROUP_REQUANT("a0", 0) TR_GROUP_REQUANT("a1", 16)
                             TR_GROUP_REQUANT("a2", 32) TR_GROUP_REQUANT("a3", 48)
                     : [x] "+r"(x), [w] "+r"(w), [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "+r"(a3),
                       [xe] "=&r"(xe), [xo] "=&r"(xo), [t] "=&r"(t), "=&r"(r8), "=&r"(r9), "=&r"(r10), "=&r"(r11)
                     : [e] "r"(entries)
                     : "cc", "memory");
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
    return w;
}
#undef TR_GROUP_REQUANT
#undef TR_ROW_STEPS8

/* All groups of one widened row. */
TR_INLINE void tr_matmul_row_groups(const uint32_t *wide, const int8_t *filter, const int32_t *channels,
                                    int8_t *y, int words, int out_depth, int doubled, int full,
                                    int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int8_t *w = filter;
    int8_t *end = y + (out_depth & ~3);
    if (doubled && full && words <= TR_MATMUL_SHORT_WORDS) {
        for (; y < end; y += 4, channels += 16) {
            int32_t q[4];
            w = tr_group_1x4_full(wide, w, channels, words, q);
            y[0] = (int8_t)q[0];
            y[1] = (int8_t)q[1];
            y[2] = (int8_t)q[2];
            y[3] = (int8_t)q[3];
        }
    }
    for (; y < end; y += 4, channels += 16) {
        int32_t acc[4] = { channels[0], channels[4], channels[8], channels[12] };
        w = tr_dot_1x4_wide(wide, w, words, acc);
        y[0] = tr_requantize_entry(acc[0], channels, doubled, full, output_offset, act_min, act_max);
        y[1] = tr_requantize_entry(acc[1], channels + 4, doubled, full, output_offset, act_min, act_max);
        y[2] = tr_requantize_entry(acc[2], channels + 8, doubled, full, output_offset, act_min, act_max);
        y[3] = tr_requantize_entry(acc[3], channels + 12, doubled, full, output_offset, act_min, act_max);
    }
    if (out_depth & 3) {
        int32_t acc[4] = { channels[0], channels[4], channels[8], channels[12] };
        tr_dot_1x4_wide(wide, w, words, acc);
        tr_store_partial_group(acc, channels, y, out_depth & 3, doubled, output_offset, act_min, act_max);
    }
}

/* The two-row counterpart of tr_group_1x4_full: a whole group of four outputs for both widened
 * rows in one assembly block, as two halves of two outputs (2x2 tiles, each sign-extended weight
 * word serving both rows, each requantization setup both rows), steps of exactly 56 bytes. The
 * first half's four bytes wait in a stack slot; out[r] is row r's four output bytes. */
#define TR_PAIR_REQUANT(A, B, OFFSET) \
    "ldrd %[w0], %[w1], [%[e], #" #OFFSET " + 4]\n\t" \
    "ldr %[t], [%[e], #" #OFFSET " + 12]\n\t" \
    "smmlar r8, %[" A "], %[w0], %[t]\n\t" \
    "smmlar r9, %[" B "], %[w0], %[t]\n\t" \
    "sub r8, r8, %[" A "], lsr #31\n\t" \
    "sub r9, r9, %[" B "], lsr #31\n\t" \
    "asr r8, r8, %[w1]\n\t" \
    "asr r9, r9, %[w1]\n\t" \
    "ssat %[" A "], #8, r8\n\t" \
    "ssat %[" B "], #8, r9\n\t"
/* Row 0's outputs in the low half of P, row 1's in the high half. */
#define TR_PAIR_PACK(P) \
    "and %[" P "], %[a0], #255\n\t" \
    "bfi %[" P "], %[a1], #8, #8\n\t" \
    "bfi %[" P "], %[b0], #16, #8\n\t" \
    "bfi %[" P "], %[b1], #24, #8\n\t"
#define TR_PAIR_STEPS4 TR_STEP_2X2 TR_STEP_2X2 TR_STEP_2X2 TR_STEP_2X2
#define TR_PAIR_STEPS8 TR_PAIR_STEPS4 TR_PAIR_STEPS4
#define TR_PAIR_STEPS ".p2align 2\n\t" TR_PAIR_STEPS8 TR_PAIR_STEPS8
TR_INLINE void tr_group_2x4_full(const uint32_t *x, const int8_t *w, const int32_t *entries, int words,
                                 uint32_t out[2])
{
    int32_t a0, a1, b0, b1;
    uint32_t w0, w1, t, first;
    const uint32_t *x_start = x;
    const int32_t skip = 56 * words, rewind = 16 * words - 8;
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    __asm__ volatile("ldr %[w0], %[skip]\n\t"
                     "adr %[t], 2f\n\t"
                     "sub %[t], %[t], %[w0]\n\t"
                     "ldr %[a0], [%[e]]\n\t"
                     "ldr %[a1], [%[e], #16]\n\t"
                     "mov %[b0], %[a0]\n\t"
                     "mov %[b1], %[a1]\n\t"
                     "mov pc, %[t]\n\t" TR_PAIR_STEPS "2:\n\t" TR_PAIR_REQUANT("a0", "b0", 0)
                         TR_PAIR_REQUANT("a1", "b1", 16) TR_PAIR_PACK("t") "str %[t], %[first]\n\t"
                     "ldr %[w0], %[skip]\n\t"
                     "adr %[t], 4f\n\t"
                     "sub %[t], %[t], %[w0]\n\t"
                     "ldr %[w1], %[rewind]\n\t"
                     "ldr %[x], %[x_start]\n\t"
                     "sub %[w], %[w], %[w1]\n\t"
                     "ldr %[a0], [%[e], #32]\n\t"
                     "ldr %[a1], [%[e], #48]\n\t"
                     "mov %[b0], %[a0]\n\t"
                     "mov %[b1], %[a1]\n\t"
                     "mov pc, %[t]\n\t" TR_PAIR_STEPS "4:\n\t" TR_PAIR_REQUANT("a0", "b0", 32)
                         TR_PAIR_REQUANT("a1", "b1", 48) TR_PAIR_PACK("w0") "ldr %[t], %[first]\n\t"
                     "pkhbt %[a0], %[t], %[w0], lsl #16\n\t"
                     "pkhtb %[a1], %[w0], %[t], asr #16\n\t"
                     : [x] "+r"(x), [w] "+r"(w), [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1),
                       [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t), "=&r"(r8), "=&r"(r9), "=&r"(r10), "=&r"(r11),
                       [first] "=m"(first)
                     : [e] "r"(entries), [skip] "m"(skip), [rewind] "m"(rewind), [x_start] "m"(x_start)
                     : "cc", "memory");
    out[0] = (uint32_t)a0;
    out[1] = (uint32_t)a1;
}
#undef TR_PAIR_REQUANT
#undef TR_PAIR_PACK
#undef TR_PAIR_STEPS
#undef TR_PAIR_STEPS8
#undef TR_PAIR_STEPS4

/* Two rows of a group (`w`, channels `entries`) for both widened rows, stored at y0, y1. */
TR_INLINE void tr_matmul_pair_half(const uint32_t *wide, const int8_t *w, const int32_t *entries, int8_t *y0,
                                   int8_t *y1, int count, int words, int doubled, int full, int32_t output_offset,
                                   int32_t act_min, int32_t act_max)
{
    int32_t acc[4] = { entries[0], entries[4], entries[0], entries[4] };
    tr_dot_2x2_wide(wide, w, words, acc);
    if (count >= 2) {
        y0[0] = tr_requantize_entry(acc[0], entries, doubled, full, output_offset, act_min, act_max);
        y0[1] = tr_requantize_entry(acc[1], entries + 4, doubled, full, output_offset, act_min, act_max);
        y1[0] = tr_requantize_entry(acc[2], entries, doubled, full, output_offset, act_min, act_max);
        y1[1] = tr_requantize_entry(acc[3], entries + 4, doubled, full, output_offset, act_min, act_max);
    } else if (count == 1) {
        y0[0] = tr_requantize_entry(acc[0], entries, doubled, 0, output_offset, act_min, act_max);
        y1[0] = tr_requantize_entry(acc[2], entries, doubled, 0, output_offset, act_min, act_max);
    }
}

/* All groups of two widened rows (interleaved in `wide`), two rows of a group at a time. */
TR_INLINE void tr_matmul_pair_groups(const uint32_t *wide, const int8_t *filter, const int32_t *channels,
                                     int8_t *y0, int8_t *y1, int words, int out_depth, int doubled, int full,
                                     int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int step = 16 * words; /* bytes of one group */
    int o = 0;
    if (doubled && full && words <= TR_MATMUL_SHORT_WORDS) {
        for (; o + 4 <= out_depth; o += 4, filter += step, channels += 16) {
            uint32_t rows[2];
            tr_group_2x4_full(wide, filter, channels, words, rows);
            memcpy(y0 + o, &rows[0], 4);
            memcpy(y1 + o, &rows[1], 4);
        }
    }
    for (; o < out_depth; o += 4, filter += step, channels += 16) {
        const int left = out_depth - o;
        tr_matmul_pair_half(wide, filter, channels, y0 + o, y1 + o, left, words, doubled, full, output_offset,
                            act_min, act_max);
        tr_matmul_pair_half(wide, filter + 8, channels + 8, y0 + o + 2, y1 + o + 2, left - 2, words, doubled, full,
                            output_offset, act_min, act_max);
    }
}

/* One input row x -> y. x == NULL: `wide` holds the row widened already (tr_conv_first_int8
 * widens its im2col columns itself). */
TR_MATMUL_LOOP void tr_matmul_row(const int8_t *x, uint32_t *wide, const int8_t *filter, const int32_t *channels,
                                  int8_t *y, int depth, int out_depth, int doubled, int32_t output_offset,
                                  int32_t act_min, int32_t act_max)
{
    const int words = (depth + 3) / 4;
    if (x != NULL) {
        tr_widen_row(x, depth, wide, 2, doubled);
    }
#define TR_ROW_CALL(DOUBLED, FULL)                                                                         \
    tr_matmul_row_groups(wide, filter, channels, y, words, out_depth, DOUBLED, FULL, output_offset, act_min, \
                         act_max)
    TR_MATMUL_BY_REQUANT(TR_ROW_CALL);
#undef TR_ROW_CALL
}

/* Two input rows x0, x1 -> y0, y1: every weight word is loaded and sign-extended once for both.
 * x0 == NULL: `wide` holds both rows widened and interleaved already (tr_conv_first_int8). */
TR_MATMUL_LOOP void tr_matmul_row_pair(const int8_t *x0, const int8_t *x1, uint32_t *wide, const int8_t *filter,
                                       const int32_t *channels, int8_t *y0, int8_t *y1, int depth, int out_depth,
                                       int doubled, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int words = (depth + 3) / 4;
    if (x0 != NULL) {
        tr_widen_row(x0, depth, wide, 4, doubled);
        tr_widen_row(x1, depth, wide + 2, 4, doubled);
    }
#define TR_PAIR_CALL(DOUBLED, FULL)                                                                             \
    tr_matmul_pair_groups(wide, filter, channels, y0, y1, words, out_depth, DOUBLED, FULL, output_offset, act_min, \
                          act_max)
    TR_MATMUL_BY_REQUANT(TR_PAIR_CALL);
#undef TR_PAIR_CALL
}

#else /* plain C */

/* Two input rows -> y0, y1: each weight word serves both rows. */
TR_MATMUL_LOOP void tr_matmul_pair_plain(const int8_t *x0, const int8_t *x1, const int8_t *filter,
                                         const int32_t *channels, int8_t *y0, int8_t *y1, int depth, int out_depth,
                                         int doubled, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int whole = depth / 4, rest = depth - 4 * whole, step = 16 * ((depth + 3) / 4);
    for (int o = 0; o < out_depth; o += 4, filter += step, channels += 16) {
        const int count = out_depth - o < 4 ? out_depth - o : 4;
        int32_t p[4], q[4];
        for (int half = 0; half < 4; half += 2) {
            int32_t sum[4] = { 0, 0, 0, 0 }; /* x0 . rows half, half + 1; then x1 . the same rows */
            tr_dot_int8_2x2_words(x0, x1, filter + 4 * half, whole, sum);
            const int8_t *last = filter + 16 * whole + 4 * half;
            for (int k = 0; k < rest; ++k) {
                int32_t a = x0[4 * whole + k], b = x1[4 * whole + k];
                sum[0] += a * last[k];
                sum[1] += a * last[4 + k];
                sum[2] += b * last[k];
                sum[3] += b * last[4 + k];
            }
            p[half] = channels[4 * half] + (int32_t)((uint32_t)sum[0] << doubled);
            p[half + 1] = channels[4 * half + 4] + (int32_t)((uint32_t)sum[1] << doubled);
            q[half] = channels[4 * half] + (int32_t)((uint32_t)sum[2] << doubled);
            q[half + 1] = channels[4 * half + 4] + (int32_t)((uint32_t)sum[3] << doubled);
        }
        tr_store_partial_group(p, channels, y0 + o, count, doubled, output_offset, act_min, act_max);
        tr_store_partial_group(q, channels, y1 + o, count, doubled, output_offset, act_min, act_max);
    }
}
#endif /* TR_USE_DSP */

/* The loops that read the input row in place (plain C path; one group of outputs on both). */
/* acc[0..3] = bias + (dot << doubled) for the four rows of a group against one row x. */
TR_INLINE void tr_matmul_group_plain(const int8_t *x, const int8_t *group, const int32_t *entries, int depth,
                                     int doubled, int32_t acc[4])
{
    const int whole = depth / 4, rest = depth - 4 * whole;
    int32_t sum[4] = { 0, 0, 0, 0 };
    tr_dot_int8_x4(x, group, 4 * whole, sum);
    const int8_t *last = group + 16 * whole;
    for (int r = 0; r < 4; ++r) {
        for (int k = 0; k < rest; ++k) {
            sum[r] += (int32_t)x[4 * whole + k] * last[4 * r + k];
        }
        acc[r] = entries[4 * r] + (int32_t)((uint32_t)sum[r] << doubled);
    }
}

/* One input row x -> y: the four rows of a group share every input load. On the DSP path too
 * (tr_dot_int8_x4 sign-extends each input word in registers), for a row whose widened copy would
 * be read by one group only (tr_fully_connected_int8). */
TR_MATMUL_LOOP void tr_matmul_row_plain(const int8_t *x, const int8_t *filter, const int32_t *channels, int8_t *y,
                                        int depth, int out_depth, int doubled, int32_t output_offset,
                                        int32_t act_min, int32_t act_max)
{
    const int step = 16 * ((depth + 3) / 4);
    for (int o = 0; o < out_depth; o += 4, filter += step, channels += 16) {
        int32_t acc[4];
        tr_matmul_group_plain(x, filter, channels, depth, doubled, acc);
        const int count = out_depth - o < 4 ? out_depth - o : 4;
        tr_store_partial_group(acc, channels, y + o, count, doubled, output_offset, act_min, act_max);
    }
}

/* `batches` input rows -> output rows of `layer`, two at a time where there are two. */
TR_MATMUL_HELPER void tr_matmul_rows(const int8_t *input, int8_t *output, int batches, int depth, int out_depth,
                                     const tr_matmul_layer *layer, uint32_t *wide)
{
    const int8_t *filter = layer->filter;
    const int32_t *channels = layer->channels;
    const int doubled = (int)layer->doubled;
    const int32_t output_offset = layer->output_offset, act_min = layer->act_min, act_max = layer->act_max;
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
