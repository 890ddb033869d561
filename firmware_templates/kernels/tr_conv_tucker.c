/*
 * tr_conv_tucker.c - the fused Tucker chain (tr_conv_tucker.h), row by row.
 *
 * The narrow r1-channel rows the kxk convolution needs live in `window`, computed once each
 * by the first 1x1 and shifted up as the window slides down; each kxk output row goes to
 * `middle` and the last 1x1 writes it to the output. Neither narrow tensor exists in the
 * arena. Each step is the unfused kernel's loop (tr_matmul_rows, tr_conv_matmul), or a thin
 * stream's (tr_thin.h) where the step has one, so the bytes are the same as three separate calls.
 * On the DSP path a thin k x k step over whole words (r1 and r2 multiples of 4, dil_w 1) keeps the
 * window widened to int16 pairs instead (tr_tucker_wide, the generator's wide_window): each narrow
 * pixel is widened once, not once per k x k tap, each column is copied from it by LDM/STM, and
 * each row of a step runs in one assembly loop (tr_tucker_core_row, tr_tucker_pixels) that calls
 * tr_thin_groups per pixel. bench_factored, Tucker 3x3 32-8:8-32 at 12x12 on the Cortex-M4:
 * 176,200 instructions against 222,000 with the narrow window (1.047 x the dense layer per MAC).
 */
#include "tr_conv_tucker.h"

#include <string.h>

#include "tr_conv_core.h"
#include "tr_thin.h"

#if TR_USE_DSP
/* What tr_tucker_pixels reads (byte offsets in its assembly: 32-bit pointers), set once a row. */
typedef struct {
    uint32_t *wide;            /*  0: the widened pixel (the `wide` scratch) */
    const int32_t *stream;     /*  4: the step's thin stream */
    int32_t words;             /*  8: input words of a pixel (depth / 4) */
    int32_t depth;             /* 12: values of a pixel, a multiple of 4, at least 8 */
    int32_t out_depth;         /* 16: bytes of y per pixel */
    tr_thin_groups_fn *groups; /* 20: tr_thin_groups or its _floor form */
} tr_tucker_pixels_plan;
typedef char tr_tucker_pixels_plan_layout[offsetof(tr_tucker_pixels_plan, groups) == 20 ? 1 : -1];

/* A thin 1x1 step over the pixels from x into y .. y_end (depth a multiple of 4 and at least 8,
 * whole groups of four outputs): per pixel its depth values widened into plan->wide (tr_thin_widen's
 * passes of eight, then at most one word; r0 ends at the widened row's end, the groups' first
 * argument), then plan->groups. Before any output of the pixel is stored its row is read whole, as
 * in tr_thin_pass_row. Written whole in assembly: the loop state lives in r8-r11 across the call of the
 * groups (which keep them), so that a pixel costs about a dozen instructions besides its widening
 * and its groups, not two dozen from a C frame (r8 x, r9 y, r10 y_end, r11 the plan; [sp] the
 * groups' fifth argument). */
__attribute__((naked, noinline)) static void tr_tucker_pixels(const tr_tucker_pixels_plan *plan
                                                              __attribute__((unused)),
                                                              const int8_t *x __attribute__((unused)),
                                                              int8_t *y __attribute__((unused)),
                                                              int8_t *y_end __attribute__((unused)))
{
    __asm__("push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
            "sub sp, sp, #12\n\t" /* 48 bytes: the stack stays 8-byte aligned for the call */
            "mov r11, r0\n\t"
            "mov r8, r1\n\t"
            "mov r9, r2\n\t"
            "mov r10, r3\n\t"
            "ldr r12, [r11, #8]\n\t"
            "str r12, [sp]\n\t"
            "1:\n\t" /* a pixel: r0 the widened values, r12 the end of the passes, r1 the depth */
            "ldr r0, [r11]\n\t"
            "ldr r1, [r11, #12]\n\t"
            "bic r12, r1, #7\n\t"
            "add r12, r12, r8\n\t"
            "2:\n\t" /* eight values: (x0, x2), (x1, x3), (x4, x6), (x5, x7) */
            "ldr r5, [r8, #4]\n\t"
            "ldr r4, [r8], #8\n\t"
            "sxtb16 r6, r5\n\t"
            "sxtb16 r7, r5, ror #8\n\t"
            "sxtb16 r5, r4, ror #8\n\t"
            "sxtb16 r4, r4\n\t"
            "stm r0!, {r4, r5, r6, r7}\n\t"
            "cmp r8, r12\n\t"
            "bne 2b\n\t"
            "tst r1, #4\n\t" /* four values more */
            "beq 3f\n\t"
            "ldr r4, [r8], #4\n\t"
            "sxtb16 r5, r4, ror #8\n\t"
            "sxtb16 r4, r4\n\t"
            "strd r4, r5, [r0], #8\n\t"
            "3:\n\t" /* groups(r0, stream, y, y + out_depth, words) */
            "ldr r1, [r11, #4]\n\t"
            "mov r2, r9\n\t"
            "ldr r3, [r11, #16]\n\t"
            "add r9, r9, r3\n\t"
            "mov r3, r9\n\t"
            "ldr r12, [r11, #20]\n\t"
            "blx r12\n\t"
            "cmp r9, r10\n\t"
            "bne 1b\n\t"
            "add sp, sp, #12\n\t"
            "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");
}
#endif

/* A 1x1 step (reduce C_in -> r1, expand r2 -> C_out) over `pixels` pixels: tr_layer_rows, except
 * that on the DSP path a thin step of whole words (depth a multiple of 4, from 8 to 128) into whole
 * groups of four outputs runs tr_tucker_pixels: tr_thin_pass_row's choice of form, partial group and
 * call are paid once a row, not once a pixel. */
static void tr_tucker_pointwise(const int8_t *x, int8_t *y, int pixels, int depth, int out_depth,
                                const tr_matmul_layer *layer, const int32_t *thin, uint32_t *wide)
{
#if TR_USE_DSP
    if (thin != NULL && out_depth % 4 == 0 && depth % 4 == 0 && depth >= 8 && depth <= 4 * TR_THIN_WORDS &&
        pixels > 0) {
        const tr_tucker_pixels_plan plan = {
            .wide = wide, .stream = thin, .words = depth / 4, .depth = depth, .out_depth = out_depth,
            .groups = layer->output_offset == -128 ? tr_thin_groups_floor : tr_thin_groups,
        };
        tr_tucker_pixels(&plan, x, y, y + pixels * out_depth);
        return;
    }
#endif
    tr_layer_rows(x, y, pixels, depth, out_depth, layer, thin, wide);
}

#if TR_USE_DSP
/* What tr_tucker_core_row reads (byte offsets in its assembly: 32-bit pointers), set once a call
 * of the chain but for `sources`, set once an output row. */
typedef struct {
    int32_t run;                /*  0: words of one kernel row's run of k_w widened pixels (even) */
    uint32_t *column;           /*  4: the column (the `wide` scratch) */
    const int32_t *stream;      /*  8: the k x k step's thin stream */
    int32_t words;              /* 12: input words of the column (k_h * k_w * r1 / 4) */
    int32_t step;               /* 16: bytes from one output pixel's first window pixel to the next */
    tr_thin_groups_fn *groups;  /* 20: tr_thin_groups or its _floor form */
    int32_t rank_out;           /* 24: r2, bytes of `middle` per output pixel */
    int32_t k_h;                /* 28 */
    const uint32_t *sources[];  /* 32: each kernel row's window slot */
} tr_tucker_core_plan;
typedef char tr_tucker_core_plan_layout[offsetof(tr_tucker_core_plan, sources) == 32 ? 1 : -1];

/* One step of tr_tucker_core_row's copy: four words by LDM/STM (1 + 4 cycles each on a Cortex-M4),
 * exactly 8 bytes (two 32-bit instructions), so the entry point for n steps is 8 n before the end.
 * Sixteen steps: a run holds at most 64 words (k_w * r1 <= 128 in a thin column). */
#define TR_TUCKER_COPY_STEP "ldm.w r12!, {r4, r5, r6, r7}\n\tstm.w r0!, {r4, r5, r6, r7}\n\t"
#define TR_TUCKER_COPY_4_STEPS TR_TUCKER_COPY_STEP TR_TUCKER_COPY_STEP TR_TUCKER_COPY_STEP TR_TUCKER_COPY_STEP

/* One output row of the k x k step (dil_w 1), r1 -> r2 into y .. y_end: per output pixel its
 * column is copied into plan->column, for each of the k_h kernel rows the run of k_w widened pixels
 * from its window slot (sources[ky] + the pixel's offset), then plan->groups runs the column's
 * groups. Each run jumps into the straight copy steps at the point that leaves its whole steps
 * (computed once a call, kept at [sp, #4]), then copies at most one LDRD/STRD pair: no loop
 * control per four words. Written whole in assembly: LDM/STM need r4-r7, and the loop state lives
 * in r8-r11 across the call of the groups (which keep them), so that a pixel costs no reloads from
 * a C frame (r8 the pixel's offset in bytes, r9 y_end, r10 the plan, r11 y; [sp] the groups' fifth
 * argument). */
__attribute__((naked, noinline)) static void tr_tucker_core_row(const tr_tucker_core_plan *plan
                                                                __attribute__((unused)),
                                                                int8_t *y __attribute__((unused)),
                                                                int8_t *y_end __attribute__((unused)))
{
    __asm__("push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
            "sub sp, sp, #12\n\t" /* 48 bytes: the stack stays 8-byte aligned for the call */
            "mov r10, r0\n\t"
            "mov r11, r1\n\t"
            "mov r9, r2\n\t"
            "ldr r12, [r10, #12]\n\t"
            "str r12, [sp]\n\t"
            "ldr r3, [r10]\n\t" /* r3 the words of a run */
            "lsr r12, r3, #2\n\t"
            "adr lr, 3f\n\t"
            "sub lr, lr, r12, lsl #3\n\t"
            "orr lr, lr, #1\n\t" /* a Thumb address for LDR PC */
            "str lr, [sp, #4]\n\t"
            "mov r8, #0\n\t"
            "1:\n\t" /* an output pixel: r0 the column, r1 the sources, r2 the kernel rows left */
            "ldr r0, [r10, #4]\n\t"
            "add r1, r10, #32\n\t"
            "ldr r2, [r10, #28]\n\t"
            "2:\n\t"
            "ldr r12, [r1], #4\n\t"
            "add r12, r12, r8\n\t"
            "ldr pc, [sp, #4]\n\t"
            ".p2align 2\n\t" TR_TUCKER_COPY_4_STEPS TR_TUCKER_COPY_4_STEPS TR_TUCKER_COPY_4_STEPS
                TR_TUCKER_COPY_4_STEPS "3:\n\t"
            "tst r3, #2\n\t" /* two words left */
            "beq 4f\n\t"
            "ldrd r4, r5, [r12]\n\t"
            "strd r4, r5, [r0], #8\n\t"
            "4:\n\t"
            "subs r2, r2, #1\n\t"
            "bne 2b\n\t"
            "ldr r1, [r10, #8]\n\t" /* groups(r0: the column's end, stream, y, y + r2, words) */
            "mov r2, r11\n\t"
            "ldr r3, [r10, #24]\n\t"
            "add r11, r11, r3\n\t"
            "mov r3, r11\n\t"
            "ldr r12, [r10, #20]\n\t"
            "blx r12\n\t"
            "ldr r3, [r10, #16]\n\t"
            "add r8, r8, r3\n\t"
            "ldr r3, [r10]\n\t"
            "cmp r11, r9\n\t"
            "bne 1b\n\t"
            "add sp, sp, #12\n\t"
            "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");
}
#undef TR_TUCKER_COPY_4_STEPS
#undef TR_TUCKER_COPY_STEP

/* `n` words of `value` at `to`: a slot's padding pixels, or a whole padding row. */
TR_INLINE void tr_tucker_fill(uint32_t *to, uint32_t value, int n)
{
    for (uint32_t *end = to + n; to < end; ++to) {
        *to = value;
    }
}

/* The whole chain on the DSP path where the k x k step is thin, both ranks are whole words and
 * each kernel row's taps are one run (dil_w 1): wide_window. The window holds the first 1x1's rows
 * already widened to int16 pairs, each pixel once (the narrow row goes through `middle`, then one
 * tr_thin_widen), in a ring of `rows` = span + 1 slots (row y in slot y mod rows: no memmove as the
 * window slides), each slot with the k x k's left and right padding pixels filled once with the
 * input zero point. The rows an output row reads are span + 1 consecutive ones, so each has a slot
 * of its own: a row outside the image (top or bottom padding) gets its slot filled with the zero
 * point (that slot holds no row still to be read: below the top, a row not computed yet; past the
 * bottom, one above the receptive field), and every kernel row is copied alike. A k x k column is
 * then k_h runs of k_w widened pixels copied by LDM/STM (not k_h * k_w narrow pixels widened
 * again), and tr_thin_groups runs its groups (tr_tucker_core_row, from `plan`, in the `columns`
 * scratch). */
static void tr_tucker_wide(const tr_conv_tucker_params *params, const int8_t *input, int8_t *output,
                           uint32_t *window, int8_t *middle, tr_tucker_core_plan *plan, uint32_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after each store */
    const int rank_in = params->rank_in, rank_out = params->rank_out, k_h = g.k_h, in_h = g.in_h;
    const int pixel_words = rank_in / 2; /* widened: two words per four values */
    const int reach = (g.out_w - 1) * g.stride_w + g.k_w; /* columns read, from -pad_left */
    const int pad_right = reach > g.pad_left + g.in_w ? reach - g.pad_left - g.in_w : 0;
    const int line = (g.pad_left + g.in_w + pad_right) * pixel_words; /* words of one slot */
    const int span = (k_h - 1) * g.dil_h;
    const int rows = span + 1;
    const int row_words = g.k_w * pixel_words, column_words = k_h * row_words;
    const uint32_t zero = (uint32_t)params->core_input_zero_point & 0xffffu, pad = zero | zero << 16;
    plan->run = row_words;
    plan->column = wide;
    plan->stream = params->core_thin;
    plan->words = column_words / 2;
    plan->step = 4 * g.stride_w * pixel_words;
    plan->groups = params->core.output_offset == -128 ? tr_thin_groups_floor : tr_thin_groups;
    plan->rank_out = rank_out;
    plan->k_h = k_h;
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
                uint32_t *slot = window + ((r % rows + rows) % rows) * line;
                if (r < 0 || r >= in_h) { /* padding: the zero point in place of the row */
                    tr_tucker_fill(slot + g.pad_left * pixel_words, pad, g.in_w * pixel_words);
                }
                plan->sources[ky] = slot;
            }
            tr_tucker_core_row(plan, middle, middle + g.out_w * rank_out); /* k x k r1 -> r2 */
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
        tr_tucker_wide(params, input, output, (uint32_t *)(void *)window, middle,
                       (tr_tucker_core_plan *)(void *)columns, scratch);
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
