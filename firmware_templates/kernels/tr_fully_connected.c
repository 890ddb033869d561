/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED, int8 (the loops are tr_dense_rows in
 * tr_conv_core.h), and the fused pair of a low-rank factored layer.
 */
#include "tr_conv_core.h"

TR_KERNEL void tr_fully_connected_int8(const int8_t *input, const int8_t *filter, const int32_t *bias,
                                       int8_t *output, int batches, int input_depth, int output_depth,
                                       const int32_t *multiplier, const int32_t *shift, const int32_t *round,
                                       int32_t output_offset, int32_t act_min, int32_t act_max)
{
    tr_dense_rows(input, filter, bias, output, batches, input_depth, output_depth, multiplier, shift, round,
                  output_offset, act_min, act_max);
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
                                                const int32_t *round1, int32_t offset1, int32_t min1, int32_t max1,
                                                const int8_t *filter2, const int32_t *bias2,
                                                const int32_t *multiplier2, const int32_t *shift2,
                                                const int32_t *round2, int32_t offset2, int32_t min2, int32_t max2,
                                                int8_t *narrow)
{
    for (int b = 0; b < batches; ++b) {
        tr_dense_rows(input + b * input_depth, filter1, bias1, narrow, 1, input_depth, rank,
                      multiplier1, shift1, round1, offset1, min1, max1);
        tr_dense_rows(narrow, filter2, bias2, output + b * output_depth, 1, rank, output_depth,
                      multiplier2, shift2, round2, offset2, min2, max2);
    }
}
