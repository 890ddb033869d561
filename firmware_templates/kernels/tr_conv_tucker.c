/*
 * tr_conv_tucker.c - the fused Tucker chain (tr_conv_tucker.h), row by row.
 *
 * The narrow r1-channel rows the kxk convolution needs live in `window`, computed once each
 * by the first 1x1 and shifted up as the window slides down; each kxk output row goes to
 * `middle` and the last 1x1 writes it to the output. Neither narrow tensor exists in the
 * arena. Each step is the unfused kernel's loop (tr_matmul_rows, tr_conv_matmul), or a thin
 * stream's (tr_thin.h) where the step has one, so the bytes are the same as three separate calls.
 * On the DSP path a thin k x k step over whole words (r1 and r2 multiples of 4) skips the im2col
 * copy: each pixel's column is widened straight from the window (tr_tucker_core_wide).
 */
#include "tr_conv_tucker.h"

#include <string.h>

#include "tr_conv_core.h"
#include "tr_thin.h"

#if TR_USE_DSP
/* The thin k x k step of one output row into `middle`: `window` holds `rows` narrow rows, the
 * first of them `pad_top` rows below the top of the receptive field (rows outside are padding).
 * Per output pixel its k_h x k_w runs of r1 values are widened into one column in `wide` (int16
 * pairs, padding as the core's input zero point), then tr_thin_groups runs its groups. */
static void tr_tucker_core_wide(const tr_conv_tucker_params *params, const int8_t *window, int rows, int pad_top,
                                int8_t *middle, uint32_t *wide)
{
    const tr_conv_geometry *g = &params->geometry;
    const int rank = params->rank_in, rank_out = params->rank_out, in_w = g->in_w, k_w = g->k_w;
    const int pixel_words = rank / 2, line = in_w * rank;
    const int column_words = g->k_h * k_w * pixel_words; /* widened: two per four values */
    const uint32_t zero = (uint32_t)params->core_input_zero_point & 0xffffu, pad = zero | zero << 16;
    const int at_floor = params->core.output_offset == -128; /* tr_thin_groups_floor applies */
    int8_t *y = middle;
    for (int ox = 0, x0 = -g->pad_left; ox < g->out_w; ++ox, x0 += g->stride_w, y += rank_out) {
        uint32_t *w = wide;
        for (int ky = 0, r = -pad_top; ky < g->k_h; ++ky, r += g->dil_h) {
            if (r < 0 || r >= rows) {
                for (uint32_t *end = w + k_w * pixel_words; w < end; ++w) {
                    *w = pad;
                }
                continue;
            }
            const int8_t *line_start = window + r * line;
            if (g->dil_w == 1 && x0 >= 0 && x0 + k_w <= in_w) { /* one run of k_w pixels */
                tr_thin_widen(line_start + x0 * rank, k_w * rank, w);
                w += k_w * pixel_words;
                continue;
            }
            for (int kx = 0, x = x0; kx < k_w; ++kx, x += g->dil_w, w += pixel_words) {
                if (x < 0 || x >= in_w) {
                    for (int k = 0; k < pixel_words; ++k) {
                        w[k] = pad;
                    }
                } else {
                    tr_thin_widen(line_start + x * rank, rank, w);
                }
            }
        }
        if (at_floor) {
            tr_thin_groups_floor(wide + column_words, params->core_thin, y, y + rank_out, column_words / 2);
        } else {
            tr_thin_groups(wide + column_words, params->core_thin, y, y + rank_out, column_words / 2);
        }
    }
}
#endif

TR_KERNEL void tr_conv_tucker_int8(const tr_conv_tucker_params *params, const int8_t *input, int8_t *output,
                                   int8_t *window, int8_t *middle, int8_t *columns, int8_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after each int8 store */
    const tr_matmul_layer reduce = params->reduce, core = params->core, expand = params->expand;
    const int rank_in = params->rank_in, rank_out = params->rank_out;
    const int span = (g.k_h - 1) * g.dil_h;
    const int row_bytes = g.in_w * rank_in;
    uint32_t *scratch = (uint32_t *)(void *)wide;
#if TR_USE_DSP
    const int core_wide = params->core_thin != NULL && rank_in % 4 == 0 && rank_out % 4 == 0;
#endif
    for (int b = 0; b < g.batches; ++b) {
        const int8_t *image = input + b * g.in_h * g.in_w * g.in_c;
        int first = 0, count = 0; /* the window holds narrow rows first .. first + count - 1 */
        for (int oy = 0; oy < g.out_h; ++oy) {
            const int y0 = oy * g.stride_h - g.pad_top;
            const int top = y0 > 0 ? y0 : 0;
            const int bottom = y0 + span < g.in_h ? y0 + span : g.in_h - 1; /* last row inside the image */
            if (top >= first + count) { /* nothing kept: start afresh */
                first = top;
                count = 0;
            } else if (top > first) { /* drop the rows above the receptive field */
                count -= top - first;
                memmove(window, window + (top - first) * row_bytes, (size_t)(count * row_bytes));
                first = top;
            }
            for (; first + count <= bottom; ++count) { /* 1x1 C_in -> r1 on the new rows */
                tr_layer_rows(image + (first + count) * g.in_w * g.in_c, window + count * row_bytes, g.in_w, g.in_c,
                              rank_in, &reduce, params->reduce_thin, scratch);
            }
            /* one output row of the kxk convolution over the window; rows outside it are padding */
#if TR_USE_DSP
            if (core_wide) {
                tr_tucker_core_wide(params, window, count, top - y0, middle, scratch);
            } else
#endif
            {
                const tr_conv_geometry row = { .batches = 1, .in_h = count, .in_w = g.in_w, .in_c = rank_in,
                                               .out_h = 1, .out_w = g.out_w, .out_c = rank_out, .k_h = g.k_h,
                                               .k_w = g.k_w, .stride_h = g.stride_h, .stride_w = g.stride_w,
                                               .dil_h = g.dil_h, .dil_w = g.dil_w, .pad_top = top - y0,
                                               .pad_left = g.pad_left };
                tr_conv_matmul(&row, window, middle, (int8_t)params->core_input_zero_point, &core, params->core_thin,
                               columns, scratch);
            }
            /* 1x1 r2 -> C_out into the output row */
            tr_layer_rows(middle, output + ((b * g.out_h + oy) * g.out_w) * g.out_c, g.out_w, rank_out, g.out_c,
                          &expand, params->expand_thin, scratch);
        }
    }
}
