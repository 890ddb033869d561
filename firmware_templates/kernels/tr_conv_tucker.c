/*
 * tr_conv_tucker.c - the fused Tucker chain (tr_conv_tucker.h), row by row.
 *
 * The narrow r1-channel rows the kxk convolution needs live in `window`, computed once each
 * by the first 1x1 and shifted up as the window slides down; each kxk output row goes to
 * `middle` and the last 1x1 writes it to the output. Neither narrow tensor exists in the
 * arena. Each step is the unfused kernel's loop (tr_matmul_rows, tr_conv_matmul), or a thin
 * stream's (tr_thin.h) where the step has one, so the bytes are the same as three separate calls.
 * On the DSP path a thin k x k step over whole words (r1 and r2 multiples of 4) keeps the window
 * widened to int16 pairs instead (tr_tucker_wide): each narrow pixel is widened once, not once per
 * k x k tap, and each column is copied from it by LDM/STM.
 */
#include "tr_conv_tucker.h"

#include <string.h>

#include "tr_conv_core.h"
#include "tr_thin.h"

/* A 1x1 step (reduce C_in -> r1, expand r2 -> C_out) over `pixels` pixels: tr_layer_rows, except
 * that on the DSP path a thin step into whole groups of four outputs (and at most 128 inputs, the
 * short forms) runs tr_thin_groups straight per pixel: tr_thin_row's choice of form and partial
 * group are paid once a row, not once a pixel. Each pixel is widened before its outputs are
 * stored, as in tr_thin_row. Not inlined: two calls a row, one copy of the loop. */
static void tr_tucker_pointwise(const int8_t *x, int8_t *y, int pixels, int depth, int out_depth,
                                const tr_matmul_layer *layer, const int32_t *thin, uint32_t *wide)
{
#if TR_USE_DSP
    if (thin != NULL && out_depth % 4 == 0 && depth <= 4 * TR_THIN_WORDS) {
        const int words = (depth + 3) / 4;
        const uint32_t *x_end = wide + 2 * words;
        int8_t *end = y + pixels * out_depth;
        if (layer->output_offset == -128) { /* two loops: direct calls, fewer registers to keep */
            for (; y < end; x += depth, y += out_depth) {
                tr_thin_widen(x, depth, wide);
                tr_thin_groups_floor(x_end, thin, y, y + out_depth, words);
            }
        } else {
            for (; y < end; x += depth, y += out_depth) {
                tr_thin_widen(x, depth, wide);
                tr_thin_groups(x_end, thin, y, y + out_depth, words);
            }
        }
        return;
    }
#endif
    tr_layer_rows(x, y, pixels, depth, out_depth, layer, thin, wide);
}

#if TR_USE_DSP
/* One step of tr_tucker_column's copy: four words by LDM/STM (1 + 4 cycles each on a Cortex-M4),
 * exactly 8 bytes (two 32-bit instructions), so the entry point for n steps is 8 n before the end.
 * Sixteen steps: a run holds at most 64 words (k_w * r1 <= 128 in a thin column). */
#define TR_TUCKER_COPY_STEP "ldm.w r12!, {r4, r5, r6, r7}\n\tstm.w r0!, {r4, r5, r6, r7}\n\t"
#define TR_TUCKER_COPY_4_STEPS TR_TUCKER_COPY_STEP TR_TUCKER_COPY_STEP TR_TUCKER_COPY_STEP TR_TUCKER_COPY_STEP

/* The k x k column of one output pixel at `to` (dil_w 1): for each of the k_h kernel rows its run
 * of k_w widened pixels from its window slot (`sources[ky]` + `x` bytes), or the padding pair where
 * the row is outside the image (`sources[ky]` NULL). The two words before `sources` hold the
 * padding pair and the words of a run (even: r1 a multiple of 4). Each run jumps into the straight
 * copy steps at the point that leaves its whole steps (computed once a call, kept in lr), then
 * copies at most one LDRD/STRD pair: no loop control per four words. Written whole in assembly
 * (r4-r7 for LDM/STM leave too few registers for inline assembly with operands). */
__attribute__((naked, noinline)) static void tr_tucker_column(uint32_t *to __attribute__((unused)),
                                                              const uint32_t *const *sources __attribute__((unused)),
                                                              int k_h __attribute__((unused)),
                                                              int x __attribute__((unused)))
{
    __asm__("push {r4, r5, r6, r7, r8, r9, lr}\n\t"
            "ldrd r8, r9, [r1, #-8]\n\t" /* r8 the padding pair, r9 the words of a run */
            "lsr lr, r9, #2\n\t"
            "adr r12, 3f\n\t"
            "sub lr, r12, lr, lsl #3\n\t"
            "orr lr, lr, #1\n\t" /* a Thumb address for BX */
            "1:\n\t"
            "ldr r12, [r1], #4\n\t"
            "cmp r12, #0\n\t"
            "beq 5f\n\t"
            "add r12, r12, r3\n\t"
            "bx lr\n\t"
            ".p2align 2\n\t" TR_TUCKER_COPY_4_STEPS TR_TUCKER_COPY_4_STEPS TR_TUCKER_COPY_4_STEPS
                TR_TUCKER_COPY_4_STEPS "3:\n\t"
            "tst r9, #2\n\t" /* two words left */
            "beq 4f\n\t"
            "ldrd r4, r5, [r12]\n\t"
            "strd r4, r5, [r0], #8\n\t"
            "4:\n\t"
            "subs r2, r2, #1\n\t"
            "bne 1b\n\t"
            "pop {r4, r5, r6, r7, r8, r9, pc}\n\t"
            "5:\n\t" /* a padding row */
            "mov r12, r9\n\t"
            "6:\n\t"
            "str r8, [r0], #4\n\t"
            "subs r12, r12, #1\n\t"
            "bne 6b\n\t"
            "b 4b\n\t");
}
#undef TR_TUCKER_COPY_4_STEPS
#undef TR_TUCKER_COPY_STEP

/* `n` words of `value` at `to`: a slot's padding pixels. */
TR_INLINE void tr_tucker_fill(uint32_t *to, uint32_t value, int n)
{
    for (uint32_t *end = to + n; to < end; ++to) {
        *to = value;
    }
}

/* The whole chain on the DSP path where the k x k step is thin, both ranks are whole words and
 * each kernel row's taps are one run (dil_w 1): wide_window. The window holds the first 1x1's rows
 * already widened to int16 pairs, each pixel once (the narrow row goes through `middle`, then one
 * tr_thin_widen), in a ring of `rows` slots
 * (image row y in slot y % rows, no memmove as the window slides), each slot with the k x k's
 * left and right padding pixels filled once with the input zero point. A k x k column is then
 * k_h runs of k_w widened pixels copied by LDM/STM (not k_h * k_w narrow pixels widened again), or
 * padding for a row outside the image; tr_thin_groups runs the column's groups. `plan` (in the
 * `columns` scratch) holds tr_tucker_column's padding pair and run length, then the k_h pointers
 * to each kernel row's slot for the current output row (NULL: padding). */
static void tr_tucker_wide(const tr_conv_tucker_params *params, const int8_t *input, int8_t *output,
                           uint32_t *window, int8_t *middle, uint32_t *plan, uint32_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after each store */
    const int rank_in = params->rank_in, rank_out = params->rank_out, k_h = g.k_h, in_h = g.in_h;
    const int pixel_words = rank_in / 2; /* widened: two words per four values */
    const int reach = (g.out_w - 1) * g.stride_w + g.k_w; /* columns read, from -pad_left */
    const int pad_right = reach > g.pad_left + g.in_w ? reach - g.pad_left - g.in_w : 0;
    const int line = (g.pad_left + g.in_w + pad_right) * pixel_words; /* words of one slot */
    const int span = (k_h - 1) * g.dil_h;
    const int rows = span < in_h ? span + 1 : in_h;
    const int row_words = g.k_w * pixel_words, column_words = k_h * row_words, step = g.stride_w * pixel_words;
    const uint32_t zero = (uint32_t)params->core_input_zero_point & 0xffffu, pad = zero | zero << 16;
    tr_thin_groups_fn *core = params->core.output_offset == -128 ? tr_thin_groups_floor : tr_thin_groups;
    const uint32_t *column_end = wide + column_words;
    const uint32_t **sources = (const uint32_t **)(void *)(plan + 2);
    plan[0] = pad;
    plan[1] = (uint32_t)row_words;
    for (int s = 0; s < rows; ++s) {
        tr_tucker_fill(window + s * line, pad, g.pad_left * pixel_words);
        tr_tucker_fill(window + (s + 1) * line - pad_right * pixel_words, pad, pad_right * pixel_words);
    }
    for (int b = 0; b < g.batches; ++b) {
        const int8_t *image = input + b * in_h * g.in_w * g.in_c;
        int next = 0; /* the first image row not yet in the window */
        for (int oy = 0; oy < g.out_h; ++oy) {
            const int y0 = oy * g.stride_h - g.pad_top;
            const int bottom = y0 + span < in_h ? y0 + span : in_h - 1; /* last row inside the image */
            for (int y = next > y0 ? next : y0; y <= bottom; ++y) { /* 1x1 C_in -> r1, widened into slot */
                tr_tucker_pointwise(image + y * g.in_w * g.in_c, middle, g.in_w, g.in_c, rank_in, &params->reduce,
                                    params->reduce_thin, wide);
                tr_thin_widen(middle, g.in_w * rank_in, window + (y % rows) * line + g.pad_left * pixel_words);
            }
            next = bottom + 1 > next ? bottom + 1 : next;
            for (int ky = 0, r = y0; ky < k_h; ++ky, r += g.dil_h) {
                sources[ky] = r < 0 || r >= in_h ? NULL : window + (r % rows) * line;
            }
            /* k x k r1 -> r2 into `middle`, pixel by pixel: x is the column's first pixel in a slot */
            int8_t *y = middle;
            for (int x = 0, end = g.out_w * step; x < end; x += step, y += rank_out) {
                tr_tucker_column(wide, sources, k_h, x * 4);
                core(column_end, params->core_thin, y, y + rank_out, column_words / 2);
            }
            /* 1x1 r2 -> C_out into the output row */
            tr_tucker_pointwise(middle, output + ((b * g.out_h + oy) * g.out_w) * g.out_c, g.out_w, rank_out, g.out_c,
                                &params->expand, params->expand_thin, wide);
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
    if (params->wide_window) {
        tr_tucker_wide(params, input, output, (uint32_t *)(void *)window, middle, (uint32_t *)(void *)columns,
                       scratch);
        return;
    }
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
                tr_tucker_pointwise(image + (first + count) * g.in_w * g.in_c, window + count * row_bytes, g.in_w,
                                    g.in_c, rank_in, &reduce, params->reduce_thin, scratch);
            }
            /* one output row of the kxk convolution over the window; rows outside it are padding */
            const tr_conv_geometry row = { .batches = 1, .in_h = count, .in_w = g.in_w, .in_c = rank_in,
                                           .out_h = 1, .out_w = g.out_w, .out_c = rank_out, .k_h = g.k_h,
                                           .k_w = g.k_w, .stride_h = g.stride_h, .stride_w = g.stride_w,
                                           .dil_h = g.dil_h, .dil_w = g.dil_w, .pad_top = top - y0,
                                           .pad_left = g.pad_left };
            tr_conv_matmul(&row, window, middle, (int8_t)params->core_input_zero_point, &core, params->core_thin,
                           columns, scratch);
            /* 1x1 r2 -> C_out into the output row */
            tr_tucker_pointwise(middle, output + ((b * g.out_h + oy) * g.out_w) * g.out_c, g.out_w, rank_out,
                                g.out_c, &expand, params->expand_thin, scratch);
        }
    }
}
