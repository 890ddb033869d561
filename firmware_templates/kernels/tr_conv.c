/*
 * tr_conv.c - TFLite CONV_2D, int8 NHWC input, OHWI weights, per-channel requantization: the
 * im2col loop of tr_conv_core.h over the whole image.
 */
#include "tr_conv.h"

#include "tr_conv_core.h"

TR_KERNEL void tr_conv_int8(const tr_conv_params *params, const int8_t *input, int8_t *output, int8_t *columns,
                            int8_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after each int8 store */
    const tr_matmul_layer layer = params->layer;
    tr_conv_matmul(&g, input, output, (int8_t)params->input_zero_point, &layer, NULL, columns,
                   (uint32_t *)(void *)wide);
}
