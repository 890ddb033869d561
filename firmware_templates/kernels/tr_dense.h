/*
 * tr_dense.h - the FULLY_CONNECTED loop nest, shared by the FULLY_CONNECTED kernels
 * (tr_fully_connected.c), the convolutions (tr_conv_core.h: a 1x1 convolution and each im2col
 * column are dense rows) and the fused Tucker kernel.
 *
 * output[b][o] = requantize(bias[o] + sum_i filter[o][i] * input[b][i]); the input zero point
 * is folded into `bias` by the generator, `filter` holds the rows packed by four
 * (tr_dot_int8_x4 in tr_dot.h; leftover rows are row-major). Requantization arguments
 * (multiplier, shift, doubled, output_offset, act_min, act_max) are the fields of
 * tr_requant_params, unpacked by the kernel so the loops keep them in registers.
 *
 * TR_HELPER functions are plain `static` (marked unused, so a file that needs only some of
 * them compiles warning-free): gcc then inlines them exactly as when they lived in the
 * kernel files.
 */
#ifndef TR_DENSE_H
#define TR_DENSE_H

#include "tr_dot.h"
#include "tr_requantize.h"

#if defined(__GNUC__) || defined(__clang__)
#define TR_HELPER static __attribute__((unused))
/* A whole layer's loop nest, compiled as a function of its own: inlined into a wrapper, gcc 12
 * allocates registers differently and a 3x3 convolution ran 24% slower on the Cortex-M4. */
#define TR_LAYER_LOOP static __attribute__((unused, noinline))
#else
#define TR_HELPER static
#define TR_LAYER_LOOP static
#endif

/* Four outputs (one packed group, rows 0..3 of `group`, output channels c..c+3) for two input
 * rows at once, requantized into y0[0..3] and y1[0..3]: every weight word serves both inputs
 * (1x1 convolution pixels, im2col columns). */
TR_INLINE void tr_dense_pair_group(const int8_t *x0, const int8_t *x1, const int8_t *group, const int32_t *bias,
                                   int depth, int8_t *y0, int8_t *y1, int c, const int32_t *multiplier,
                                   const int32_t *shift, const int32_t *doubled, int32_t output_offset,
                                   int32_t act_min, int32_t act_max)
{
    const int words = depth / 4, rest = depth - 4 * words;
    int32_t lo[4] = { bias[c], bias[c + 1], bias[c], bias[c + 1] };
    int32_t hi[4] = { bias[c + 2], bias[c + 3], bias[c + 2], bias[c + 3] };
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
    if (doubled != NULL) { /* one test for eight outputs */
        const int32_t *d = doubled + 2 * c, *m = multiplier + c;
        y0[0] = tr_requantize_doubled((int32_t)((uint32_t)lo[0] << 1), m[0], d[0], d[1], act_min, act_max);
        y0[1] = tr_requantize_doubled((int32_t)((uint32_t)lo[1] << 1), m[1], d[2], d[3], act_min, act_max);
        y0[2] = tr_requantize_doubled((int32_t)((uint32_t)hi[0] << 1), m[2], d[4], d[5], act_min, act_max);
        y0[3] = tr_requantize_doubled((int32_t)((uint32_t)hi[1] << 1), m[3], d[6], d[7], act_min, act_max);
        y1[0] = tr_requantize_doubled((int32_t)((uint32_t)lo[2] << 1), m[0], d[0], d[1], act_min, act_max);
        y1[1] = tr_requantize_doubled((int32_t)((uint32_t)lo[3] << 1), m[1], d[2], d[3], act_min, act_max);
        y1[2] = tr_requantize_doubled((int32_t)((uint32_t)hi[2] << 1), m[2], d[4], d[5], act_min, act_max);
        y1[3] = tr_requantize_doubled((int32_t)((uint32_t)hi[3] << 1), m[3], d[6], d[7], act_min, act_max);
        return;
    }
    const int32_t *s = shift + c, *m = multiplier + c;
    y0[0] = tr_requantize(lo[0], m[0], s[0], output_offset, act_min, act_max);
    y0[1] = tr_requantize(lo[1], m[1], s[1], output_offset, act_min, act_max);
    y0[2] = tr_requantize(hi[0], m[2], s[2], output_offset, act_min, act_max);
    y0[3] = tr_requantize(hi[1], m[3], s[3], output_offset, act_min, act_max);
    y1[0] = tr_requantize(lo[2], m[0], s[0], output_offset, act_min, act_max);
    y1[1] = tr_requantize(lo[3], m[1], s[1], output_offset, act_min, act_max);
    y1[2] = tr_requantize(hi[2], m[2], s[2], output_offset, act_min, act_max);
    y1[3] = tr_requantize(hi[3], m[3], s[3], output_offset, act_min, act_max);
}

/* One input row (an FC row, or a convolution's im2col column): groups of four outputs sharing
 * every input load, then the leftover rows one at a time. */
TR_HELPER void tr_dense_row(const int8_t *row_in, const int8_t *filter, const int32_t *bias, int8_t *row_out,
                            int input_depth, int output_depth, const int32_t *multiplier, const int32_t *shift,
                            const int32_t *doubled, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int o = 0;
    for (; o + 4 <= output_depth; o += 4) {
        int32_t acc[4] = { bias[o], bias[o + 1], bias[o + 2], bias[o + 3] };
        tr_dot_int8_x4(row_in, filter + o * input_depth, input_depth, acc); /* rows packed by four */
        row_out[o] = tr_requantize_channel(acc[0], multiplier, shift, doubled, o, output_offset, act_min, act_max);
        row_out[o + 1] =
            tr_requantize_channel(acc[1], multiplier, shift, doubled, o + 1, output_offset, act_min, act_max);
        row_out[o + 2] =
            tr_requantize_channel(acc[2], multiplier, shift, doubled, o + 2, output_offset, act_min, act_max);
        row_out[o + 3] =
            tr_requantize_channel(acc[3], multiplier, shift, doubled, o + 3, output_offset, act_min, act_max);
    }
    for (; o < output_depth; ++o) {
        int32_t acc = tr_dot_int8(bias[o], row_in, filter + o * input_depth, input_depth);
        row_out[o] = tr_requantize_channel(acc, multiplier, shift, doubled, o, output_offset, act_min, act_max);
    }
}

/* `batches` rows of input_depth values -> rows of output_depth values. */
TR_LAYER_LOOP void tr_dense_rows(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                                 int batches, int input_depth, int output_depth, const int32_t *multiplier,
                                 const int32_t *shift, const int32_t *doubled, int32_t output_offset,
                                 int32_t act_min, int32_t act_max)
{
    int b = 0;
    for (; b + 2 <= batches; b += 2) { /* input rows in pairs (the pixels of a 1x1 convolution) */
        const int8_t *x0 = input + b * input_depth, *x1 = x0 + input_depth;
        int8_t *y0 = output + b * output_depth, *y1 = y0 + output_depth;
        int o = 0;
        for (; o + 4 <= output_depth; o += 4) {
            tr_dense_pair_group(x0, x1, filter + o * input_depth, bias, input_depth, y0 + o, y1 + o, o, multiplier,
                                shift, doubled, output_offset, act_min, act_max);
        }
        for (; o < output_depth; ++o) {
            const int8_t *w = filter + o * input_depth;
            y0[o] = tr_requantize_channel(tr_dot_int8(bias[o], x0, w, input_depth), multiplier, shift, doubled, o,
                                          output_offset, act_min, act_max);
            y1[o] = tr_requantize_channel(tr_dot_int8(bias[o], x1, w, input_depth), multiplier, shift, doubled, o,
                                          output_offset, act_min, act_max);
        }
    }
    for (; b < batches; ++b) {
        tr_dense_row(input + b * input_depth, filter, bias, output + b * output_depth, input_depth, output_depth,
                     multiplier, shift, doubled, output_offset, act_min, act_max);
    }
}

#endif /* TR_DENSE_H */
