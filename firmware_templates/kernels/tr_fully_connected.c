/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED (and pointwise CONV_2D, a FULLY_CONNECTED over
 * pixels), int8, and the fused pair of a low-rank factored layer. The loops are tr_matmul_rows
 * in tr_matmul.h.
 */
#include "tr_fully_connected.h"

#include <stdint.h>
#include <string.h>

#include "tr_matmul.h"

/*
 * The generator may let the output overwrite the input (inplace.py): the input starts at or
 * after the output (further in for a wider output) so that every output row ends before the first
 * input row after it. The DSP path widens each input row (pair) into `wide` before storing its
 * outputs, so it runs as is; the plain C path reads the input rows while it stores, so when the
 * buffers overlap it first copies four rows at a time into `wide` (sized for two widened rows:
 * 16 x ceil(depth / 4) bytes) and reads them there.
 */
TR_KERNEL void tr_fully_connected_int8(const tr_fc_params *params, const int8_t *input, int8_t *output, int8_t *wide)
{
    const tr_matmul_layer layer = params->layer; /* locals: not reloaded after stores */
    const int batches = params->batches, depth = params->input_depth, out_depth = params->output_depth;
    uint32_t *scratch = (uint32_t *)(void *)wide;
    if (batches == 1 && out_depth <= 4) {
        /* One row into one group of four outputs: a widened copy of the row would be read once, so
         * the row is read in place (no scratch; `wide` is NULL). The group stores its outputs only
         * after reading the whole row, so output may also overlap input. */
        tr_matmul_row_plain(input, layer.filter, layer.channels, output, depth, out_depth, (int)layer.doubled,
                            layer.output_offset, layer.act_min, layer.act_max);
        return;
    }
#if !TR_USE_DSP
    const uintptr_t in = (uintptr_t)input, out = (uintptr_t)output;
    if (out < in + (uintptr_t)(batches * depth) && in < out + (uintptr_t)(batches * out_depth)) {
        const int chunk = batches < 2 ? 1 : 4; /* 4 x depth bytes fit in 2 x 8 x ceil(depth / 4) */
        for (int b = 0; b < batches; b += chunk) {
            const int rows = batches - b < chunk ? batches - b : chunk;
            memcpy(wide, input + b * depth, (size_t)(rows * depth));
            tr_matmul_rows(wide, output + b * out_depth, rows, depth, out_depth, &layer, scratch);
        }
        return;
    }
#endif
    tr_matmul_rows(input, output, batches, depth, out_depth, &layer, scratch);
}

/*
 * A layer of a factored pair with at most 64 inputs (the thin second layer, and a first layer
 * of at most 64 inputs) from its int16 stream (tr_fully_connected.h): the row is widened once
 * into int16 pairs, then each group of
 * four outputs costs per input word one LDRD of the row's two pairs, two LDM of four weight
 * pairs and eight SMLAD (0.69 instructions per MAC instead of 1.13 with int8 weights, which need
 * SXTB16 and a second pass), plus per output one LDM of its constants and the doubled
 * requantization (SMMLAR, SUB, ASR, SSAT) and a byte store.
 */

/* A thin layer's row zero-padded to whole words (at most 64 values: THIN_MAX_DEPTH). */
#define TR_THIN_MAX_DEPTH 64

/* One group of four outputs in plain C, the first `count` stored: the generic path, and on the
 * DSP path the last group when the outputs are not a multiple of four. `v` is the narrow row
 * zero-padded to `words` words; each weight pair word serves two MACs (its low half against
 * value 4q or 4q + 1, its high half against 4q + 2 or 4q + 3). */
static void tr_thin_group_plain(const int8_t *v, int words, const int32_t *group, int8_t *y, int count,
                                int32_t act_min, int32_t act_max)
{
    const int32_t *w = group + 4, *constants = group + 4 + 8 * words;
    int32_t sum[4] = { 0, 0, 0, 0 };
    for (int q = 0; q < words; ++q, v += 4, w += 8) {
        const int32_t x0 = v[0], x1 = v[1], x2 = v[2], x3 = v[3];
        for (int k = 0; k < 4; ++k) {
            const int32_t even = w[k], odd = w[4 + k];
            sum[k] += x0 * (int32_t)(int16_t)(even & 0xffff) + x2 * (even >> 16) +
                      x1 * (int32_t)(int16_t)(odd & 0xffff) + x3 * (odd >> 16);
        }
    }
    for (int k = 0; k < count; ++k) {
        const int32_t *c = constants + 3 * k;
        y[k] = tr_requantize_doubled(group[k] + 2 * sum[k], c[0], c[1], c[2], act_min, act_max);
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
/* Accumulator A requantized (multiplier, right shift, rounding from the stream) and stored. */
#define TR_THIN_STORE(A) \
    "ldm r1!, {r8, r9, r10}\n\t" \
    "smmlar r10, " A ", r8, r10\n\t" \
    "sub r10, r10, " A ", lsr #31\n\t" \
    "asr r10, r10, r9\n\t" \
    "ssat r10, #8, r10\n\t" \
    "strb r10, [r2], #1\n\t"

/* Whole groups of four outputs, y .. y_end, against the widened row that ends at x_end
 * (`words` input words, 1..16): all fourteen registers hold the loop (r0 the row's end, r1 the
 * stream, r2 and r3 the outputs, r4-r7 the accumulators, r8-r11 weights or constants, r12 and
 * lr the row's pairs), so the function is written whole in assembly; the entry point of the
 * steps waits on the stack and each group jumps to it with one LDR PC. */
__attribute__((naked, noinline)) static void tr_thin_groups(const uint32_t *x_end __attribute__((unused)),
                                                            const int32_t *stream __attribute__((unused)),
                                                            int8_t *y __attribute__((unused)),
                                                            int8_t *y_end __attribute__((unused)),
                                                            int words __attribute__((unused)))
{
    __asm__("push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
            "ldr r12, [sp, #36]\n\t"
            "mov r8, #44\n\t"
            "adr r9, 2f\n\t"
            "mls r12, r12, r8, r9\n\t"
            "orr r12, r12, #1\n\t" /* a Thumb address for LDR PC */
            "sub sp, sp, #4\n\t"
            "str r12, [sp]\n\t"
            "3:\n\t"
            "ldm r1!, {r4, r5, r6, r7}\n\t" /* the four doubled biases */
            "ldr pc, [sp]\n\t"
            ".p2align 2\n\t"
            "1:\n\t" TR_THIN_STEP(128) TR_THIN_STEP(120) TR_THIN_STEP(112) TR_THIN_STEP(104) TR_THIN_STEP(96)
                TR_THIN_STEP(88) TR_THIN_STEP(80) TR_THIN_STEP(72) TR_THIN_STEP(64) TR_THIN_STEP(56) TR_THIN_STEP(48)
                    TR_THIN_STEP(40) TR_THIN_STEP(32) TR_THIN_STEP(24) TR_THIN_STEP(16) TR_THIN_STEP(8) "2:\n\t" TR_THIN_STORE("r4") TR_THIN_STORE("r5")
                    TR_THIN_STORE("r6") TR_THIN_STORE("r7") "cmp r2, r3\n\t"
            "bne 3b\n\t"
            "add sp, sp, #4\n\t"
            "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");
}
#undef TR_THIN_STEP
#undef TR_THIN_STORE
#endif

/* One row x of `depth` values -> y through the thin stream (`wide`: scratch for the widened row). */
static void tr_thin_row(const int8_t *x, int depth, const int32_t *stream, int8_t *y, int out_depth, uint32_t *wide,
                        int32_t act_min, int32_t act_max)
{
    const int words = (depth + 3) / 4, whole = out_depth / 4, group = 16 + 8 * words;
#if TR_USE_DSP
    if (whole > 0) {
        tr_widen_row(x, depth, wide, 2, 1);
        tr_thin_groups(wide + 2 * words, stream, y, y + 4 * whole, words);
    }
    if (!(out_depth & 3)) {
        return;
    }
#else
    (void)wide;
#endif
    int8_t v[TR_THIN_MAX_DEPTH] = { 0 };
    memcpy(v, x, (size_t)depth);
#if !TR_USE_DSP
    for (int g = 0; g < whole; ++g) {
        tr_thin_group_plain(v, words, stream + g * group, y + 4 * g, 4, act_min, act_max);
    }
#endif
    if (out_depth & 3) {
        tr_thin_group_plain(v, words, stream + whole * group, y + 4 * whole, out_depth & 3, act_min, act_max);
    }
}

/*
 * Two matmuls through a narrow rank-r tensor, two input rows (pixels) at a time so that each
 * weight word and each requantization setup serves both: the r-wide intermediate rows live
 * only in `narrow` (2r bytes of scratch), never in the arena. A layer the generator packed as a
 * thin stream runs tr_thin_row row by row instead of the matmul loops.
 */
TR_KERNEL void tr_fully_connected_factored_int8(const tr_fc_factored_params *params, const int8_t *input,
                                                int8_t *output, int8_t *narrow, int8_t *wide)
{
    const int batches = params->batches, input_depth = params->input_depth, rank = params->rank;
    const int output_depth = params->output_depth;
    const tr_matmul_layer first = params->first, second = params->second;
    const int32_t *first_thin = params->first_thin, *second_thin = params->second_thin;
    uint32_t *scratch = (uint32_t *)(void *)wide;
    for (int b = 0; b < batches; b += 2) {
        const int rows = batches - b < 2 ? batches - b : 2;
        const int8_t *x = input + b * input_depth;
        int8_t *y = output + b * output_depth;
        if (first_thin == NULL) {
            tr_matmul_rows(x, narrow, rows, input_depth, rank, &first, scratch);
        } else {
            for (int r = 0; r < rows; ++r) {
                tr_thin_row(x + r * input_depth, input_depth, first_thin, narrow + r * rank, rank, scratch,
                            first.act_min, first.act_max);
            }
        }
        if (second_thin == NULL) {
            tr_matmul_rows(narrow, y, rows, rank, output_depth, &second, scratch);
        } else {
            for (int r = 0; r < rows; ++r) {
                tr_thin_row(narrow + r * rank, rank, second_thin, y + r * output_depth, output_depth, scratch,
                            second.act_min, second.act_max);
            }
        }
    }
}
