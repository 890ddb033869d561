/*
 * tr_fully_connected.c - TFLite FULLY_CONNECTED, int8 (the loops are tr_dense_rows in
 * tr_dense.h), and the fused pair of a low-rank factored layer.
 */
#include "tr_fully_connected.h"

#include "tr_dense.h"

TR_KERNEL void tr_fully_connected_int8(const tr_fc_params *params, const int8_t *input, int8_t *output)
{
    const tr_requant_params *rq = &params->requant;
    tr_dense_rows(input, params->filter, params->bias, output, params->batches, params->input_depth,
                  params->output_depth, rq->multiplier, rq->shift, rq->doubled, rq->output_offset, rq->act_min,
                  rq->act_max);
}

/* One input row at a time: the r-wide intermediate lives only in `narrow`, never in the arena. */
TR_KERNEL void tr_fully_connected_factored_int8(const tr_fc_factored_params *params, const int8_t *input,
                                                int8_t *output, int8_t *narrow)
{
    const int batches = params->batches, input_depth = params->input_depth, rank = params->rank;
    const int output_depth = params->output_depth;
    const tr_dense_layer first = params->first, second = params->second; /* locals: not reloaded after stores */
    for (int b = 0; b < batches; ++b) {
        tr_dense_rows(input + b * input_depth, first.filter, first.bias, narrow, 1, input_depth, rank,
                      first.requant.multiplier, first.requant.shift, first.requant.doubled,
                      first.requant.output_offset, first.requant.act_min, first.requant.act_max);
        tr_dense_rows(narrow, second.filter, second.bias, output + b * output_depth, 1, rank, output_depth,
                      second.requant.multiplier, second.requant.shift, second.requant.doubled,
                      second.requant.output_offset, second.requant.act_min, second.requant.act_max);
    }
}
