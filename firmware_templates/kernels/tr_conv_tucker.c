/*
 * tr_conv_tucker.c - the fused Tucker chain (tr_conv_tucker.h), row by row.
 *
 * The narrow r1-channel rows the kxk convolution needs live in `window`, computed once each
 * by the first 1x1 and shifted up as the window slides down; each kxk output row goes to
 * `middle` and the last 1x1 writes it to the output. Neither narrow tensor exists in the
 * arena. Each step is the unfused kernel's loop (tr_matmul_rows, tr_conv_matmul), so the bytes
 * are the same as three separate calls.
 */
#include "tr_conv_tucker.h"

#include <string.h>

#include "tr_conv_core.h"

TR_KERNEL void tr_conv_tucker_int8(const tr_conv_tucker_params *params, const int8_t *input, int8_t *output,
                                   int8_t *window, int8_t *middle, int8_t *columns, int8_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after each int8 store */
    const tr_matmul_layer reduce = params->reduce, core = params->core, expand = params->expand;
    const int rank_in = params->rank_in, rank_out = params->rank_out;
    const int span = (g.k_h - 1) * g.dil_h;
    const int row_bytes = g.in_w * rank_in;
    uint32_t *scratch = (uint32_t *)(void *)wide;
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
                tr_matmul_rows(image + (first + count) * g.in_w * g.in_c, window + count * row_bytes, g.in_w, g.in_c,
                               rank_in, &reduce, scratch);
            }
            /* one output row of the kxk convolution over the window; rows outside it are padding */
            const tr_conv_geometry row = { .batches = 1, .in_h = count, .in_w = g.in_w, .in_c = rank_in, .out_h = 1,
                                           .out_w = g.out_w, .out_c = rank_out, .k_h = g.k_h, .k_w = g.k_w,
                                           .stride_h = g.stride_h, .stride_w = g.stride_w, .dil_h = g.dil_h,
                                           .dil_w = g.dil_w, .pad_top = top - y0, .pad_left = g.pad_left };
            tr_conv_matmul(&row, window, middle, (int8_t)params->core_input_zero_point, &core, NULL, columns, scratch);
            /* 1x1 r2 -> C_out into the output row */
            tr_matmul_rows(middle, output + ((b * g.out_h + oy) * g.out_w) * g.out_c, g.out_w, rank_out, g.out_c,
                           &expand, scratch);
        }
    }
}
