/*
 * tr_conv_core.h - the CONV_2D loop nest (im2col), shared by the CONV_2D kernel (tr_conv.c)
 * and the fused Tucker kernel (tr_conv_tucker.c), which runs it on rows of a small scratch
 * window.
 *
 * CONV_2D (NHWC input, OHWI weights, per-channel requantization): for each output pixel
 * the receptive field is gathered into a column (k_h * k_w * in_c bytes, the order of one
 * filter; `columns` holds two, for two pixels at a time), padding read as the input zero
 * point; then every output channel is one dot product of the column with its filter
 * (filters packed by four, tr_dense.h). The zero point is folded into `bias`, which is why
 * padding must be the zero point.
 */
#ifndef TR_CONV_CORE_H
#define TR_CONV_CORE_H

#include <string.h>

#include "tr_dense.h"

TR_HELPER void tr_conv_fill_column(const int8_t *image, int in_h, int in_w, int in_c, int y0, int x0,
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

TR_LAYER_LOOP void tr_conv_image(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                                 int batches, int in_h, int in_w, int in_c, int out_h, int out_w, int out_c,
                                 int k_h, int k_w, int stride_h, int stride_w, int dil_h, int dil_w,
                                 int pad_top, int pad_left, int32_t input_zero_point,
                                 const int32_t *multiplier, const int32_t *shift, const int32_t *doubled,
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
                    tr_dense_pair_group(columns, second, filter + oc * depth, bias, depth, output + oc,
                                        output + out_c + oc, oc, multiplier, shift, doubled, output_offset, act_min,
                                        act_max);
                }
                for (; oc < out_c; ++oc) {
                    const int8_t *w = filter + oc * depth;
                    output[oc] = tr_requantize_channel(tr_dot_int8(bias[oc], columns, w, depth), multiplier, shift,
                                                       doubled, oc, output_offset, act_min, act_max);
                    output[out_c + oc] = tr_requantize_channel(tr_dot_int8(bias[oc], second, w, depth), multiplier,
                                                               shift, doubled, oc, output_offset, act_min, act_max);
                }
                output += 2 * out_c;
            }
            for (; ox < out_w; ++ox) {
                tr_conv_fill_column(image, in_h, in_w, in_c, y0, ox * stride_w - pad_left, k_h, k_w, dil_h, dil_w,
                                    (int8_t)input_zero_point, columns);
                tr_dense_row(columns, filter, bias, output, depth, out_c, multiplier, shift, doubled, output_offset,
                             act_min, act_max);
                output += out_c;
            }
        }
    }
}

#endif /* TR_CONV_CORE_H */
