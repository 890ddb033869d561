/*
 * tr_conv.c - TFLite CONV_2D, int8 NHWC input, OHWI weights, per-channel requantization.
 *
 * For each output pixel the receptive field is gathered into a column (k_h * k_w * in_c
 * bytes, the same order as one filter; `columns` holds two, for two pixels at a time), with
 * padding read as the input zero point; then
 * every output channel is one dot product of the column with its filter (filters packed by
 * four, see tr_dot_int8_x4 in tr_common.h, so four channels share each column load). The input zero
 * point is folded into `bias` by the generator, which is why padding must be zero point.
 */
#include <string.h>

#include "tr_common.h"

static void tr_conv_fill_column(const int8_t *image, int in_h, int in_w, int in_c, int y0, int x0,
                                int k_h, int k_w, int dil_h, int dil_w, int8_t pad_value, int8_t *column)
{
    for (int ky = 0; ky < k_h; ++ky) {
        int y = y0 + ky * dil_h;
        for (int kx = 0; kx < k_w; ++kx) {
            int x = x0 + kx * dil_w;
            if (y < 0 || y >= in_h || x < 0 || x >= in_w) {
                memset(column, pad_value, (size_t)in_c);
            } else if (in_c <= 4) { /* a call to memcpy costs more than a few bytes */
                const int8_t *pixel = image + (y * in_w + x) * in_c;
                for (int c = 0; c < in_c; ++c) {
                    column[c] = pixel[c];
                }
            } else {
                memcpy(column, image + (y * in_w + x) * in_c, (size_t)in_c);
            }
            column += in_c;
        }
    }
}

/* Every output channel of one pixel from its column: packed groups of four, then the rest. */
static void tr_conv_pixel(const int8_t *column, const int8_t *filter, const int32_t *bias, int depth, int out_c,
                          const int32_t *multiplier, const int32_t *shift, int32_t output_offset, int32_t act_min,
                          int32_t act_max, int8_t *output)
{
    int oc = 0;
    for (; oc + 4 <= out_c; oc += 4) { /* four filters share every column load */
        int32_t acc[4] = { bias[oc], bias[oc + 1], bias[oc + 2], bias[oc + 3] };
        tr_dot_int8_x4(column, filter + oc * depth, depth, acc);
        output[oc] = tr_requantize(acc[0], multiplier[oc], shift[oc], output_offset, act_min, act_max);
        output[oc + 1] = tr_requantize(acc[1], multiplier[oc + 1], shift[oc + 1], output_offset, act_min, act_max);
        output[oc + 2] = tr_requantize(acc[2], multiplier[oc + 2], shift[oc + 2], output_offset, act_min, act_max);
        output[oc + 3] = tr_requantize(acc[3], multiplier[oc + 3], shift[oc + 3], output_offset, act_min, act_max);
    }
    for (; oc < out_c; ++oc) {
        int32_t acc = tr_dot_int8(bias[oc], column, filter + oc * depth, depth);
        output[oc] = tr_requantize(acc, multiplier[oc], shift[oc], output_offset, act_min, act_max);
    }
}

TR_KERNEL void tr_conv_int8(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                            int batches, int in_h, int in_w, int in_c, int out_h, int out_w, int out_c,
                            int k_h, int k_w, int stride_h, int stride_w, int dil_h, int dil_w,
                            int pad_top, int pad_left, int32_t input_zero_point,
                            const int32_t *multiplier, const int32_t *shift,
                            int32_t output_offset, int32_t act_min, int32_t act_max, int8_t *columns)
{
    const int depth = k_h * k_w * in_c;
    int8_t *second = columns + depth; /* the generator reserves two columns */
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w * in_c;
        for (int oy = 0; oy < out_h; ++oy) {
            const int y0 = oy * stride_h - pad_top;
            int ox = 0;
            for (; ox + 2 <= out_w; ox += 2) { /* two pixels: each weight word serves both columns */
                tr_conv_fill_column(image, in_h, in_w, in_c, y0, ox * stride_w - pad_left, k_h, k_w, dil_h, dil_w,
                                    (int8_t)input_zero_point, columns);
                tr_conv_fill_column(image, in_h, in_w, in_c, y0, (ox + 1) * stride_w - pad_left, k_h, k_w, dil_h,
                                    dil_w, (int8_t)input_zero_point, second);
                int oc = 0;
                for (; oc + 4 <= out_c; oc += 4) {
                    tr_dense_pair_group(columns, second, filter + oc * depth, bias + oc, depth, output + oc,
                                        output + out_c + oc, multiplier + oc, shift + oc, output_offset, act_min,
                                        act_max);
                }
                for (; oc < out_c; ++oc) {
                    const int8_t *w = filter + oc * depth;
                    output[oc] = tr_requantize(tr_dot_int8(bias[oc], columns, w, depth), multiplier[oc], shift[oc],
                                               output_offset, act_min, act_max);
                    output[out_c + oc] = tr_requantize(tr_dot_int8(bias[oc], second, w, depth), multiplier[oc],
                                                       shift[oc], output_offset, act_min, act_max);
                }
                output += 2 * out_c;
            }
            for (; ox < out_w; ++ox) {
                tr_conv_fill_column(image, in_h, in_w, in_c, y0, ox * stride_w - pad_left, k_h, k_w, dil_h, dil_w,
                                    (int8_t)input_zero_point, columns);
                tr_conv_pixel(columns, filter, bias, depth, out_c, multiplier, shift, output_offset, act_min, act_max,
                              output);
                output += out_c;
            }
        }
    }
}
