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
