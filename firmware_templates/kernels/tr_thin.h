/*
 * tr_thin.h - a matmul layer of at most 128 inputs from its thin int16 stream (packing.pack_thin):
 * the layers of factored pairs (tr_fully_connected.c), the steps of the spatially factored
 * convolution (tr_conv_core.h) and of the Tucker chain (tr_conv_tucker.c), whose rows are short,
 * so that int8 weights pay most (two SXTB16 per weight word, a group setup spread over few MACs).
 * The stream holds, per group of four outputs, the four doubled biases, per input word eight
 * words of doubled int16 weight pairs (rows 0-3 against the (x0, x2) pair, then against (x1, x3):
 * the accumulators come out doubled without doubling the input), then (multiplier, right shift,
 * rounding) of each output: the generator uses it only with the doubled, full-range
 * requantization.
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
                                uint32_t *wide, int32_t output_offset);

/*
 * On the DSP path the row is widened once into int16 pairs (tr_thin_widen), then each
 * group of four outputs costs per input word one LDRD of the row's two pairs, two LDM of four
 * weight pairs and eight SMLAD (0.69 instructions per MAC instead of 1.13 with int8 weights,
 * which need SXTB16 and a second pass), plus per output one LDM of its constants, the doubled
 * requantization (SMMLAR, SUB, ASR, SSAT) and a byte store.
 */

/* The stream's int16 weights read one halfword at a time: on the plain C path each weight is one
 * LDRSH and one MLA, where a word load would add a SXTH or an ASR per half. */
#if defined(__GNUC__) || defined(__clang__)
typedef int16_t tr_thin_half __attribute__((may_alias));
#else
typedef int16_t tr_thin_half;
#endif

/* One accumulator's four MACs of an input word, each its own MLA (one sum of four products
 * would cost a MUL and an ADD more). */
#define TR_THIN_MACS(S, EVEN, ODD) \
    do { \
        S += x0 * h[EVEN]; \
        S += x2 * h[EVEN + 1]; \
        S += x1 * h[ODD]; \
        S += x3 * h[ODD + 1]; \
    } while (0)
/* The four doubled sums (biases included) of one group of four outputs against row x. Each input
 * word is read once for the four outputs; its halfwords per output are (w0, w2) in the first four
 * pair words, (w1, w3) in the next four. Values past `depth` are taken as zero (their weights
 * are zero too): a straight loop over whole words, then at most one short word. */
TR_INLINE void tr_thin_sums_plain(const int8_t *x, int depth, const int32_t *group, int32_t sums[4])
{
    const tr_thin_half *h = (const tr_thin_half *)(const void *)(group + 4);
    int32_t s0 = group[0], s1 = group[1], s2 = group[2], s3 = group[3];
    for (const int8_t *end = x + (depth & ~3); x < end; x += 4, h += 16) {
        const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        TR_THIN_MACS(s0, 0, 8);
        TR_THIN_MACS(s1, 2, 10);
        TR_THIN_MACS(s2, 4, 12);
        TR_THIN_MACS(s3, 6, 14);
    }
    const int left = depth & 3;
    if (left) {
        const int32_t x0 = x[0], x1 = left > 1 ? x[1] : 0, x2 = left > 2 ? x[2] : 0, x3 = 0;
        TR_THIN_MACS(s0, 0, 8);
        TR_THIN_MACS(s1, 2, 10);
        TR_THIN_MACS(s2, 4, 12);
        TR_THIN_MACS(s3, 6, 14);
    }
    sums[0] = s0;
    sums[1] = s1;
    sums[2] = s2;
    sums[3] = s3;
}
#undef TR_THIN_MACS

/* A doubled sum requantized by its stream constants c = (multiplier, right shift, rounding) over
 * the full int8 range, in plain C: tr_requantize_doubled, with the rounding constant added inside
 * the 64-bit product (one SMLAL on the Cortex-M3) and the sign correction taken from the sum,
 * whose sign the high product shares (a doubled sum is even, and the generator checked every
 * multiplier is above 2^30, as the DSP path's SMMLAR form also relies on). */
TR_INLINE int8_t tr_thin_requantize(int32_t acc2, const int32_t *c)
{
    const uint64_t sum = (uint64_t)((int64_t)acc2 * c[0]) + ((uint64_t)(uint32_t)c[2] << 32) + 0x80000000u;
    const int32_t high = (int32_t)(uint32_t)(sum >> 32); /* as SMMLAR: modulo 2^64, no overflow */
    return (int8_t)tr_saturate_int8((high - (int32_t)((uint32_t)acc2 >> 31)) >> c[1]);
}

/* Outputs y[0 .. out_depth) of row x in plain C, group by group from `stream`: the generic path,
 * and on the DSP path the last group when the outputs are not a multiple of four. */
TR_MATMUL_HELPER void tr_thin_groups_plain(const int8_t *x, int depth, const int32_t *stream, int8_t *y,
                                           int out_depth)
{
    const int group = 16 + 8 * ((depth + 3) / 4);
    int8_t *end = y + out_depth;
    for (; y + 4 <= end; y += 4, stream += group) {
        int32_t sums[4];
        tr_thin_sums_plain(x, depth, stream, sums);
        const int32_t *c = stream + group - 12; /* multiplier, right shift, rounding per output */
        y[0] = tr_thin_requantize(sums[0], c);
        y[1] = tr_thin_requantize(sums[1], c + 3);
        y[2] = tr_thin_requantize(sums[2], c + 6);
        y[3] = tr_thin_requantize(sums[3], c + 9);
    }
    if (y < end) {
        int32_t sums[4];
        tr_thin_sums_plain(x, depth, stream, sums);
        const int32_t *c = stream + group - 12;
        for (int k = 0; y + k < end; ++k) {
            y[k] = tr_thin_requantize(sums[k], c + 3 * k);
        }
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
/* Accumulators A and B (two consecutive outputs) requantized (multiplier, right shift, rounding
 * of each from the stream, one LDM of six words: r12 and lr are free once the steps are done) and
 * stored; CA and CB are TFLM's sign correction of the rounding (SUB of the accumulator's sign bit)
 * or nothing. Five instructions an output and a half, against six with an LDM per output. */
#define TR_THIN_STORE_PAIR(A, CA, B, CB) \
    "ldm r1!, {r8, r9, r10, r11, r12, lr}\n\t" \
    "smmlar r10, " A ", r8, r10\n\t" \
    CA \
    "asr r10, r10, r9\n\t" \
    "ssat r10, #8, r10\n\t" \
    "strb r10, [r2], #1\n\t" \
    "smmlar lr, " B ", r11, lr\n\t" \
    CB \
    "asr lr, lr, r12\n\t" \
    "ssat lr, #8, lr\n\t" \
    "strb lr, [r2], #1\n\t"
#define TR_THIN_SIGN(R, A) "sub " R ", " R ", " A ", lsr #31\n\t"
#define TR_THIN_STEPS \
    TR_THIN_STEP(256) TR_THIN_STEP(248) TR_THIN_STEP(240) TR_THIN_STEP(232) \
    TR_THIN_STEP(224) TR_THIN_STEP(216) TR_THIN_STEP(208) TR_THIN_STEP(200) \
    TR_THIN_STEP(192) TR_THIN_STEP(184) TR_THIN_STEP(176) TR_THIN_STEP(168) \
    TR_THIN_STEP(160) TR_THIN_STEP(152) TR_THIN_STEP(144) TR_THIN_STEP(136) \
    TR_THIN_STEP(128) TR_THIN_STEP(120) TR_THIN_STEP(112) TR_THIN_STEP(104) \
    TR_THIN_STEP(96) TR_THIN_STEP(88) TR_THIN_STEP(80) TR_THIN_STEP(72) \
    TR_THIN_STEP(64) TR_THIN_STEP(56) TR_THIN_STEP(48) TR_THIN_STEP(40) \
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
            "1:\n\t" TR_THIN_STEPS "2:\n\t" TR_THIN_STORE_PAIR("r4", C0, "r5", C1) \
                TR_THIN_STORE_PAIR("r6", C2, "r7", C3) "cmp r2, r3\n\t" \
            "bne 3b\n\t" \
            "add sp, sp, #4\n\t" \
            "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t")

/* Whole groups of four outputs, y .. y_end, against the widened row that ends at x_end
 * (`words` input words, 1..32): all fourteen registers hold the loop (r0 the row's end, r1 the
 * stream, r2 and r3 the outputs, r4-r7 the accumulators, r8-r11 weights or constants, r12 and
 * lr the row's pairs), so the function is written whole in assembly; the entry point of the
 * steps waits on the stack and each group jumps to it with one LDR PC. */
__attribute__((naked, noinline, weak)) void tr_thin_groups(const uint32_t *x_end __attribute__((unused)),
                                                            const int32_t *stream __attribute__((unused)),
                                                            int8_t *y __attribute__((unused)),
                                                            int8_t *y_end __attribute__((unused)),
                                                            int words __attribute__((unused)))
{
    TR_THIN_GROUPS_ASM(TR_THIN_SIGN("r10", "r4"), TR_THIN_SIGN("lr", "r5"), TR_THIN_SIGN("r10", "r6"),
                       TR_THIN_SIGN("lr", "r7"));
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
#undef TR_THIN_STORE_PAIR
#endif

#if TR_USE_DSP
/* Row x widened into int16 pairs at out (tr_widen_row's order, not doubled), eight values a pass:
 * two LDR (the row need not be word-aligned), four SXTB16 and one STM, half the instructions of
 * a word at a time (and on a Cortex-M4 about 16 cycles for two words instead of 22). */
TR_INLINE void tr_thin_widen(const int8_t *x, int depth, uint32_t *out)
{
    const int8_t *end = x + (depth & ~7);
    if (x != end) {
        uint32_t low, high;
        register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
        __asm__ volatile("1:\n\t"
                         "ldr %[high], [%[x], #4]\n\t"
                         "ldr %[low], [%[x]], #8\n\t"
                         "sxtb16 r8, %[low]\n\t"
                         "sxtb16 r9, %[low], ror #8\n\t"
                         "sxtb16 r10, %[high]\n\t"
                         "sxtb16 r11, %[high], ror #8\n\t"
                         "stm %[out]!, {r8, r9, r10, r11}\n\t"
                         "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : [x] "+r"(x), [out] "+r"(out), [low] "=&r"(low), [high] "=&r"(high), "=&r"(r8),
                           "=&r"(r9), "=&r"(r10), "=&r"(r11)
                         : [end] "r"(end)
                         : "cc", "memory");
    }
    if (depth & 7) {
        tr_widen_row(x, depth & 7, out, 2, 0);
    }
}
#endif

#if TR_USE_DSP
/* The last, partial group on the DSP path, out of line: inlined, its plain C loop would make every
 * row's call save and restore every register and a stack frame. */
__attribute__((noinline)) static void tr_thin_last_group(const int8_t *x, int depth, const int32_t *stream, int8_t *y,
                                                         int count)
{
    tr_thin_groups_plain(x, depth, stream, y, count);
}
#endif

/* One row x of `depth` values -> y through the thin stream (`wide`: scratch for the widened row;
 * `output_offset` -128 drops the sign correction). A thin layer's clamp is the whole int8 range. */
TR_MATMUL_LOOP void tr_thin_row(const int8_t *x, int depth, const int32_t *stream, int8_t *y, int out_depth,
                                uint32_t *wide, int32_t output_offset)
{
    const int words = (depth + 3) / 4, whole = out_depth / 4, group = 16 + 8 * words;
#if TR_USE_DSP
    if (whole > 0) {
        tr_thin_widen(x, depth, wide);
        if (output_offset == -128) {
            tr_thin_groups_floor(wide + 2 * words, stream, y, y + 4 * whole, words);
        } else {
            tr_thin_groups(wide + 2 * words, stream, y, y + 4 * whole, words);
        }
    }
    if (out_depth & 3) {
        tr_thin_last_group(x, depth, stream + whole * group, y + 4 * whole, out_depth & 3);
    }
#else
    (void)wide;
    (void)output_offset;
    (void)whole;
    (void)group;
    tr_thin_groups_plain(x, depth, stream, y, out_depth);
#endif
}

/* `rows` rows of one layer: from its thin stream row by row where it has one (`thin` not NULL;
 * `layer` then gives only the output zero point), else the int8 matmul loops. */
TR_INLINE void tr_layer_rows(const int8_t *x, int8_t *y, int rows, int depth, int out_depth,
                             const tr_matmul_layer *layer, const int32_t *thin, uint32_t *scratch)
{
    if (thin == NULL) {
        tr_matmul_rows(x, y, rows, depth, out_depth, layer, scratch);
        return;
    }
    for (int r = 0; r < rows; ++r) {
        tr_thin_row(x + r * depth, depth, thin, y + r * out_depth, out_depth, scratch, layer->output_offset);
    }
}

#endif /* TR_THIN_H */
