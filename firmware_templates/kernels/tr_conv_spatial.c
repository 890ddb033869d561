/*
 * tr_conv_spatial.c - a spatially factored convolution (CONV_2D k_h x 1, then 1 x k_w) in one call.
 *
 * Row by row: the first convolution writes one narrow row (in_w x r bytes) into `row` (scratch)
 * and the second turns it into one output row, so the narrow tensor never exists in the arena.
 * Both steps are the CONV_2D loop (tr_conv_matmul in tr_conv_core.h) on one output row: the bytes
 * are those of the two separate calls. A step whose columns hold at most 128 values (k x r, k x C_in)
 * may run from a thin int16 stream (tr_thin.h) instead of int8 weights. On the DSP path a thin
 * 1 x k_w step over whole words of channels (r a multiple of 4, C_out of 4, no dilation) skips the
 * columns: the narrow row is widened once, padding included, and each output pixel's column is a
 * run of that widened row (tr_spatial_across_wide); likewise a thin k_h x 1 step over whole
 * words (C_in and r multiples of 4, no dilation across) widens each pixel's k_h input runs
 * straight from the image into its column (tr_spatial_tall_wide), with no im2col copy. On the plain
 * C path a thin 1 x k_w step (no dilation) reads its columns from the narrow row written between
 * its padding pixels (tr_spatial_pad_row), also with no im2col copy.
 */
#include "tr_conv_spatial.h"

#include "tr_conv_core.h"

#if !TR_USE_DSP
/* The plain C path's padded narrow row (a thin 1 x k_w step, no dilation across: `across_plain`):
 * the k_w step's left and right padding pixels, as the narrow zero point, either side of the
 * in_w pixels that the k_h x 1 step writes (`row` is sized for them by the generator). Filled once
 * a call: the k_h x 1 step never writes them. Returns where the k_h x 1 step's row starts. */
static int8_t *tr_spatial_pad_row(const tr_conv_spatial_params *params, int8_t *row)
{
    const tr_conv_geometry *g = &params->geometry;
    const int rank = params->rank, span = (g->out_w - 1) * g->stride_w + g->k_w; /* pixels read */
    const int pad_right = span > g->pad_left + g->in_w ? span - g->pad_left - g->in_w : 0;
    memset(row, params->narrow_zero_point, (size_t)(g->pad_left * rank));
    memset(row + (g->pad_left + g->in_w) * rank, params->narrow_zero_point, (size_t)(pad_right * rank));
    return row + g->pad_left * rank;
}
#endif

#if TR_USE_DSP
/* The thin 1 x k_w step of output row `y` from narrow row `row` (in_w x r): the row widened
 * (int16 pairs) into `wide` between pad_left pixels and the right padding that the last
 * output pixel reads, all padding as the narrow zero point, so that output pixel ox's column
 * is the k_w pixels of the widened row from ox x stride_w on. */
static void tr_spatial_across_wide(const tr_conv_spatial_params *params, const int8_t *row, int8_t *y,
                                   uint32_t *wide)
{
    const tr_conv_geometry *g = &params->geometry;
    const int rank = params->rank, out_w = g->out_w, out_c = g->out_c, stride = g->stride_w, k_w = g->k_w;
    const int pixel_words = rank / 2, span = (out_w - 1) * stride + k_w; /* widened pixels read */
    const int inside = span - g->pad_left < g->in_w ? span - g->pad_left : g->in_w;
    const uint32_t zero = (uint32_t)params->narrow_zero_point & 0xffffu;
    const uint32_t pad = zero | zero << 16;
    uint32_t *w = wide;
    for (uint32_t *end = w + g->pad_left * pixel_words; w < end; ++w) {
        *w = pad;
    }
    tr_widen_row(row, inside * rank, w, 2, 0);
    for (w += inside * pixel_words; w < wide + span * pixel_words; ++w) {
        *w = pad;
    }
    const uint32_t *x_end = wide + k_w * pixel_words;  /* output pixel 0's column ends here */
    const int at_floor = params->second.output_offset == -128; /* tr_thin_groups_floor applies */
    for (int ox = 0; ox < out_w; ++ox, x_end += stride * pixel_words, y += out_c) {
        if (at_floor) {
            tr_thin_groups_floor(x_end, params->second_thin, y, y + out_c, k_w * rank / 4);
        } else {
            tr_thin_groups(x_end, params->second_thin, y, y + out_c, k_w * rank / 4);
        }
    }
}

/* The thin k_h x 1 step into narrow row `row` (in_w x r) from output row oy's input rows: per
 * pixel its k_h input runs (in_c values each, rows outside the image as the input zero point)
 * widened into one column, then the groups of tr_thin_groups. */
static void tr_spatial_tall_wide(const tr_conv_spatial_params *params, const int8_t *image, int oy, int8_t *row,
                                 uint32_t *wide)
{
    const tr_conv_geometry *g = &params->geometry;
    const int in_c = g->in_c, in_w = g->in_w, k_h = g->k_h, rank = params->rank, run_words = in_c / 2;
    const int y0 = oy * g->stride_h - g->pad_top, dil_h = g->dil_h, line = in_w * in_c;
    const uint32_t zero = (uint32_t)params->input_zero_point & 0xffffu;
    const uint32_t pad = zero | zero << 16;
    const int8_t *pixel = image;
    for (int x = 0; x < in_w; ++x, pixel += in_c, row += rank) {
        uint32_t *w = wide;
        for (int ky = 0, y = y0; ky < k_h; ++ky, y += dil_h, w += run_words) {
            if (y < 0 || y >= g->in_h) {
                for (int k = 0; k < run_words; ++k) {
                    w[k] = pad;
                }
            } else {
                tr_widen_row(pixel + y * line, in_c, w, 2, 0);
            }
        }
        if (params->first.output_offset == -128) {
            tr_thin_groups_floor(w, params->first_thin, row, row + rank, k_h * in_c / 4);
        } else {
            tr_thin_groups(w, params->first_thin, row, row + rank, k_h * in_c / 4);
        }
    }
}
#endif

TR_KERNEL void tr_conv_spatial_int8(const tr_conv_spatial_params *params, const int8_t *input, int8_t *output,
                                    int8_t *row, int8_t *columns, int8_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after stores */
    const tr_matmul_layer first = params->first, second = params->second;
    const int8_t zero_point1 = (int8_t)params->input_zero_point, zero_point2 = (int8_t)params->narrow_zero_point;
    /* narrow row oy of one image: the k_h x 1 convolution with its padding shifted to that row */
    tr_conv_geometry tall = { .batches = 1, .in_h = g.in_h, .in_w = g.in_w, .in_c = g.in_c, .out_h = 1,
                              .out_w = g.in_w, .out_c = params->rank, .k_h = g.k_h, .k_w = 1,
                              .stride_h = g.stride_h, .stride_w = 1, .dil_h = g.dil_h, .dil_w = 1 };
    /* output row oy: the 1 x k_w convolution over the narrow row */
    const tr_conv_geometry across = { .batches = 1, .in_h = 1, .in_w = g.in_w, .in_c = params->rank, .out_h = 1,
                                        .out_w = g.out_w, .out_c = g.out_c, .k_h = 1, .k_w = g.k_w, .stride_h = 1,
                                        .stride_w = g.stride_w, .dil_h = 1, .dil_w = g.dil_w,
                                        .pad_left = g.pad_left };
#if !TR_USE_DSP
    /* the 1 x k_w step straight from the padded narrow row: output pixel ox's column is the k_w * r
     * bytes from padded pixel ox * stride_w on, every pixel of a row in one tr_thin_pass_rows (one
     * call of the Cortex-M3's assembly), with no im2col copy */
    const int across_plain = params->second_thin != NULL && g.dil_w == 1;
    const tr_thin_pass across_pass =
        tr_thin_prepare(g.k_w * params->rank, params->second_thin, g.out_c, second.output_offset);
    int8_t *const padded = row;
    if (across_plain) {
        row = tr_spatial_pad_row(params, padded);
    }
#else
    /* the 1 x k_w step straight from the widened narrow row (`wide` sized for it by the generator) */
    const int across_wide = params->second_thin != NULL && params->rank % 4 == 0 && g.out_c % 4 == 0 && g.dil_w == 1;
    /* the k_h x 1 step widened straight from the image (its column fits the matmul scratch) */
    const int tall_wide = params->first_thin != NULL && g.in_c % 4 == 0 && params->rank % 4 == 0;
#endif
    for (int b = 0; b < g.batches; ++b) {
        const int8_t *image = input + b * g.in_h * g.in_w * g.in_c;
        for (int oy = 0; oy < g.out_h; ++oy) {
#if TR_USE_DSP
            if (tall_wide) {
                tr_spatial_tall_wide(params, image, oy, row, (uint32_t *)(void *)wide);
            } else
#endif
            {
                tall.pad_top = g.pad_top - oy * g.stride_h;
                tr_conv_matmul(&tall, image, row, zero_point1, &first, params->first_thin, columns,
                               (uint32_t *)(void *)wide);
            }
            int8_t *y = output + ((b * g.out_h + oy) * g.out_w) * g.out_c;
#if !TR_USE_DSP
            if (across_plain) {
                tr_thin_pass_rows(&across_pass, padded, g.stride_w * params->rank, y, g.out_w,
                                  (uint32_t *)(void *)wide);
                continue;
            }
#else
            if (across_wide) {
                tr_spatial_across_wide(params, row, y, (uint32_t *)(void *)wide);
                continue;
            }
#endif
            tr_conv_matmul(&across, row, y, zero_point2, &second, params->second_thin, columns,
                           (uint32_t *)(void *)wide);
        }
    }
}
