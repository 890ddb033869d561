/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED (and pointwise CONV_2D, a FULLY_CONNECTED over
 * pixels), int8, the one-row stream of FULLY_CONNECTED on DSP targets, and the fused pair of a
 * low-rank factored layer. The loops are tr_matmul_rows in tr_matmul.h.
 */
#include "tr_fully_connected.h"

#include <stdint.h>
#include <string.h>

#include "tr_matmul.h"
#include "tr_thin.h"

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
 * One input row (TFLite FULLY_CONNECTED with batches = 1, more than four outputs): the row
 * stream. The generator stores each weight word w0 w1 w2 w3 (four consecutive inputs of one
 * output, in the matmul layout of tr_matmul.h) as the bytes (w1 ^ 0x80, w0, w3 ^ 0x80, w2)
 * (packing.pack_row_stream: the same bytes, permuted and XORed, so flash does not grow), which
 * SMLAD reads as the int16 halves L = 256 w0 + (w1 + 128), H = 256 w2 + (w3 + 128). Each input
 * word I = x0 x1 x2 x3 is prepared once per row into scratch as two words:
 *   A = I ^ 0x007F007F, the halves 256 x1 + (127 - x0), 256 x3 + (127 - x2);
 *   B = (-x1, -x3).
 * Per output and input word, SMLAD(W, B) + SMLAD(SXTB16(W, ROR 8) = (w0, w2), A) adds
 *   -(w0 x0 + w1 x1 + w2 x2 + w3 x3) + 127 (w0 + w2) - 128 (x1 + x3).
 * The generator folds -bias - 127 sum(w0 + w2) of each output into its table (the first field,
 * never doubled; ops/fully_connected.row_stream_table), the row adds 128 sum(x1 + x3), so a
 * group ends with minus TFLite Micro's int32 sum (exactly, modulo 2^32: SMLAD wraps, the true
 * sum fits), negated (and doubled for a doubled table) before the requantization of tr_matmul.h.
 * Four outputs a pass: per input word one LDRD of (A, B), one LDM of the four weight words,
 * four SXTB16 and eight SMLAD, 14 instructions (20 cycles on a Cortex-M4) per 16 MACs against
 * 18 (24 cycles) for tr_matmul_row, which sign-extends every weight byte; with the per-group
 * work (biases, the jumps into and out of the steps, four requantizations, one word store: about
 * 50 instructions) FC 64x64 takes 1.15 instructions per MAC on the M4 (1.385 before). A partial last group
 * runs whole on the zero-padded rows and stores its first outputs. The plain C form computes
 * the same words in C (host builds; a Cortex-M0/M3 build is generated with the plain layout and
 * never calls this kernel).
 */

/* Input word j of a row, its (A, B) words into out[0], out[1]; returns odd_sum + x1 + x3. */
TR_INLINE int32_t tr_row_stream_word(uint32_t word, uint32_t *out, int32_t odd_sum)
{
#if TR_USE_DSP
    const int32_t odd = tr_sxtb16_ror8((int32_t)word); /* (x1, x3) */
    out[0] = word ^ 0x007F007Fu;
    out[1] = (uint32_t)__ssub16(0, odd);
    return __smlad(odd, 0x00010001, odd_sum);
#else
    const int32_t x1 = (int32_t)(((word >> 8) & 0xFF) ^ 0x80) - 0x80, x3 = (int32_t)((word >> 24) ^ 0x80) - 0x80;
    out[0] = word ^ 0x007F007Fu;
    out[1] = ((uint32_t)-x1 & 0xFFFF) | (uint32_t)-x3 << 16;
    return odd_sum + x1 + x3;
#endif
}

/* The prepared row (see above) into out[2j], out[2j + 1] for input word j, the last word
 * zero-padded; returns sum(x1 + x3). On the DSP path two input words a pass in assembly (two LDR:
 * the row need not be word-aligned; two SXTB16, EOR, SSUB16 and SMLAD; one STM of the four words):
 * 6.5 instructions per word against 10 for the C loop (which keeps its loads and stores apart). */
static int32_t tr_row_stream_prepare(const int8_t *x, int depth, uint32_t *out)
{
    int32_t odd_sum = 0;
    const int8_t *end = x + (depth & ~3);
#if TR_USE_DSP
    const int8_t *pairs_end = x + (depth & ~7);
    if (x != pairs_end) {
        register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
        __asm__ volatile("1:\n\t"
                         "ldr r10, [%[x], #4]\n\t"
                         "ldr r8, [%[x]], #8\n\t"
                         "sxtb16 r9, r8, ror #8\n\t" /* (x1, x3) of each word */
                         "sxtb16 r11, r10, ror #8\n\t"
                         "eor r8, r8, #0x007F007F\n\t" /* A */
                         "eor r10, r10, #0x007F007F\n\t"
                         "smlad %[sum], r9, %[ones], %[sum]\n\t"
                         "smlad %[sum], r11, %[ones], %[sum]\n\t"
                         "ssub16 r9, %[zero], r9\n\t" /* B */
                         "ssub16 r11, %[zero], r11\n\t"
                         "stm %[out]!, {r8, r9, r10, r11}\n\t"
                         "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : [x] "+r"(x), [out] "+r"(out), [sum] "+&r"(odd_sum), "=&r"(r8), "=&r"(r9), "=&r"(r10),
                           "=&r"(r11)
                         : [end] "r"(pairs_end), [ones] "r"(0x00010001u), [zero] "r"(0u)
                         : "cc", "memory");
    }
#endif
    for (; x < end; x += 4, out += 2) {
#if TR_USE_DSP
        const uint32_t word = (uint32_t)tr_read_int8x4(x);
#else
        const uint32_t word = (uint32_t)(uint8_t)x[0] | (uint32_t)(uint8_t)x[1] << 8 | (uint32_t)(uint8_t)x[2] << 16 |
                              (uint32_t)(uint8_t)x[3] << 24;
#endif
        odd_sum = tr_row_stream_word(word, out, odd_sum);
    }
    if (depth & 3) {
        uint32_t word = 0;
        for (int k = 0; k < (depth & 3); ++k) {
            word |= (uint32_t)(uint8_t)x[k] << 8 * k;
        }
        odd_sum = tr_row_stream_word(word, out, odd_sum);
    }
    return odd_sum;
}

#if TR_USE_DSP
/* One weight word (register W) of an output (accumulator A) against the prepared pair. */
#define TR_STREAM_MAC(W, A) \
    "smlad %[" A "], " W ", %[xb], %[" A "]\n\t" \
    "sxtb16 " W ", " W ", ror #8\n\t" \
    "smlad %[" A "], " W ", %[xa], %[" A "]\n\t"
#define TR_STREAM_STEP \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t" \
    "ldm %[w]!, {r8, r9, r10, r11}\n\t" \
    TR_STREAM_MAC("r8", "a0") TR_STREAM_MAC("r9", "a1") TR_STREAM_MAC("r10", "a2") TR_STREAM_MAC("r11", "a3")
#endif

#if TR_USE_DSP
/* What the assembly group loop reads besides the row and the weights (offsets in its code). */
typedef struct {
    const int32_t *entries; /* +0: the next group's table entries (four int32 per output) */
    uint32_t row_offset;    /* +4: -2 x 128 sum(x1 + x3): the row's part of a doubled, negated sum */
    int32_t skip;           /* +8: steps the first pass of a group skips (-words & 7) */
    int8_t *y;              /* +12: the next group's four outputs (requantized in the loop) */
    const int8_t *y_end;    /* +16: where the groups end */
    const uint32_t *row;    /* +20: the prepared row */
    uint32_t jump;          /* +24: set by the loop: its first step's address, for the first pass */
    uint32_t after;         /* +28: set by the loop: where a group goes after its steps */
    int32_t *sums;          /* +32: NULL, or one group's raw accumulators for the caller */
} tr_row_stream_frame;

/* Output A's requantization from its table entry (at r8 + OFFSET), tr_requantize_entry's DSP form
 * for a full-range doubled table: SMMLAR, SUB, ASR, SSAT. */
#define TR_STREAM_REQUANT(A, OFFSET) \
    "ldrd %[xa], %[xb], [r8, #" #OFFSET " + 4]\n\t" \
    "ldr r9, [r8, #" #OFFSET " + 12]\n\t" \
    "smmlar r9, %[" A "], %[xa], r9\n\t" \
    "sub r9, r9, %[" A "], lsr #31\n\t" \
    "asr r9, r9, %[xb]\n\t" \
    "ssat %[" A "], #8, r9\n\t"

/* Groups of four outputs (weights from `w`, `end` the end of the prepared row) in one assembly
 * loop: per group the accumulators start at the table's entries, the steps run eight a pass (each
 * exactly 56 bytes of 32-bit instructions), entered by one jump so that the first pass runs
 * words % 8 of them (as tr_dot_1x4_wide), and end at the entry plus the stream's sums. With
 * `sums` NULL (whole groups up to y_end, a full-range doubled table) the loop turns each into
 * TFLite Micro's doubled sum (row_offset - 2 acc), requantizes and stores the four bytes as one
 * word; else it leaves the one group's raw accumulators in sums[]. Returns the weight pointer past
 * the groups. Not inlined: one copy of the loop. */
static __attribute__((noinline)) const int8_t *tr_row_stream_run(tr_row_stream_frame *f, const int8_t *w,
                                                                 const uint32_t *end)
{
    const uint32_t *x;
    int32_t a0, a1, a2, a3;
    uint32_t xa, xb;
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    __asm__ volatile("adr r8, 1f\n\t"
                     "ldr r9, [%[f], #8]\n\t"
                     "mov r10, #56\n\t"
                     "mla r8, r9, r10, r8\n\t"
                     "orr r8, r8, #1\n\t" /* Thumb addresses for LDR PC */
                     "str r8, [%[f], #24]\n\t"
                     "ldr r8, [%[f], #32]\n\t"
                     "cmp r8, #0\n\t"
                     "bne 5f\n\t"
                     "adr r9, 2f\n\t"
                     "b 6f\n\t"
                     "5:\n\t"
                     "adr r9, 3f\n\t"
                     "6:\n\t"
                     "orr r9, r9, #1\n\t"
                     "str r9, [%[f], #28]\n\t"
                     "0:\n\t"
                     "ldr r8, [%[f]]\n\t"
                     "ldr %[a0], [r8]\n\t"
                     "ldr %[a1], [r8, #16]\n\t"
                     "ldr %[a2], [r8, #32]\n\t"
                     "ldr %[a3], [r8, #48]\n\t"
                     "ldr %[x], [%[f], #20]\n\t"
                     "ldr pc, [%[f], #24]\n\t"
                     ".p2align 2\n\t"
                     "1:\n\t" TR_STREAM_STEP TR_STREAM_STEP TR_STREAM_STEP TR_STREAM_STEP TR_STREAM_STEP
                         TR_STREAM_STEP TR_STREAM_STEP TR_STREAM_STEP "cmp %[x], %[end]\n\t"
                     "bne 1b\n\t"
                     "ldr pc, [%[f], #28]\n\t"
                     ".p2align 2\n\t"
                     "2:\n\t"
                     "ldrd r8, r11, [%[f]]\n\t"
                     "sub %[a0], r11, %[a0], lsl #1\n\t"
                     "sub %[a1], r11, %[a1], lsl #1\n\t"
                     "sub %[a2], r11, %[a2], lsl #1\n\t"
                     "sub %[a3], r11, %[a3], lsl #1\n\t" TR_STREAM_REQUANT("a0", 0) TR_STREAM_REQUANT("a1", 16)
                         TR_STREAM_REQUANT("a2", 32) TR_STREAM_REQUANT("a3", 48) "and r9, %[a0], #255\n\t"
                     "bfi r9, %[a1], #8, #8\n\t"
                     "bfi r9, %[a2], #16, #8\n\t"
                     "bfi r9, %[a3], #24, #8\n\t"
                     "ldr r10, [%[f], #12]\n\t"
                     "str r9, [r10], #4\n\t"
                     "str r10, [%[f], #12]\n\t"
                     "add r8, r8, #64\n\t"
                     "str r8, [%[f]]\n\t"
                     "ldr r11, [%[f], #16]\n\t"
                     "cmp r10, r11\n\t"
                     "bne 0b\n\t"
                     "b 4f\n\t"
                     "3:\n\t"
                     "ldr r8, [%[f], #32]\n\t"
                     "strd %[a0], %[a1], [r8]\n\t"
                     "strd %[a2], %[a3], [r8, #8]\n\t"
                     "4:\n\t"
                     : [x] "=&r"(x), [w] "+r"(w), [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3),
                       [xa] "=&r"(xa), [xb] "=&r"(xb), "=&r"(r8), "=&r"(r9), "=&r"(r10), "=&r"(r11)
                     : [f] "r"(f), [end] "r"(end)
                     : "cc", "memory");
    return w;
}
#undef TR_STREAM_REQUANT
#endif
#undef TR_STREAM_STEP
#undef TR_STREAM_MAC

/* One group's raw accumulators (the table's entries plus the stream's sums: the row's
 * 128 sum(x1 + x3) still to add, then minus TFLite Micro's sum) into acc[]; returns the weight
 * pointer past the group. The plain C form takes per weight word the int16 halves SMLAD reads,
 * against A and B. */
TR_INLINE const int8_t *tr_row_stream_sums(const uint32_t *x, const int8_t *w, int words, const int32_t *entries,
                                           int32_t acc[4])
{
#if TR_USE_DSP
    tr_row_stream_frame frame = { entries, 0, -words & 7, NULL, NULL, x, 0, 0, acc };
    return tr_row_stream_run(&frame, w, x + 2 * words);
#else
    for (int k = 0; k < 4; ++k) {
        acc[k] = entries[4 * k];
    }
    for (int j = 0; j < words; ++j, x += 2) {
        const int32_t a_low = (int32_t)(x[0] & 0xFFFF) - (int32_t)(x[0] & 0x8000) * 2;
        const int32_t a_high = (int32_t)(x[0] >> 16) - (int32_t)(x[0] >> 31) * 0x10000;
        const int32_t b_low = (int32_t)(x[1] & 0xFFFF) - (int32_t)(x[1] & 0x8000) * 2;
        const int32_t b_high = (int32_t)(x[1] >> 16) - (int32_t)(x[1] >> 31) * 0x10000;
        for (int k = 0; k < 4; ++k, w += 4) {
            const int32_t low = 256 * w[1] + (uint8_t)w[0], high = 256 * w[3] + (uint8_t)w[2];
            acc[k] = (int32_t)((uint32_t)acc[k] + (uint32_t)(low * b_low) + (uint32_t)(high * b_high) +
                               (uint32_t)(w[1] * a_low) + (uint32_t)(w[3] * a_high)); /* SMLAD wraps */
        }
    }
    return w;
#endif
}

/* One row through a layer in the row stream (`row`: TR_MATMUL_WIDE_WORDS(depth, 1) words of
 * scratch for the prepared row): the row is read whole before any output is stored, so the output
 * may overwrite the input (inplace.py). On the DSP path, with a full-range doubled table, the
 * whole groups run in one call of the assembly loop, requantized inside it (tr_requantize_entry's
 * five-instruction DSP form), and a partial last group in a second call that stores its four bytes
 * on the stack; anything else (TFLM's general form, a clamping activation, the plain C path) runs
 * group by group, requantized in C from the sums. Called for more than four outputs only: a
 * FULLY_CONNECTED of one row, or a step of a one-row factored pair (not inlined: one copy). */
static __attribute__((noinline)) void tr_row_stream_layer(const tr_matmul_layer *params, const int8_t *input, int depth, int8_t *output,
                                int out_depth, uint32_t *row)
{
    const tr_matmul_layer layer = *params; /* locals: not reloaded after stores */
    const int words = (depth + 3) / 4, doubled = (int)layer.doubled;
    const int32_t *channels = layer.channels;
    const int8_t *w = layer.filter;
    const uint32_t row_sum = 128u * (uint32_t)tr_row_stream_prepare(input, depth, row);
#if TR_USE_DSP
    if (doubled && layer.act_min == -128 && layer.act_max == 127) {
        const int whole = out_depth & ~3;
        uint32_t last; /* a partial last group's four bytes, stored here first */
        tr_row_stream_frame frame = { channels, 0u - 2u * row_sum, -words & 7, output, output + whole, row, 0, 0, NULL };
        w = tr_row_stream_run(&frame, w, row + 2 * words); /* out_depth > 4: at least one whole group */
        if (whole < out_depth) {
            frame.y = (int8_t *)(void *)&last;
            frame.y_end = frame.y + 4;
            tr_row_stream_run(&frame, w, row + 2 * words);
            const int8_t *bytes = (const int8_t *)(const void *)&last;
            for (int k = 0; k < out_depth - whole; ++k) {
                output[whole + k] = bytes[k];
            }
        }
        return;
    }
#endif
    for (int o = 0; o < out_depth; o += 4, channels += 16) {
        int32_t acc[4];
        w = tr_row_stream_sums(row, w, words, channels, acc);
        for (int k = 0; k < 4; ++k) { /* the sum: negated, doubled for a doubled table */
            acc[k] = (int32_t)(0u - (((uint32_t)acc[k] + row_sum) << doubled));
        }
        tr_store_partial_group(acc, channels, output + o, out_depth - o < 4 ? out_depth - o : 4, doubled,
                               layer.output_offset, layer.act_min, layer.act_max);
    }
}

/* `wide` holds the prepared row (tr_row_stream_layer). The generator calls this kernel for more
 * than four outputs only. */
TR_KERNEL void tr_fully_connected_row_int8(const tr_fc_params *params, const int8_t *input, int8_t *output,
                                           int8_t *wide)
{
    tr_row_stream_layer(&params->layer, input, params->input_depth, output, params->output_depth,
                        (uint32_t *)(void *)wide);
}

/* A factored pair of one row with a layer in the row stream (the generator calls this form only
 * then: batches = 1 on a DSP target; the two-row form below checks no flags): each layer from its
 * own form, the layers read through the params (no local copies: the row stream copies what it
 * keeps). Both layers' inputs are read whole before the first byte of their output is stored (the
 * row stream prepares its row into `wide`, the rank-r vector is complete before the second layer
 * runs), so the generator may place the output over the input and the rank-r vector in the
 * input's bytes past the output (inplace.py). */
TR_KERNEL void tr_fully_connected_factored_row_int8(const tr_fc_factored_params *params, const int8_t *input,
                                                    int8_t *output, int8_t *narrow, int8_t *wide)
{
    uint32_t *scratch = (uint32_t *)(void *)wide;
    const int input_depth = params->input_depth, rank = params->rank, output_depth = params->output_depth;
    if (params->first_stream) {
        tr_row_stream_layer(&params->first, input, input_depth, narrow, rank, scratch);
    } else {
        tr_layer_rows(input, narrow, 1, input_depth, rank, &params->first, params->first_thin, scratch);
    }
    if (params->second_stream) {
        tr_row_stream_layer(&params->second, narrow, rank, output, output_depth, scratch);
    } else {
        tr_layer_rows(narrow, output, 1, rank, output_depth, &params->second, params->second_thin, scratch);
    }
}

/*
 * Two matmuls through a narrow rank-r tensor, two input rows (pixels) at a time so that each
 * weight word and each requantization setup serves both: the r-wide intermediate rows live
 * only in `narrow` (2r bytes of scratch), never in the arena. A layer the generator packed as a
 * thin stream runs tr_thin_pass_row row by row instead of the matmul loops. A pair with a layer in the
 * row stream is generated as tr_fully_connected_factored_row_int8 instead, so this form never
 * reads the `*_stream` flags (they cost the Cortex-M3 8-12 instructions a call here). On the plain
 * C path `wide` is unused and a plain generation (codegen --no-dsp) passes NULL: its loops read
 * the rows in place, and its plan keeps `narrow` off the input (fusion._pair_wide).
 */
TR_KERNEL void tr_fully_connected_factored_int8(const tr_fc_factored_params *params, const int8_t *input,
                                                int8_t *output, int8_t *narrow, int8_t *wide)
{
    uint32_t *scratch = (uint32_t *)(void *)wide;
    const int batches = params->batches, input_depth = params->input_depth, rank = params->rank;
    const int output_depth = params->output_depth;
    const tr_matmul_layer first = params->first, second = params->second;
    const int32_t *first_thin = params->first_thin, *second_thin = params->second_thin;
    for (int b = 0; b < batches; b += 2) {
        const int rows = batches - b < 2 ? batches - b : 2;
        const int8_t *x = input + b * input_depth;
        int8_t *y = output + b * output_depth;
        tr_layer_rows(x, narrow, rows, input_depth, rank, &first, first_thin, scratch);
        tr_layer_rows(narrow, y, rows, rank, output_depth, &second, second_thin, scratch);
    }
}

/* Both layers thin streams: each row through the first layer into `narrow`, then the second. (The
 * forms above reach the matmul loops through tr_layer_rows, which links them even where every
 * layer is thin: 15 KB of flash on a Cortex-M4 for a pair that never runs them.) Each layer's
 * input is read whole before its output is stored, as in the row form, so the generator may place
 * the output over the input (inplace.py). `wide` as above: NULL from a plain generation. */
TR_KERNEL void tr_fully_connected_factored_thin_int8(const tr_fc_factored_params *params, const int8_t *input,
                                                     int8_t *output, int8_t *narrow, int8_t *wide)
{
    uint32_t *scratch = (uint32_t *)(void *)wide;
    const int input_depth = params->input_depth, output_depth = params->output_depth, batches = params->batches;
    const tr_thin_pass first = tr_thin_prepare(input_depth, params->first_thin, params->rank, params->first.output_offset);
    const tr_thin_pass second = tr_thin_prepare(params->rank, params->second_thin, output_depth,
                                                params->second.output_offset);
    for (int b = 0; b < batches; ++b) {
        tr_thin_pass_row(&first, input + b * input_depth, narrow, scratch);
        tr_thin_pass_row(&second, narrow, output + b * output_depth, scratch);
    }
}
