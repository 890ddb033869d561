/*
 * tr_conv.c - TFLite CONV_2D, int8 NHWC input, OHWI weights, per-channel requantization
 * (the im2col loop is tr_conv_image in tr_conv_core.h).
 */
#include "tr_conv.h"

#include "tr_conv_core.h"

TR_KERNEL void tr_conv_int8(const tr_conv_params *params, const int8_t *input, int8_t *output, int8_t *columns)
{
    const tr_conv_geometry *g = &params->geometry;
    const tr_requant_params *rq = &params->requant;
    tr_conv_image(input, params->filter, params->bias, output, g->batches, g->in_h, g->in_w, g->in_c, g->out_h,
                  g->out_w, g->out_c, g->k_h, g->k_w, g->stride_h, g->stride_w, g->dil_h, g->dil_w, g->pad_top,
                  g->pad_left, params->input_zero_point, rq->multiplier, rq->shift, rq->doubled, rq->output_offset,
                  rq->act_min, rq->act_max, columns);
}
