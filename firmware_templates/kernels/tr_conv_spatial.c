/*
 * tr_conv_spatial.c - a spatially factored convolution (CONV_2D k_h x 1, then 1 x k_w) in one call.
 *
 * Row by row: the first convolution writes one narrow row (in_w x r bytes) into `row` (scratch)
 * and the second turns it into one output row, so the narrow tensor never exists in the arena.
 * Both steps are the CONV_2D loop (tr_conv_image in tr_conv_core.h) on one output row: the bytes
 * are those of the two separate calls.
 */
#include "tr_conv_spatial.h"

#include "tr_conv_core.h"

TR_KERNEL void tr_conv_spatial_int8(const tr_conv_spatial_params *params, const int8_t *input, int8_t *output,
                                    int8_t *row, int8_t *columns)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after stores */
    const tr_dense_layer first = params->first, second = params->second;
    const int rank = params->rank;
    const int32_t zero_point1 = params->input_zero_point, zero_point2 = params->narrow_zero_point;
    for (int b = 0; b < g.batches; ++b) {
        const int8_t *image = input + b * g.in_h * g.in_w * g.in_c;
        for (int oy = 0; oy < g.out_h; ++oy) {
            /* narrow row oy: the k_h x 1 convolution with its padding shifted to this row */
            tr_conv_image(image, first.filter, first.bias, row, 1, g.in_h, g.in_w, g.in_c, 1, g.in_w, rank, g.k_h, 1,
                          g.stride_h, 1, g.dil_h, 1, g.pad_top - oy * g.stride_h, 0, zero_point1,
                          first.requant.multiplier, first.requant.shift, first.requant.doubled,
                          first.requant.output_offset, first.requant.act_min, first.requant.act_max, columns);
            /* output row oy: the 1 x k_w convolution over the narrow row */
            tr_conv_image(row, second.filter, second.bias, output + ((b * g.out_h + oy) * g.out_w) * g.out_c, 1, 1,
                          g.in_w, rank, 1, g.out_w, g.out_c, 1, g.k_w, 1, g.stride_w, 1, g.dil_w, 0, g.pad_left,
                          zero_point2, second.requant.multiplier, second.requant.shift, second.requant.doubled,
                          second.requant.output_offset, second.requant.act_min, second.requant.act_max, columns);
        }
    }
}
