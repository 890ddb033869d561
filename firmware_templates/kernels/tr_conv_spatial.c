/*
 * tr_conv_spatial.c - a spatially factored convolution in one call: CONV_2D k_h x 1 (C_in -> r,
 * stride and dilation along the height), then CONV_2D 1 x k_w (r -> C_out, along the width), as
 * `tinyrank compress --method spatial` leaves a k_h x k_w convolution.
 *
 * Row by row: the first convolution writes one narrow row (in_w x r bytes) into `row` (scratch)
 * and the second turns it into one output row, so the narrow tensor never exists in the arena.
 * Both steps are the CONV_2D loop (tr_conv_image in tr_conv_core.h) on one output row: the bytes
 * are those of the two separate calls.
 */
#include "tr_conv_core.h"

TR_KERNEL void tr_conv_spatial_int8(const int8_t *input, int8_t *output, int batches, int in_h, int in_w,
                                    int in_c, int out_h, int out_w, int out_c, int rank,
                                    /* k_h x 1 */
                                    const int8_t *filter1, const int32_t *bias1, int k_h, int stride_h, int dil_h,
                                    int pad_top, int32_t zero_point1, const int32_t *multiplier1,
                                    const int32_t *shift1, const int32_t *round1, int32_t offset1, int32_t min1,
                                    int32_t max1,
                                    /* 1 x k_w */
                                    const int8_t *filter2, const int32_t *bias2, int k_w, int stride_w, int dil_w,
                                    int pad_left, int32_t zero_point2, const int32_t *multiplier2,
                                    const int32_t *shift2, const int32_t *round2, int32_t offset2, int32_t min2,
                                    int32_t max2, int8_t *row, int8_t *columns)
{
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w * in_c;
        for (int oy = 0; oy < out_h; ++oy) {
            /* narrow row oy: the k_h x 1 convolution with its padding shifted to this row */
            tr_conv_image(image, filter1, bias1, row, 1, in_h, in_w, in_c, 1, in_w, rank, k_h, 1, stride_h, 1, dil_h,
                          1, pad_top - oy * stride_h, 0, zero_point1, multiplier1, shift1, round1, offset1, min1,
                          max1, columns);
            /* output row oy: the 1 x k_w convolution over the narrow row */
            tr_conv_image(row, filter2, bias2, output + ((b * out_h + oy) * out_w) * out_c, 1, 1, in_w, rank, 1, out_w,
                          out_c, 1, k_w, 1, stride_w, 1, dil_w, 0, pad_left, zero_point2, multiplier2, shift2, round2,
                          offset2, min2, max2, columns);
        }
    }
}
