/*
 * tr_conv_core.h - the CONV_2D loop (im2col through the matmul loops), shared by the CONV_2D
 * kernel (tr_conv.c) and the fused spatial and Tucker kernels (tr_conv_spatial.c,
 * tr_conv_tucker.c), which run it on one row or a small scratch window at a time.
 *
 * For each output pixel the receptive field is gathered into a column (k_h * k_w * in_c bytes,
 * the order of one OHWI filter), padding read as the input zero point, which the folded bias
 * cancels. Two columns are two rows of a FULLY_CONNECTED against the filters in the matmul
 * layout (tr_matmul_rows in tr_matmul.h: on the DSP path each sign-extended weight word serves
 * both pixels). Pixels pair across output rows, so only the last pixel of an odd-sized image
 * runs alone.
 */
#ifndef TR_CONV_CORE_H
#define TR_CONV_CORE_H

#include <string.h>

#include "tr_matmul.h"
#include "tr_thin.h"

/* n bytes, few of them (a call to memcpy costs more): word by word, then the last bytes. A
 * 4-byte memcpy is one LDR and one STR where the core allows unaligned access (M3/M4/M33) and
 * byte moves where it does not (M0). */
TR_INLINE void tr_copy_bytes(int8_t *dst, const int8_t *src, int n)
{
    if (n >= 32) {
        memcpy(dst, src, (size_t)n);
        return;
    }
    uint32_t word;
    if (n >= 4) { /* whole words, then the last four bytes as one word over the ones before them */
        const int8_t *last = src + n - 4;
        int8_t *last_dst = dst + n - 4;
        for (; n > 4; n -= 4, src += 4, dst += 4) {
            memcpy(&word, src, 4);
            memcpy(dst, &word, 4);
        }
        memcpy(&word, last, 4);
        memcpy(last_dst, &word, 4);
        return;
    }
    for (int i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* The receptive field of the output pixel whose window starts at input (y0, x0) of `image`, in
 * the filter's order (ky, kx, c), padding read as `pad_value`. A kernel row wholly inside the
 * image (no dilation across it) is one run of k_w * in_c bytes in NHWC: one copy. Out of line,
 * with the geometry behind one pointer: inlined into the pixel loop, gcc 12 kept its variables
 * on the stack (about 235 instructions for a 3x3x3 column, 65 now). */
TR_MATMUL_LOOP void tr_conv_fill_column(const tr_conv_geometry *g, const int8_t *image, int y0, int x0,
                                        int8_t pad_value, int8_t *column);
TR_MATMUL_LOOP void tr_conv_fill_column(const tr_conv_geometry *g, const int8_t *image, int y0, int x0,
                                        int8_t pad_value, int8_t *column)
{
    const int in_h = g->in_h, in_w = g->in_w, in_c = g->in_c, k_h = g->k_h, k_w = g->k_w, dil_h = g->dil_h;
    const int dil_w = g->dil_w, run = k_w * in_c, row_bytes = in_w * in_c;
    if (dil_w == 1 && x0 >= 0 && x0 + k_w <= in_w) {
        const int8_t *row = image + y0 * row_bytes + x0 * in_c;
        for (int ky = 0, y = y0; ky < k_h; ++ky, y += dil_h, row += dil_h * row_bytes, column += run) {
            if (y < 0 || y >= in_h) {
                memset(column, pad_value, (size_t)run);
            } else {
                tr_copy_bytes(column, row, run);
            }
        }
        return;
    }
    for (int ky = 0; ky < k_h; ++ky, column += run) {
        const int y = y0 + ky * dil_h;
        if (y < 0 || y >= in_h) {
            memset(column, pad_value, (size_t)run);
            continue;
        }
        const int8_t *row = image + y * row_bytes;
        for (int kx = 0; kx < k_w; ++kx) {
            const int x = x0 + kx * dil_w;
            if (x < 0 || x >= in_w) {
                memset(column + kx * in_c, pad_value, (size_t)in_c);
            } else {
                tr_copy_bytes(column + kx * in_c, row + x * in_c, in_c);
            }
        }
    }
}

/* The convolution `g` describes (all its batches), im2col two pixels at a time; `columns` holds
 * two columns, `wide` is the matmul scratch for two rows of k_h * k_w * in_c values. With a thin
 * stream (`thin` not NULL: at most 128 values per column) each column runs tr_thin_pass_row instead
 * of the matmul loops (`layer` then gives only the output zero point). */
TR_MATMUL_HELPER void tr_conv_matmul(const tr_conv_geometry *g, const int8_t *input, int8_t *output, int8_t pad_value,
                                     const tr_matmul_layer *layer, const int32_t *thin, int8_t *columns,
                                     uint32_t *wide)
{
    const int depth = g->k_h * g->k_w * g->in_c, pixels = g->out_h * g->out_w;
    for (int b = 0; b < g->batches; ++b) {
        const int8_t *image = input + b * g->in_h * g->in_w * g->in_c;
        int oy = 0, ox = 0;
        for (int p = 0; p < pixels; p += 2) {
            const int rows = pixels - p < 2 ? 1 : 2;
            for (int r = 0; r < rows; ++r) {
                tr_conv_fill_column(g, image, oy * g->stride_h - g->pad_top, ox * g->stride_w - g->pad_left,
                                    pad_value, columns + r * depth);
                if (++ox == g->out_w) {
                    ox = 0;
                    ++oy;
                }
            }
            tr_layer_rows(columns, output, rows, depth, g->out_c, layer, thin, wide);
            output += rows * g->out_c;
        }
    }
}

#endif /* TR_CONV_CORE_H */
