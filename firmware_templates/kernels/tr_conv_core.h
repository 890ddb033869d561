/*
 * tr_conv_core.h - the FULLY_CONNECTED and CONV_2D loops, shared by their kernels
 * (tr_fully_connected.c, tr_conv.c) and the fused Tucker kernel (tr_conv_tucker.c),
 * which runs them on rows of a small scratch window. TR_HELPER functions are plain `static`
 * (marked unused, so a file that needs only some of them compiles warning-free): gcc then
 * inlines them exactly as when they lived in the kernel files.
 *
 * FULLY_CONNECTED: output[b][o] = clamp(requant(bias[o] + sum_i filter[o][i] * input[b][i]) + offset);
 * the input zero point is folded into `bias` by the generator, `filter` holds the rows
 * packed by four (tr_dot_int8_x4 in tr_common.h); leftover rows are row-major.
 *
 * CONV_2D (NHWC input, OHWI weights, per-channel requantization): for each output pixel
 * the receptive field is gathered into a column (k_h * k_w * in_c bytes, the order of one
 * filter; `columns` holds two, for two pixels at a time), padding read as the input zero
 * point; then every output channel is one dot product of the column with its filter
 * (filters packed by four). The zero point is folded into `bias`, which is why padding
 * must be the zero point.
 */
#ifndef TR_CONV_CORE_H
#define TR_CONV_CORE_H

#include <string.h>

#include "tr_common.h"

#if defined(__GNUC__) || defined(__clang__)
#define TR_HELPER static __attribute__((unused))
/* A whole layer's loop nest, compiled as a function of its own: inlined into a wrapper, gcc 12
 * allocates registers differently and a 3x3 convolution ran 24% slower on the Cortex-M4. */
#define TR_LAYER_LOOP static __attribute__((unused, noinline))
#else
#define TR_HELPER static
#define TR_LAYER_LOOP static
#endif

/* One input row (an FC row, or a convolution's im2col column): groups of four outputs sharing
 * every input load, then the leftover rows one at a time. */
TR_HELPER void tr_dense_row(const int8_t *row_in, const int8_t *filter, const int32_t *bias, int8_t *row_out,
                            int input_depth, int output_depth, const int32_t *multiplier, const int32_t *shift,
                            const int32_t *round, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int o = 0;
    for (; o + 4 <= output_depth; o += 4) {
        int32_t acc[4] = { bias[o], bias[o + 1], bias[o + 2], bias[o + 3] };
        tr_dot_int8_x4(row_in, filter + o * input_depth, input_depth, acc); /* rows packed by four */
        row_out[o] = tr_requantize_channel(acc[0], multiplier, shift, round, o, output_offset, act_min, act_max);
        row_out[o + 1] =
            tr_requantize_channel(acc[1], multiplier, shift, round, o + 1, output_offset, act_min, act_max);
        row_out[o + 2] =
            tr_requantize_channel(acc[2], multiplier, shift, round, o + 2, output_offset, act_min, act_max);
        row_out[o + 3] =
            tr_requantize_channel(acc[3], multiplier, shift, round, o + 3, output_offset, act_min, act_max);
    }
    for (; o < output_depth; ++o) {
        int32_t acc = tr_dot_int8(bias[o], row_in, filter + o * input_depth, input_depth);
        row_out[o] = tr_requantize_channel(acc, multiplier, shift, round, o, output_offset, act_min, act_max);
    }
}

TR_LAYER_LOOP void tr_dense_rows(const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output,
                                 int batches, int input_depth, int output_depth, const int32_t *multiplier,
                                 const int32_t *shift, const int32_t *round, int32_t output_offset,
                                 int32_t act_min, int32_t act_max)
{
    int b = 0;
    for (; b + 2 <= batches; b += 2) { /* input rows in pairs (the pixels of a 1x1 convolution) */
        const int8_t *x0 = input + b * input_depth, *x1 = x0 + input_depth;
        int8_t *y0 = output + b * output_depth, *y1 = y0 + output_depth;
        int o = 0;
        for (; o + 4 <= output_depth; o += 4) {
            tr_dense_pair_group(x0, x1, filter + o * input_depth, bias + o, input_depth, y0 + o, y1 + o,
                                multiplier + o, shift + o, round ? round + o : 0, output_offset, act_min, act_max);
        }
        for (; o < output_depth; ++o) {
            const int8_t *w = filter + o * input_depth;
            y0[o] = tr_requantize_channel(tr_dot_int8(bias[o], x0, w, input_depth), multiplier, shift, round, o,
                                          output_offset, act_min, act_max);
            y1[o] = tr_requantize_channel(tr_dot_int8(bias[o], x1, w, input_depth), multiplier, shift, round, o,
                                          output_offset, act_min, act_max);
        }
    }
    for (; b < batches; ++b) {
        tr_dense_row(input + b * input_depth, filter, bias, output + b * output_depth, input_depth, output_depth,
                     multiplier, shift, round, output_offset, act_min, act_max);
    }
}

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
                                 const int32_t *multiplier, const int32_t *shift, const int32_t *round,
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
                                        output + out_c + oc, multiplier + oc, shift + oc, round ? round + oc : 0,
                                        output_offset, act_min, act_max);
                }
                for (; oc < out_c; ++oc) {
                    const int8_t *w = filter + oc * depth;
                    output[oc] = tr_requantize_channel(tr_dot_int8(bias[oc], columns, w, depth), multiplier, shift,
                                                       round, oc, output_offset, act_min, act_max);
                    output[out_c + oc] = tr_requantize_channel(tr_dot_int8(bias[oc], second, w, depth), multiplier,
                                                               shift, round, oc, output_offset, act_min, act_max);
                }
                output += 2 * out_c;
            }
            for (; ox < out_w; ++ox) {
                tr_conv_fill_column(image, in_h, in_w, in_c, y0, ox * stride_w - pad_left, k_h, k_w, dil_h, dil_w,
                                    (int8_t)input_zero_point, columns);
                tr_dense_row(columns, filter, bias, output, depth, out_c, multiplier, shift, round, output_offset,
                             act_min, act_max);
                output += out_c;
            }
        }
    }
}

#endif /* TR_CONV_CORE_H */
