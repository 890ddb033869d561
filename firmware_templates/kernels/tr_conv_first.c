/*
 * tr_conv_first.c - TFLite CONV_2D over one to three input channels: a network's first layer.
 *
 * Its columns are short (27 values for a 3x3 over RGB, 40 for DS-CNN's 10x4) and its outputs
 * few (8 for MobileNet), so the general im2col loop (tr_conv_core.h) spent more on gathering
 * and widening each column than on its MACs: on the Cortex-M4 MobileNet's first layer took 3.0
 * instructions per MAC, 0.75 of them in the gather and 0.3 in widening the two columns apart.
 * Here, on the DSP path, a pixel whose window lies inside the image gathers its column as k_h
 * runs of k_w * in_c bytes copied a word at a time (no call, no per-tap test), and the two
 * columns of a pixel pair are widened in one pass straight into the interleaved int16 pairs
 * the matmul tiles read (tr_matmul_row_pair with x0 == NULL), doubled for a doubled table.
 * An edge pixel pads each kernel row a word at a time and copies its taps inside the image
 * over the padding (dilation across: tr_conv_fill_column, tap by tap). The MACs and the
 * requantization are the matmul loops' (tr_matmul.h), so the bytes are TFLite Micro's.
 * The plain C path (Cortex-M0/M3) runs the general im2col loop unchanged.
 */
#include "tr_conv_first.h"

#include "tr_conv_core.h"

#if TR_USE_DSP

/* Two columns of `words` words each (c0, then c1 at c0 + 4 * words) widened into `wide`,
 * interleaved as tr_matmul_row_pair reads them: per input word, c0's (x0 x2), (x1 x3), then
 * c1's, stored by one STM; doubled (SADD16) for a doubled table. The bytes past the depth in the
 * last word weigh zero in the matmul layout. */
#define TR_FIRST_WIDEN(DOUBLE) \
    "1:\n\t" \
    "ldr r9, [%[c0]], #4\n\t" \
    "ldr r11, [%[c1]], #4\n\t" \
    "sxtb16 r8, r9\n\t" \
    "sxtb16 r9, r9, ror #8\n\t" \
    "sxtb16 r10, r11\n\t" \
    "sxtb16 r11, r11, ror #8\n\t" DOUBLE \
    "stmia %[w]!, {r8, r9, r10, r11}\n\t" \
    "subs %[n], %[n], #1\n\t" \
    "bne 1b\n\t"
#define TR_FIRST_DOUBLE \
    "sadd16 r8, r8, r8\n\t" \
    "sadd16 r9, r9, r9\n\t" \
    "sadd16 r10, r10, r10\n\t" \
    "sadd16 r11, r11, r11\n\t"
TR_INLINE void tr_first_widen_pair(const int8_t *c0, uint32_t *wide, int words, int doubled)
{
    const int8_t *c1 = c0 + 4 * words;
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    if (doubled) {
        __asm__ volatile(TR_FIRST_WIDEN(TR_FIRST_DOUBLE)
                         : [c0] "+r"(c0), [c1] "+r"(c1), [w] "+r"(wide), [n] "+r"(words), "=&r"(r8), "=&r"(r9),
                           "=&r"(r10), "=&r"(r11)
                         :
                         : "cc", "memory");
    } else {
        __asm__ volatile(TR_FIRST_WIDEN("")
                         : [c0] "+r"(c0), [c1] "+r"(c1), [w] "+r"(wide), [n] "+r"(words), "=&r"(r8), "=&r"(r9),
                           "=&r"(r10), "=&r"(r11)
                         :
                         : "cc", "memory");
    }
}
#undef TR_FIRST_WIDEN
#undef TR_FIRST_DOUBLE

/* One word from src to dst, both unaligned (one LDR and one STR on the M3/M4/M33). */
TR_INLINE void tr_first_copy_word(int8_t *dst, const int8_t *src)
{
    uint32_t word;
    memcpy(&word, src, 4);
    memcpy(dst, &word, 4);
}

/* `run` (at least four) bytes from src to column, a word at a time, the last word overlapping
 * the one before (a 9-byte run of a 3x3 over RGB is three words). */
TR_INLINE void tr_first_copy_run(int8_t *column, const int8_t *src, int run)
{
    const int last = run - 4;
    tr_first_copy_word(column, src);
    if (last > 4) { /* runs of up to twelve bytes without a loop: 3x3 over RGB, 4 or 8 taps of one channel */
        tr_first_copy_word(column + 4, src + 4);
        for (int k = 8; k < last; k += 4) {
            tr_first_copy_word(column + k, src + k);
        }
    }
    if (last > 0) {
        tr_first_copy_word(column + last, src + last);
    }
}

/* The column of a pixel whose window lies inside the image: k_h runs of `run` bytes,
 * `row_step` apart. */
TR_INLINE void tr_first_copy_runs(int8_t *column, const int8_t *window, int k_h, int run, int row_step)
{
    for (int ky = 0; ky < k_h; ++ky, window += row_step, column += run) {
        tr_first_copy_run(column, window, run);
    }
}

/* `run` (at least four) bytes of the input zero point (`pad_word`: four of them) into column,
 * a word at a time as tr_first_copy_run. */
TR_INLINE void tr_first_pad_run(int8_t *column, uint32_t pad_word, int run)
{
    for (int k = 0; k < run - 4; k += 4) {
        memcpy(column + k, &pad_word, 4);
    }
    memcpy(column + run - 4, &pad_word, 4);
}

/* The column of a pixel whose window crosses the image's edge: each kernel row is `run` bytes
 * of padding (`pad_word`) with, for a row inside the image, its taps inside the image copied
 * over them. (tr_conv_fill_column goes tap by tap, a memset or copy each: about a thousand
 * instructions for one of DS-CNN's 10x4 edge pixels, more than half of its pixels.) */
static __attribute__((noinline)) void tr_first_edge_column(const tr_conv_geometry *g, const int8_t *image, int y0,
                                                           int x0, int run, uint32_t pad_word, int8_t *column)
{
    const int in_c = g->in_c, row_bytes = g->in_w * in_c, dil_h = g->dil_h, in_h = g->in_h;
    const int first = x0 < 0 ? -x0 : 0;                                     /* the first tap inside */
    const int end = x0 + g->k_w > g->in_w ? g->in_w - x0 : g->k_w;          /* past the last one */
    const int offset = first * in_c, bytes = end > first ? (end - first) * in_c : 0;
    for (int ky = 0, y = y0; ky < g->k_h; ++ky, y += dil_h, column += run) {
        tr_first_pad_run(column, pad_word, run);
        if ((unsigned)y < (unsigned)in_h && bytes > 0) {
            tr_copy_bytes(column + offset, image + y * row_bytes + (x0 + first) * in_c, bytes);
        }
    }
}

/* The whole convolution, two output pixels at a time (across output rows), on the DSP path.
 * Out of line, with the geometry behind one pointer, as tr_conv_fill_column. */
static __attribute__((noinline)) void tr_first_pixels(const tr_conv_geometry *g, const int8_t *input,
                                                      int8_t *output, int8_t pad_value,
                                                      const tr_matmul_layer *layer, int8_t *columns,
                                                      uint32_t *wide)
{
    const int depth = g->k_h * g->k_w * g->in_c, words = (depth + 3) / 4, out_c = g->out_c;
    const int pixels = g->out_h * g->out_w, out_w = g->out_w, in_c = g->in_c, k_h = g->k_h;
    const int stride_w = g->stride_w, row_bytes = g->in_w * in_c;
    /* runs of whole words (no dilation across, at least four bytes) where the window is inside */
    const int run = g->dil_w == 1 && g->k_w * in_c >= 4 ? g->k_w * in_c : 0;
    /* the last window origins inside the image (negative: a kernel larger than the image) */
    const int x_last = g->in_w - g->k_w, y_last = g->in_h - 1 - (k_h - 1) * g->dil_h;
    const int row_step = g->dil_h * row_bytes, image_bytes = g->in_h * row_bytes;
    const int doubled = (int)layer->doubled;
    const uint32_t pad_word = 0x01010101u * (uint8_t)pad_value;
    for (int b = 0; b < g->batches; ++b) {
        const int8_t *image = input + b * image_bytes;
        int y0 = -g->pad_top, x0 = -g->pad_left, ox = 0;
        for (int p = 0; p < pixels; p += 2) {
            const int rows = pixels - p < 2 ? 1 : 2;
            for (int r = 0; r < rows; ++r) {
                int8_t *column = columns + 4 * words * r;
                if (!run) {
                    tr_conv_fill_column(g, image, y0, x0, pad_value, column);
                } else if (x0 >= 0 && x0 <= x_last && y0 >= 0 && y0 <= y_last) {
                    tr_first_copy_runs(column, image + y0 * row_bytes + x0 * in_c, k_h, run, row_step);
                } else {
                    tr_first_edge_column(g, image, y0, x0, run, pad_word, column);
                }
                x0 += stride_w;
                if (++ox == out_w) {
                    ox = 0;
                    x0 = -g->pad_left;
                    y0 += g->stride_h;
                }
            }
            if (rows == 2) {
                tr_first_widen_pair(columns, wide, words, doubled);
                tr_matmul_row_pair(NULL, NULL, wide, layer->filter, layer->channels, output, output + out_c, depth,
                                   out_c, doubled, layer->output_offset, layer->act_min, layer->act_max);
            } else {
                tr_matmul_row(columns, wide, layer->filter, layer->channels, output, depth, out_c, doubled,
                              layer->output_offset, layer->act_min, layer->act_max);
            }
            output += rows * out_c;
        }
    }
}

#endif /* TR_USE_DSP */

TR_KERNEL void tr_conv_first_int8(const tr_conv_first_params *params, const int8_t *input, int8_t *output,
                                  int8_t *columns, int8_t *wide)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after each int8 store */
    const tr_matmul_layer layer = params->layer;
#if TR_USE_DSP
    tr_first_pixels(&g, input, output, (int8_t)params->input_zero_point, &layer, columns, (uint32_t *)(void *)wide);
#else
    tr_conv_matmul(&g, input, output, (int8_t)params->input_zero_point, &layer, NULL, columns,
                   (uint32_t *)(void *)wide);
#endif
}
