/*
 * tr_conv_tucker.c - a Tucker-factored convolution in one call: CONV_2D 1x1 (C_in -> r1),
 * CONV_2D k_h x k_w (r1 -> r2, any stride, padding, dilation), CONV_2D 1x1 (r2 -> C_out),
 * as `tinyrank compress --method tucker` leaves it.
 *
 * Row by row: the narrow r1-channel rows the kxk convolution needs live in `window`
 * (scratch, at most (k_h - 1) * dil_h + 1 rows of in_w x r1 bytes), computed once each
 * by the first 1x1 and shifted up as the window slides down; each kxk output row goes to
 * `middle` (out_w x r2 bytes) and the last 1x1 writes it to the output. Neither narrow
 * tensor exists in the arena. Each step is the unfused kernel's loop (tr_conv_core.h), so
 * the bytes are the same as three separate calls.
 */
#include <string.h>

#include "tr_conv_core.h"

TR_KERNEL void tr_conv_tucker_int8(const int8_t *input, int8_t *output, int batches, int in_h, int in_w, int in_c,
                                   int out_h, int out_w, int out_c, int rank_in, int rank_out,
                                   /* first 1x1 */
                                   const int8_t *filter1, const int32_t *bias1, const int32_t *multiplier1,
                                   const int32_t *shift1, const int32_t *round1,
                                   int32_t offset1, int32_t min1, int32_t max1,
                                   /* k_h x k_w */
                                   const int8_t *filter2, const int32_t *bias2, int k_h, int k_w,
                                   int stride_h, int stride_w, int dil_h, int dil_w, int pad_top, int pad_left,
                                   int32_t zero_point2, const int32_t *multiplier2, const int32_t *shift2,
                                   const int32_t *round2, int32_t offset2, int32_t min2, int32_t max2,
                                   /* last 1x1 */
                                   const int8_t *filter3, const int32_t *bias3, const int32_t *multiplier3,
                                   const int32_t *shift3, const int32_t *round3,
                                   int32_t offset3, int32_t min3, int32_t max3,
                                   int8_t *window, int8_t *middle, int8_t *columns)
{
    const int span = (k_h - 1) * dil_h;
    const int row_bytes = in_w * rank_in;
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w * in_c;
        int first = 0, count = 0; /* the window holds narrow rows first .. first + count - 1 */
        for (int oy = 0; oy < out_h; ++oy) {
            const int y0 = oy * stride_h - pad_top;
            const int top = y0 > 0 ? y0 : 0;
            const int bottom = y0 + span < in_h ? y0 + span : in_h - 1; /* last row inside the image */
            if (top >= first + count) { /* nothing kept: start afresh */
                first = top;
                count = 0;
            } else if (top > first) { /* drop the rows above the receptive field */
                count -= top - first;
                memmove(window, window + (top - first) * row_bytes, (size_t)(count * row_bytes));
                first = top;
            }
            for (; first + count <= bottom; ++count) { /* 1x1 C_in -> r1 on the new rows */
                tr_dense_rows(image + (first + count) * in_w * in_c, filter1, bias1, window + count * row_bytes,
                              in_w, in_c, rank_in, multiplier1, shift1, round1, offset1, min1, max1);
            }
            /* one output row of the kxk convolution over the window; rows outside it are padding */
            tr_conv_image(window, filter2, bias2, middle, 1, count, in_w, rank_in, 1, out_w, rank_out, k_h, k_w,
                          stride_h, stride_w, dil_h, dil_w, top - y0, pad_left, zero_point2, multiplier2, shift2,
                          round2, offset2, min2, max2, columns);
            /* 1x1 r2 -> C_out into the output row */
            tr_dense_rows(middle, filter3, bias3, output + ((b * out_h + oy) * out_w) * out_c, out_w, rank_out,
                          out_c, multiplier3, shift3, round3, offset3, min3, max3);
        }
    }
}
