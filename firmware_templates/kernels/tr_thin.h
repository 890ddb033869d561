/*
 * tr_thin.h - a matmul layer of at most 64 inputs from its thin int16 stream (packing.pack_thin):
 * the layers of factored pairs (tr_fully_connected.c) and the steps of the spatially factored
 * convolution (tr_conv_core.h), whose rows are short, so that int8 weights pay most (two SXTB16
 * per weight word, a group setup spread over few MACs). The stream holds, per group of four
 * outputs, the four doubled biases, per input word eight words of doubled int16 weight pairs
 * (rows 0-3 against the (x0, x2) pair, then against (x1, x3): the accumulators come out doubled
 * without doubling the input), then (multiplier, right shift, rounding) of
 * each output: the generator uses it only with the doubled, full-range requantization.
 */
#ifndef TR_THIN_H
#define TR_THIN_H

#include <string.h>

#include "tr_matmul.h"
#include "tr_requantize.h"

/* The loop nests (defined below; weak: one copy for every kernel file that includes this). */
#if TR_USE_DSP
__attribute__((naked, noinline, weak)) void tr_thin_groups(const uint32_t *x_end, const int32_t *stream, int8_t *y,
                                                           int8_t *y_end, int words);
__attribute__((naked, noinline, weak)) void tr_thin_groups_floor(const uint32_t *x_end, const int32_t *stream,
                                                                 int8_t *y, int8_t *y_end, int words);
#endif
TR_MATMUL_LOOP void tr_thin_row(const int8_t *x, int depth, const int32_t *stream, int8_t *y, int out_depth,
                                uint32_t *wide, int32_t output_offset, int32_t act_min, int32_t act_max);

/*
 * On the DSP path the row is widened once into int16 pairs (tr_widen_row), then each
 * group of four outputs costs per input word one LDRD of the row's two pairs, two LDM of four
 * weight pairs and eight SMLAD (0.69 instructions per MAC instead of 1.13 with int8 weights,
 * which need SXTB16 and a second pass), plus per output one LDM of its constants, the doubled
 * requantization (SMMLAR, SUB, ASR, SSAT) and a byte store.
 */

/* Four MACs of one output: values x0..x3 of an input word against its two weight pair words. */
TR_INLINE int32_t tr_thin_word(int32_t x0, int32_t x1, int32_t x2, int32_t x3, int32_t even, int32_t odd)
{
    return x0 * (int32_t)(int16_t)(even & 0xffff) + x2 * (even >> 16) + x1 * (int32_t)(int16_t)(odd & 0xffff) +
           x3 * (odd >> 16);
}

/* One group of four outputs in plain C, the first `count` stored: the generic path, and on the
 * DSP path the last group when the outputs are not a multiple of four. Each input word is read
 * once for the four outputs (values past `depth` read as zero); each weight pair word serves two
 * MACs (its low half against value 4q or 4q + 1, its high half against 4q + 2 or 4q + 3). */
TR_MATMUL_HELPER void tr_thin_group_plain(const int8_t *x, int depth, const int32_t *group, int8_t *y, int count,
                                          int32_t act_min, int32_t act_max)
{
    const int words = (depth + 3) / 4;
    const int32_t *w = group + 4, *constants = group + 4 + 8 * words;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int i = 0; i < depth; i += 4, w += 8) {
        const int left = depth - i;
        const int32_t x0 = x[i], x1 = left > 1 ? x[i + 1] : 0, x2 = left > 2 ? x[i + 2] : 0;
        const int32_t x3 = left > 3 ? x[i + 3] : 0;
        s0 += tr_thin_word(x0, x1, x2, x3, w[0], w[4]);
        s1 += tr_thin_word(x0, x1, x2, x3, w[1], w[5]);
        s2 += tr_thin_word(x0, x1, x2, x3, w[2], w[6]);
        s3 += tr_thin_word(x0, x1, x2, x3, w[3], w[7]);
    }
    const int32_t sums[4] = { s0, s1, s2, s3 };
    for (int k = 0; k < count; ++k) {
        const int32_t *c = constants + 3 * k;
        y[k] = tr_requantize_doubled(group[k] + sums[k], c[0], c[1], c[2], act_min, act_max);
    }
}

#if TR_USE_DSP
/* One input word of every group: the row's two pairs (LDRD, from the end of the widened row),
 * then the four outputs' weight pairs against each. Exactly 44 bytes (eleven 32-bit
 * instructions), so the entry point for `words` input words is 44 x words before the end. */
#define TR_THIN_STEP(OFFSET) \
    "ldrd r12, lr, [r0, #-" #OFFSET "]\n\t" \
    "ldm r1!, {r8, r9, r10, r11}\n\t" \
    "smlad r4, r12, r8, r4\n\t" \
    "smlad r5, r12, r9, r5\n\t" \
    "smlad r6, r12, r10, r6\n\t" \
    "smlad r7, r12, r11, r7\n\t" \
    "ldm r1!, {r8, r9, r10, r11}\n\t" \
    "smlad r4, lr, r8, r4\n\t" \
    "smlad r5, lr, r9, r5\n\t" \
    "smlad r6, lr, r10, r6\n\t" \
    "smlad r7, lr, r11, r7\n\t"
/* Accumulator A requantized (multiplier, right shift, rounding from the stream) and stored;
 * CORRECT is TFLM's sign correction of the rounding (SUB of A's sign bit) or nothing. */
#define TR_THIN_STORE(A, CORRECT) \
    "ldm r1!, {r8, r9, r10}\n\t" \
    "smmlar r10, " A ", r8, r10\n\t" \
    CORRECT \
    "asr r10, r10, r9\n\t" \
    "ssat r10, #8, r10\n\t" \
    "strb r10, [r2], #1\n\t"
#define TR_THIN_SIGN(A) "sub r10, r10, " A ", lsr #31\n\t"
#define TR_THIN_STEPS \
    TR_THIN_STEP(128) TR_THIN_STEP(120) TR_THIN_STEP(112) TR_THIN_STEP(104) TR_THIN_STEP(96) TR_THIN_STEP(88) \
    TR_THIN_STEP(80) TR_THIN_STEP(72) TR_THIN_STEP(64) TR_THIN_STEP(56) TR_THIN_STEP(48) TR_THIN_STEP(40) \
    TR_THIN_STEP(32) TR_THIN_STEP(24) TR_THIN_STEP(16) TR_THIN_STEP(8)
/* The whole function, C0..C3 the sign corrections of the four outputs (or nothing). */
#define TR_THIN_GROUPS_ASM(C0, C1, C2, C3) \
    __asm__("push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t" \
            "ldr r12, [sp, #36]\n\t" \
            "mov r8, #44\n\t" \
            "adr r9, 2f\n\t" \
            "mls r12, r12, r8, r9\n\t" \
            "orr r12, r12, #1\n\t" /* a Thumb address for LDR PC */ \
            "sub sp, sp, #4\n\t" \
            "str r12, [sp]\n\t" \
            "3:\n\t" \
            "ldm r1!, {r4, r5, r6, r7}\n\t" /* the four doubled biases */ \
            "ldr pc, [sp]\n\t" \
            ".p2align 2\n\t" \
            "1:\n\t" TR_THIN_STEPS "2:\n\t" TR_THIN_STORE("r4", C0) TR_THIN_STORE("r5", C1) \
                TR_THIN_STORE("r6", C2) TR_THIN_STORE("r7", C3) "cmp r2, r3\n\t" \
            "bne 3b\n\t" \
            "add sp, sp, #4\n\t" \
            "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t")

/* Whole groups of four outputs, y .. y_end, against the widened row that ends at x_end
 * (`words` input words, 1..16): all fourteen registers hold the loop (r0 the row's end, r1 the
 * stream, r2 and r3 the outputs, r4-r7 the accumulators, r8-r11 weights or constants, r12 and
 * lr the row's pairs), so the function is written whole in assembly; the entry point of the
 * steps waits on the stack and each group jumps to it with one LDR PC. */
__attribute__((naked, noinline, weak)) void tr_thin_groups(const uint32_t *x_end __attribute__((unused)),
                                                            const int32_t *stream __attribute__((unused)),
                                                            int8_t *y __attribute__((unused)),
                                                            int8_t *y_end __attribute__((unused)),
                                                            int words __attribute__((unused)))
{
    TR_THIN_GROUPS_ASM(TR_THIN_SIGN("r4"), TR_THIN_SIGN("r5"), TR_THIN_SIGN("r6"), TR_THIN_SIGN("r7"));
}

/* tr_thin_groups for an output zero point of -128 (ReLU layers): there a negative high product
 * gives -128 or less with or without the sign correction, which SSAT clamps to -128 either way,
 * and a non-negative one has no correction, so the SUB is dropped (one instruction per output). */
__attribute__((naked, noinline, weak)) void tr_thin_groups_floor(const uint32_t *x_end __attribute__((unused)),
                                                                  const int32_t *stream __attribute__((unused)),
                                                                  int8_t *y __attribute__((unused)),
                                                                  int8_t *y_end __attribute__((unused)),
                                                                  int words __attribute__((unused)))
{
    TR_THIN_GROUPS_ASM("", "", "", "");
}
#undef TR_THIN_GROUPS_ASM
#undef TR_THIN_STEPS
#undef TR_THIN_SIGN
#undef TR_THIN_STEP
#undef TR_THIN_STORE
#endif

/* One row x of `depth` values -> y through the thin stream (`wide`: scratch for the widened row). */
TR_MATMUL_LOOP void tr_thin_row(const int8_t *x, int depth, const int32_t *stream, int8_t *y, int out_depth,
                                uint32_t *wide, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int words = (depth + 3) / 4, whole = out_depth / 4, group = 16 + 8 * words;
#if TR_USE_DSP
    if (whole > 0) {
        tr_widen_row(x, depth, wide, 2, 0);
        if (output_offset == -128) {
            tr_thin_groups_floor(wide + 2 * words, stream, y, y + 4 * whole, words);
        } else {
            tr_thin_groups(wide + 2 * words, stream, y, y + 4 * whole, words);
        }
    }
#else
    (void)wide;
    (void)output_offset;
    for (int g = 0; g < whole; ++g) {
        tr_thin_group_plain(x, depth, stream + g * group, y + 4 * g, 4, act_min, act_max);
    }
#endif
    if (out_depth & 3) {
        tr_thin_group_plain(x, depth, stream + whole * group, y + 4 * whole, out_depth & 3, act_min, act_max);
    }
}

#endif /* TR_THIN_H */
