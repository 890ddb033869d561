/*
 * tr_conv_spatial.c - a spatially factored convolution (CONV_2D k_h x 1, then 1 x k_w) in one call.
 *
 * Row by row: the first convolution writes one narrow row (in_w x r bytes) into `row` (scratch)
 * and the second turns it into one output row, so the narrow tensor never exists in the arena.
 * Both steps are the CONV_2D loop (tr_conv_matmul in tr_conv_core.h) on one output row: the bytes
 * are those of the two separate calls. A step whose columns hold at most 64 values (k x r, k x C_in)
 * may run from a thin int16 stream (tr_thin.h) instead of int8 weights.
 */
#include "tr_conv_spatial.h"

#include "tr_conv_core.h"

TR_KERNEL void tr_conv_spatial_int8(const tr_conv_spatial_params *params, const int8_t *input, int8_t *output,
                                    int8_t *row, int8_t *columns, int8_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after stores */
    const tr_matmul_layer first = params->first, second = params->second;
    const int8_t zero_point1 = (int8_t)params->input_zero_point, zero_point2 = (int8_t)params->narrow_zero_point;
    /* narrow row oy of one image: the k_h x 1 convolution with its padding shifted to that row */
    tr_conv_geometry tall = { .batches = 1, .in_h = g.in_h, .in_w = g.in_w, .in_c = g.in_c, .out_h = 1,
                              .out_w = g.in_w, .out_c = params->rank, .k_h = g.k_h, .k_w = 1,
                              .stride_h = g.stride_h, .stride_w = 1, .dil_h = g.dil_h, .dil_w = 1 };
    /* output row oy: the 1 x k_w convolution over the narrow row */
    const tr_conv_geometry across = { .batches = 1, .in_h = 1, .in_w = g.in_w, .in_c = params->rank, .out_h = 1,
                                        .out_w = g.out_w, .out_c = g.out_c, .k_h = 1, .k_w = g.k_w, .stride_h = 1,
                                        .stride_w = g.stride_w, .dil_h = 1, .dil_w = g.dil_w,
                                        .pad_left = g.pad_left };
    for (int b = 0; b < g.batches; ++b) {
        const int8_t *image = input + b * g.in_h * g.in_w * g.in_c;
        for (int oy = 0; oy < g.out_h; ++oy) {
            tall.pad_top = g.pad_top - oy * g.stride_h;
            tr_conv_matmul(&tall, image, row, zero_point1, &first, params->first_thin, columns,
                           (uint32_t *)(void *)wide);
            tr_conv_matmul(&across, row, output + ((b * g.out_h + oy) * g.out_w) * g.out_c, zero_point2, &second,
                           params->second_thin, columns, (uint32_t *)(void *)wide);
        }
    }
}
