/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED (and pointwise CONV_2D, a FULLY_CONNECTED over
 * pixels), int8, and the fused pair of a low-rank factored layer. The loops are tr_matmul_rows
 * in tr_matmul.h.
 */
#include "tr_fully_connected.h"

#include "tr_matmul.h"

TR_KERNEL void tr_fully_connected_int8(const tr_fc_params *params, const int8_t *input, int8_t *output, int8_t *wide)
{
    const tr_matmul_layer layer = params->layer; /* locals: not reloaded after stores */
    tr_matmul_rows(input, output, params->batches, params->input_depth, params->output_depth, &layer,
                   (uint32_t *)(void *)wide);
}

/*
 * Two matmuls through a narrow rank-r tensor, two input rows (pixels) at a time so that each
 * weight word and each requantization setup serves both: the r-wide intermediate rows live
 * only in `narrow` (2r bytes of scratch), never in the arena.
 */
TR_KERNEL void tr_fully_connected_factored_int8(const tr_fc_factored_params *params, const int8_t *input,
                                                int8_t *output, int8_t *narrow, int8_t *wide)
{
    const int batches = params->batches, input_depth = params->input_depth, rank = params->rank;
    const int output_depth = params->output_depth;
    const tr_matmul_layer first = params->first, second = params->second;
    uint32_t *scratch = (uint32_t *)(void *)wide;
    for (int b = 0; b < batches; b += 2) {
        const int rows = batches - b < 2 ? batches - b : 2;
        tr_matmul_rows(input + b * input_depth, narrow, rows, input_depth, rank, &first, scratch);
        tr_matmul_rows(narrow, output + b * output_depth, rows, rank, output_depth, &second, scratch);
    }
}
