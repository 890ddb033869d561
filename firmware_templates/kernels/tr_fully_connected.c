/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED (and pointwise CONV_2D, a FULLY_CONNECTED over
 * pixels), int8, and the fused pair of a low-rank factored layer (two FULLY_CONNECTED, or two
 * pointwise CONV_2D, through a rank-r tensor). The loops are tr_matmul_rows in tr_matmul.h:
 * `channels` is a layer's per-channel table, `wide` their scratch.
 */
#include "tr_matmul.h"

TR_KERNEL void tr_fully_connected_int8(const int8_t *input, int8_t *output, int batches, int input_depth,
                                       int output_depth, const int8_t *filter, const int32_t *channels,
                                       int doubled, int32_t output_offset, int32_t act_min, int32_t act_max,
                                       int8_t *wide)
{
    tr_matmul_rows(input, output, batches, input_depth, output_depth, filter, channels, doubled, output_offset,
                   act_min, act_max, (uint32_t *)(void *)wide);
}

/*
 * Two matmuls through a narrow rank-r tensor, two input rows (pixels) at a time so that each
 * weight word and each requantization setup serves both: the r-wide intermediate rows live
 * only in `narrow` (2r bytes of scratch), never in the arena. `wide` is tr_matmul_rows'
 * scratch for the wider of input_depth and rank.
 */
TR_KERNEL void tr_fully_connected_factored_int8(const int8_t *input, int8_t *output, int batches,
                                                int input_depth, int rank, int output_depth,
                                                const int8_t *filter1, const int32_t *channels1, int doubled1,
                                                int32_t offset1, int32_t min1, int32_t max1,
                                                const int8_t *filter2, const int32_t *channels2, int doubled2,
                                                int32_t offset2, int32_t min2, int32_t max2,
                                                int8_t *narrow, int8_t *wide)
{
    uint32_t *scratch = (uint32_t *)(void *)wide;
    for (int b = 0; b < batches; b += 2) {
        const int rows = batches - b < 2 ? batches - b : 2;
        tr_matmul_rows(input + b * input_depth, narrow, rows, input_depth, rank, filter1, channels1, doubled1,
                       offset1, min1, max1, scratch);
        tr_matmul_rows(narrow, output + b * output_depth, rows, rank, output_depth, filter2, channels2, doubled2,
                       offset2, min2, max2, scratch);
    }
}
