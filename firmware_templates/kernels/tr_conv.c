/*
 * tr_conv.c - TFLite CONV_2D, int8 NHWC input, OHWI weights, per-channel requantization
 * (the im2col loop is tr_conv_image in tr_conv_core.h).
 */
#include "tr_conv_core.h"

TR_KERNEL void tr_conv_int8(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                            int batches, int in_h, int in_w, int in_c, int out_h, int out_w, int out_c,
                            int k_h, int k_w, int stride_h, int stride_w, int dil_h, int dil_w,
                            int pad_top, int pad_left, int32_t input_zero_point,
                            const int32_t *multiplier, const int32_t *shift, const int32_t *round,
                            int32_t output_offset, int32_t act_min, int32_t act_max, int8_t *columns)
{
    tr_conv_image(input, filter, bias, output, batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride_h,
                  stride_w, dil_h, dil_w, pad_top, pad_left, input_zero_point, multiplier, shift, round,
                  output_offset, act_min, act_max, columns);
}
