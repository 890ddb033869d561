/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED (and pointwise CONV_2D, a FULLY_CONNECTED over
 * pixels), int8, and the fused pair of a low-rank factored layer. The loops are tr_matmul_rows
 * in tr_matmul.h.
 */
#include "tr_fully_connected.h"

#include <stdint.h>
#include <string.h>

#include "tr_matmul.h"
#include "tr_thin.h"

/*
 * One input row against a row stream (packing.pack_row_stream): per group of four outputs the
 * four start values of the accumulators, per input word four weight words, then (multiplier,
 * right shift, rounding) per output. A weight word holds (w0 w1 w2 w3) as the bytes
 * (w1 ^ 0x80, w0, w3 ^ 0x80, w2), so that one SMLAD takes it as it is (int16 halves
 * w1 + 128 + 256 w0 and w3 + 128 + 256 w2) against the input pairs (-x1, -x3), and a second one
 * takes its SXTB16 ROR 8 (w0, w2) against the input word XOR 0x007F007F, whose halves are
 * (256 x1 + 127 - x0, 256 x3 + 127 - x2): the 256 x1 w0 terms cancel. Three instructions per
 * four MACs instead of four (two SXTB16 per int8 weight word otherwise), and as many weight
 * bytes. What is left over, -128 (x1 + x3) per word, is the same for every output: the row's
 * `correction` (-256 times the sum of its odd-indexed inputs), summed while the row is widened,
 * turns an accumulator S into the doubled sum 2 (bias + dot) = correction - 2 S in one SUB (the
 * start values hold -bias and cancel the 127 (w0 + w2) terms).
 */

/* Input values 4j .. 4j + 3 of a row of `depth`, zero past its end. */
TR_INLINE void tr_fc_row_word(const int8_t *x, int depth, int j, int32_t v[4])
{
    for (int k = 0; k < 4; ++k) {
        v[k] = 4 * j + k < depth ? x[4 * j + k] : 0;
    }
}

/* Plain C: the four outputs of one group of the stream against row x, with the same sums as the
 * DSP path: an accumulator gains x1 (w1 + 128) + (x0 - 127) w0 + ... per word, i.e.
 * dot + 128 (x1 + x3 + ...) - 127 (w0 + w2 + ...), so the doubled sum is
 * correction + 2 (accumulator - start value). */
TR_INLINE void tr_fc_row_group_plain(const int8_t *x, int depth, const int32_t *group, int32_t correction,
                                     int8_t *y)
{
    const int words = (depth + 3) / 4;
    const uint8_t *u = (const uint8_t *)(const void *)(group + 4); /* bytes 0, 2: w1 + 128, w3 + 128 */
    const int8_t *w = (const int8_t *)(const void *)(group + 4);   /* bytes 1, 3: w0, w2 */
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int j = 0; j < words; ++j, u += 16, w += 16) {
        int32_t v[4];
        if (j < depth / 4) {
            v[0] = x[4 * j], v[1] = x[4 * j + 1], v[2] = x[4 * j + 2], v[3] = x[4 * j + 3];
        } else { /* the last, partial word: not read past the row */
            tr_fc_row_word(x, depth, j, v);
        }
        const int32_t h0 = v[0] - 127, x1 = v[1], h2 = v[2] - 127, x3 = v[3];
        s0 += x1 * u[0] + h0 * w[1] + x3 * u[2] + h2 * w[3];
        s1 += x1 * u[4] + h0 * w[5] + x3 * u[6] + h2 * w[7];
        s2 += x1 * u[8] + h0 * w[9] + x3 * u[10] + h2 * w[11];
        s3 += x1 * u[12] + h0 * w[13] + x3 * u[14] + h2 * w[15];
    }
    const int32_t *c = group + 4 + 4 * words; /* multiplier, right shift, rounding per output */
    /* unsigned: the differences wrap like the DSP path's registers (the results fit int32) */
    y[0] = tr_thin_requantize((int32_t)((uint32_t)correction + 2u * ((uint32_t)s0 - (uint32_t)group[0])), c);
    y[1] = tr_thin_requantize((int32_t)((uint32_t)correction + 2u * ((uint32_t)s1 - (uint32_t)group[1])), c + 3);
    y[2] = tr_thin_requantize((int32_t)((uint32_t)correction + 2u * ((uint32_t)s2 - (uint32_t)group[2])), c + 6);
    y[3] = tr_thin_requantize((int32_t)((uint32_t)correction + 2u * ((uint32_t)s3 - (uint32_t)group[3])), c + 9);
}

#if TR_USE_DSP
/* One input word v widened to the pairs the stream's words want, (-x1, -x3) at out[0] and v XOR
 * 0x007F007F at out[1]; returns correction - 256 (x1 + x3). */
TR_INLINE int32_t tr_fc_row_widen_word(uint32_t v, uint32_t *out, int32_t correction)
{
    const int32_t odd = tr_sxtb16_ror8((int32_t)v); /* (x1, x3) */
    out[0] = (uint32_t)__ssub16(0, odd);
    out[1] = v ^ 0x007F007Fu;
    return __smlad(odd, (int32_t)0xFF00FF00u, correction); /* the halves of 0xFF00FF00 are -256 */
}

/* One input word of a group (exactly 56 bytes: fourteen 32-bit instructions): the row's two
 * pairs (LDRD, from the end of the widened row), the four outputs' weight words, and per weight
 * word one SMLAD as it is, one SXTB16 ROR 8 and one SMLAD of that. */
#define TR_FC_ROW_MAC(A, W) \
    "smlad " A ", r12, " W ", " A "\n\t" \
    "sxtb16 " W ", " W ", ror #8\n\t" \
    "smlad " A ", lr, " W ", " A "\n\t"
#define TR_FC_ROW_STEP(OFFSET) \
    "ldrd r12, lr, [r0, #-" #OFFSET "]\n\t" \
    "ldm r1!, {r8, r9, r10, r11}\n\t" \
    TR_FC_ROW_MAC("r4", "r8") TR_FC_ROW_MAC("r5", "r9") TR_FC_ROW_MAC("r6", "r10") TR_FC_ROW_MAC("r7", "r11")
#define TR_FC_ROW_STEPS \
    TR_FC_ROW_STEP(256) TR_FC_ROW_STEP(248) TR_FC_ROW_STEP(240) TR_FC_ROW_STEP(232) \
    TR_FC_ROW_STEP(224) TR_FC_ROW_STEP(216) TR_FC_ROW_STEP(208) TR_FC_ROW_STEP(200) \
    TR_FC_ROW_STEP(192) TR_FC_ROW_STEP(184) TR_FC_ROW_STEP(176) TR_FC_ROW_STEP(168) \
    TR_FC_ROW_STEP(160) TR_FC_ROW_STEP(152) TR_FC_ROW_STEP(144) TR_FC_ROW_STEP(136) \
    TR_FC_ROW_STEP(128) TR_FC_ROW_STEP(120) TR_FC_ROW_STEP(112) TR_FC_ROW_STEP(104) \
    TR_FC_ROW_STEP(96) TR_FC_ROW_STEP(88) TR_FC_ROW_STEP(80) TR_FC_ROW_STEP(72) \
    TR_FC_ROW_STEP(64) TR_FC_ROW_STEP(56) TR_FC_ROW_STEP(48) TR_FC_ROW_STEP(40) \
    TR_FC_ROW_STEP(32) TR_FC_ROW_STEP(24) TR_FC_ROW_STEP(16) TR_FC_ROW_STEP(8)
/* Accumulator A as its doubled sum (r12 holds the row's correction), requantized by its
 * constants from the stream as tr_thin_groups does, and stored; CORRECT is the sign correction
 * of the rounding or nothing. */
#define TR_FC_ROW_STORE(A, CORRECT) \
    "ldm r1!, {r8, r9, r10}\n\t" \
    "sub r11, r12, " A ", lsl #1\n\t" \
    "smmlar r10, r11, r8, r10\n\t" \
    CORRECT \
    "asr r10, r10, r9\n\t" \
    "ssat r10, #8, r10\n\t" \
    "strb r10, [r2], #1\n\t"
#define TR_FC_ROW_SIGN "sub r10, r10, r11, lsr #31\n\t"
/* The whole function, CORRECT the sign correction (or nothing). After the PUSH and one word for
 * the entry point, the fifth and sixth arguments are at sp + 40 and sp + 44. */
#define TR_FC_ROW_GROUPS_ASM(CORRECT) \
    __asm__("push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t" \
            "ldr r12, [sp, #36]\n\t" \
            "mov r8, #56\n\t" \
            "adr r9, 2f\n\t" \
            "mls r12, r12, r8, r9\n\t" \
            "orr r12, r12, #1\n\t" /* a Thumb address for LDR PC */ \
            "sub sp, sp, #4\n\t" \
            "str r12, [sp]\n\t" \
            "3:\n\t" \
            "ldm r1!, {r4, r5, r6, r7}\n\t" /* the four start values */ \
            "ldr pc, [sp]\n\t" \
            ".p2align 2\n\t" \
            "1:\n\t" TR_FC_ROW_STEPS "2:\n\t" \
            "ldr r12, [sp, #44]\n\t" \
            TR_FC_ROW_STORE("r4", CORRECT) TR_FC_ROW_STORE("r5", CORRECT) TR_FC_ROW_STORE("r6", CORRECT) \
            TR_FC_ROW_STORE("r7", CORRECT) "cmp r2, r3\n\t" \
            "bne 3b\n\t" \
            "add sp, sp, #4\n\t" \
            "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t")

/* Groups of four outputs y .. y_end from `stream`, against the widened row that ends at x_end
 * (`words` input words, 1..32). As tr_thin_groups (tr_thin.h), all fourteen registers hold the
 * loop (r0 the row's end, r1 the stream, r2 and r3 the outputs, r4-r7 the accumulators, r8-r11
 * weights or constants, r12 and lr the row's pairs), so the function is written whole in
 * assembly, and each group jumps into its straight steps with one LDR PC. */
__attribute__((naked, noinline)) static void tr_fc_row_groups(const uint32_t *x_end __attribute__((unused)),
                                                              const int32_t *stream __attribute__((unused)),
                                                              int8_t *y __attribute__((unused)),
                                                              int8_t *y_end __attribute__((unused)),
                                                              int words __attribute__((unused)),
                                                              int32_t correction __attribute__((unused)))
{
    TR_FC_ROW_GROUPS_ASM(TR_FC_ROW_SIGN);
}

/* tr_fc_row_groups for an output zero point of -128 (ReLU layers), without the sign correction
 * (as tr_thin_groups_floor: a negative doubled sum gives -128 either way after SSAT). */
__attribute__((naked, noinline)) static void tr_fc_row_groups_floor(const uint32_t *x_end __attribute__((unused)),
                                                                    const int32_t *stream __attribute__((unused)),
                                                                    int8_t *y __attribute__((unused)),
                                                                    int8_t *y_end __attribute__((unused)),
                                                                    int words __attribute__((unused)),
                                                                    int32_t correction __attribute__((unused)))
{
    TR_FC_ROW_GROUPS_ASM("");
}
#undef TR_FC_ROW_GROUPS_ASM
#undef TR_FC_ROW_SIGN
#undef TR_FC_ROW_STORE
#undef TR_FC_ROW_STEPS
#undef TR_FC_ROW_STEP
#undef TR_FC_ROW_MAC
#endif

/* One row x of `depth` values -> y (`out_depth` a multiple of four) through its row stream;
 * `wide` is the matmul scratch of one row (8 bytes per input word). */
static void tr_fc_row(const int8_t *x, int depth, const int32_t *stream, int8_t *y, int out_depth, uint32_t *wide,
                      int32_t output_offset)
{
    const int words = (depth + 3) / 4;
    int32_t correction = 0;
#if TR_USE_DSP
    /* The row is widened before any output is stored, so the output may overlap it. */
    uint32_t *out = wide;
    for (int j = 0; j < depth / 4; ++j, out += 2) {
        correction = tr_fc_row_widen_word((uint32_t)tr_read_int8x4(x + 4 * j), out, correction);
    }
    if (depth & 3) {
        int32_t v[4];
        tr_fc_row_word(x, depth, depth / 4, v);
        const uint32_t last = (uint32_t)(uint8_t)v[0] | (uint32_t)(uint8_t)v[1] << 8 | (uint32_t)(uint8_t)v[2] << 16;
        correction = tr_fc_row_widen_word(last, out, correction);
    }
    if (output_offset == -128) {
        tr_fc_row_groups_floor(wide + 2 * words, stream, y, y + out_depth, words, correction);
    } else {
        tr_fc_row_groups(wide + 2 * words, stream, y, y + out_depth, words, correction);
    }
#else
    (void)output_offset;
    const uintptr_t in = (uintptr_t)x, out = (uintptr_t)y;
    if (out < in + (uintptr_t)depth && in < out + (uintptr_t)out_depth) {
        memcpy(wide, x, (size_t)depth); /* the groups read the row while they store */
        x = (const int8_t *)(const void *)wide;
    }
    for (int k = 1; k < depth; k += 2) {
        correction -= 256 * x[k];
    }
    const int group = 16 + 4 * words;
    for (int o = 0; o < out_depth; o += 4, stream += group) {
        tr_fc_row_group_plain(x, depth, stream, correction, y + o);
    }
#endif
}

/* One input row from its row stream (`row_stream`): widened into `wide` before any output is
 * stored, so the output may overlap it. A kernel of its own, so the cost model fits it apart. */
TR_KERNEL void tr_fully_connected_row_int8(const tr_fc_params *params, const int8_t *input, int8_t *output,
                                           int8_t *wide)
{
    tr_fc_row(input, params->input_depth, params->row_stream, output, params->output_depth,
              (uint32_t *)(void *)wide, params->layer.output_offset);
}

/* One input row of at most 16 values from its thin int16 stream (`thin`). */
TR_KERNEL void tr_fully_connected_thin_int8(const tr_fc_params *params, const int8_t *input, int8_t *output,
                                            int8_t *wide)
{
    const tr_matmul_layer layer = params->layer;
    const int depth = params->input_depth, out_depth = params->output_depth;
    uint32_t *scratch = (uint32_t *)(void *)wide;
#if TR_USE_DSP
    /* tr_thin_row's DSP path for whole groups, inline: at four groups its call frame (nine
     * registers pushed and popped) costs about as many cycles as the thin loop saves. The row
     * is widened before any output is stored, so the output may overlap it. */
    const int words = (depth + 3) / 4;
    tr_thin_widen(input, depth, scratch);
    if (layer.output_offset == -128) {
        tr_thin_groups_floor(scratch + 2 * words, params->thin, output, output + out_depth, words);
    } else {
        tr_thin_groups(scratch + 2 * words, params->thin, output, output + out_depth, words);
    }
#else
    /* The plain C groups read the row while they store. */
    const uintptr_t in = (uintptr_t)input, out = (uintptr_t)output;
    if (out < in + (uintptr_t)depth && in < out + (uintptr_t)out_depth) {
        memcpy(wide, input, (size_t)depth); /* depth bytes fit in 8 x ceil(depth / 4) */
        input = wide;
    }
    tr_thin_row(input, depth, params->thin, output, out_depth, scratch, layer.output_offset);
#endif
}

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
 * Two matmuls through a narrow rank-r tensor, two input rows (pixels) at a time so that each
 * weight word and each requantization setup serves both: the r-wide intermediate rows live
 * only in `narrow` (2r bytes of scratch), never in the arena. A layer the generator packed as a
 * thin stream runs tr_thin_row row by row instead of the matmul loops.
 */
TR_KERNEL void tr_fully_connected_factored_int8(const tr_fc_factored_params *params, const int8_t *input,
                                                int8_t *output, int8_t *narrow, int8_t *wide)
{
    if (params->batches == 1 && params->first_thin != NULL && params->second_thin != NULL) {
        /* One row through two thin streams (a FULLY_CONNECTED pair, as the demo's): straight into
         * tr_thin_row, without the row loop's copies of both layers (about 70 instructions a
         * call, as many as a group of four outputs costs at rank 16). */
        uint32_t *row_scratch = (uint32_t *)(void *)wide;
        tr_thin_row(input, params->input_depth, params->first_thin, narrow, params->rank, row_scratch,
                    params->first.output_offset);
        tr_thin_row(narrow, params->rank, params->second_thin, output, params->output_depth, row_scratch,
                    params->second.output_offset);
        return;
    }
    const int batches = params->batches, input_depth = params->input_depth, rank = params->rank;
    const int output_depth = params->output_depth;
    const tr_matmul_layer first = params->first, second = params->second;
    const int32_t *first_thin = params->first_thin, *second_thin = params->second_thin;
    uint32_t *scratch = (uint32_t *)(void *)wide;
    for (int b = 0; b < batches; b += 2) {
        const int rows = batches - b < 2 ? batches - b : 2;
        const int8_t *x = input + b * input_depth;
        int8_t *y = output + b * output_depth;
        tr_layer_rows(x, narrow, rows, input_depth, rank, &first, first_thin, scratch);
        tr_layer_rows(narrow, y, rows, rank, output_depth, &second, second_thin, scratch);
    }
}
