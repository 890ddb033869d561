/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED, int8.
 *
 * output[b][o] = clamp(requant(bias[o] + sum_i filter[o][i] * input[b][i]) + output_offset)
 * The input zero point is already folded into `bias` by the generator, so the inner loop
 * is a plain int8 dot product (SMLAD on cores with the DSP extension). `filter` holds the
 * rows packed by four (see tr_dot_int8_x4 in tr_common.h); leftover rows are row-major.
 */
#include "tr_common.h"

/* One input row: groups of four outputs, then the leftover rows one at a time. */
static void tr_fully_connected_row(const int8_t *row_in, const int8_t *filter, const int32_t *bias, int8_t *row_out,
                                   int input_depth, int output_depth, const int32_t *multiplier,
                                   const int32_t *shift, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int o = 0;
    for (; o + 4 <= output_depth; o += 4) { /* four outputs share every input load */
        int32_t acc[4] = { bias[o], bias[o + 1], bias[o + 2], bias[o + 3] };
        tr_dot_int8_x4(row_in, filter + o * input_depth, input_depth, acc); /* rows packed by four */
        row_out[o] = tr_requantize(acc[0], multiplier[o], shift[o], output_offset, act_min, act_max);
        row_out[o + 1] = tr_requantize(acc[1], multiplier[o + 1], shift[o + 1], output_offset, act_min, act_max);
        row_out[o + 2] = tr_requantize(acc[2], multiplier[o + 2], shift[o + 2], output_offset, act_min, act_max);
        row_out[o + 3] = tr_requantize(acc[3], multiplier[o + 3], shift[o + 3], output_offset, act_min, act_max);
    }
    for (; o < output_depth; ++o) {
        int32_t acc = tr_dot_int8(bias[o], row_in, filter + o * input_depth, input_depth);
        row_out[o] = tr_requantize(acc, multiplier[o], shift[o], output_offset, act_min, act_max);
    }
}

TR_KERNEL void tr_fully_connected_int8(const int8_t *input, const int8_t *filter, const int32_t *bias,
                                       int8_t *output, int batches, int input_depth, int output_depth,
                                       const int32_t *multiplier, const int32_t *shift,
                                       int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int b = 0;
    for (; b + 2 <= batches; b += 2) { /* input rows in pairs (the pixels of a 1x1 convolution) */
        const int8_t *x0 = input + b * input_depth, *x1 = x0 + input_depth;
        int8_t *y0 = output + b * output_depth, *y1 = y0 + output_depth;
        int o = 0;
        for (; o + 4 <= output_depth; o += 4) {
            tr_dense_pair_group(x0, x1, filter + o * input_depth, bias + o, input_depth, y0 + o, y1 + o,
                                          multiplier + o, shift + o, output_offset, act_min, act_max);
        }
        for (; o < output_depth; ++o) {
            const int8_t *w = filter + o * input_depth;
            y0[o] = tr_requantize(tr_dot_int8(bias[o], x0, w, input_depth), multiplier[o], shift[o], output_offset,
                                  act_min, act_max);
            y1[o] = tr_requantize(tr_dot_int8(bias[o], x1, w, input_depth), multiplier[o], shift[o], output_offset,
                                  act_min, act_max);
        }
    }
    for (; b < batches; ++b) {
        tr_fully_connected_row(input + b * input_depth, filter, bias, output + b * output_depth, input_depth,
                               output_depth, multiplier, shift, output_offset, act_min, act_max);
    }
}

/*
 * Two FULLY_CONNECTED layers through a narrow rank-r tensor (a low-rank factored layer),
 * one input row at a time: the r-wide intermediate lives only in `narrow` (r bytes of
 * scratch), never in the arena.
 */
TR_KERNEL void tr_fully_connected_factored_int8(const int8_t *input, int8_t *output, int batches,
                                                int input_depth, int rank, int output_depth,
                                                const int8_t *filter1, const int32_t *bias1,
                                                const int32_t *multiplier1, const int32_t *shift1,
                                                int32_t offset1, int32_t min1, int32_t max1,
                                                const int8_t *filter2, const int32_t *bias2,
                                                const int32_t *multiplier2, const int32_t *shift2,
                                                int32_t offset2, int32_t min2, int32_t max2, int8_t *narrow)
{
    for (int b = 0; b < batches; ++b) {
        tr_fully_connected_int8(input + b * input_depth, filter1, bias1, narrow, 1, input_depth, rank,
                                multiplier1, shift1, offset1, min1, max1);
        tr_fully_connected_int8(narrow, filter2, bias2, output + b * output_depth, 1, rank, output_depth,
                                multiplier2, shift2, offset2, min2, max2);
    }
}
