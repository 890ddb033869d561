/*
 * tr_depthwise_3x3.c - 3x3 DEPTHWISE_CONV_2D, depth multiplier 1 (tr_depthwise_3x3.h).
 *
 * A depthwise 3x3 reads every input value up to nine times, so each is widened to int16 once:
 * per group of four channels, the input rows the current output row needs are held in a ring of
 * three rows of stored columns in scratch (a row above or below the image is a prebuilt row of
 * zero points; the generator folded -zero_point x sum(weights) into the bias, so padding adds
 * nothing). Per output pixel and kernel row, channel c adds taps 0 and 1 with one SMLAD on the
 * pair word (x, x + 1) and tap 2 with one SMLABB/SMLATT on the word holding column x + 2: per
 * four channels and kernel row, three load-multiples or pairs of loads (pairs, singles, weights)
 * and eight multiply-accumulates for twelve MACs. The plain C path runs the same layout.
 */
#include "tr_depthwise_3x3.h"

#include <string.h>

#include "tr_dot.h"
#include "tr_requantize.h"

/* Four int8 channels from any address as one word. */
TR_INLINE int32_t tr_dw3_word(const int8_t *p)
{
    int32_t word;
    memcpy(&word, p, 4);
    return word;
}

/* (low, high) as the two int16 halves of a word. */
TR_INLINE int32_t tr_dw3_pair(int32_t low, int32_t high)
{
    return (int32_t)(((uint32_t)low & 0xffffu) | ((uint32_t)high << 16));
}

/* The high halves of two words, `a`'s low: (a >> 16, b >> 16). */
TR_INLINE int32_t tr_dw3_pair_high(int32_t a, int32_t b)
{
    return (int32_t)(((uint32_t)a >> 16) | ((uint32_t)b & 0xffff0000u));
}

/* acc + low(x) * low(w) + high(x) * high(w) */
TR_INLINE int32_t tr_dw3_dual(int32_t x, int32_t w, int32_t acc)
{
#if TR_USE_DSP
    return __smlad(x, w, acc);
#else
    return acc + (int32_t)(int16_t)x * (int32_t)(int16_t)w + (x >> 16) * (w >> 16);
#endif
}

/* acc + low(x) * low(w) */
TR_INLINE int32_t tr_dw3_low(int32_t x, int32_t w, int32_t acc)
{
#if TR_USE_DSP
    return __smlabb(x, w, acc);
#else
    return acc + (int32_t)(int16_t)x * (int32_t)(int16_t)w;
#endif
}

/* acc + high(x) * high(w) */
TR_INLINE int32_t tr_dw3_high(int32_t x, int32_t w, int32_t acc)
{
#if TR_USE_DSP
    return __smlatt(x, w, acc);
#else
    return acc + (x >> 16) * (w >> 16);
#endif
}

/* Four int8 channels of one pixel as int16 pairs (channel 0, 2) and (channel 1, 3). */
TR_INLINE void tr_dw3_widen(int32_t word, int32_t *even, int32_t *odd)
{
#if TR_USE_DSP
    *even = __sxtb16(word);
    *odd = tr_sxtb16_ror8(word);
#else
    *even = tr_dw3_pair((int8_t)word, (int8_t)(word >> 16));
    *odd = tr_dw3_pair((int8_t)(word >> 8), (int8_t)(word >> 24));
#endif
}

/* One stored column from the widened columns x (e0, o0) and x + 1 (e1, o1). */
TR_INLINE void tr_dw3_store(int32_t *out, int32_t e0, int32_t o0, int32_t e1, int32_t o1)
{
    out[0] = tr_dw3_pair(e0, e1);
    out[1] = tr_dw3_pair(o0, o1);
    out[2] = tr_dw3_pair_high(e0, e1);
    out[3] = tr_dw3_pair_high(o0, o1);
    out[4] = e0;
    out[5] = o0;
}

/* The `valid` (1..4) channels of input column x of `row`, the others 0; the zero point outside. */
static int32_t tr_dw3_read(const int8_t *row, int x, int in_w, int channels, int valid, int32_t zero_word)
{
    if (row == NULL || x < 0 || x >= in_w) {
        return zero_word;
    }
    const int8_t *p = row + x * channels;
    if (valid == 4) {
        return tr_dw3_word(p);
    }
    uint32_t word = 0;
    for (int k = 0; k < valid; ++k) {
        word |= (uint32_t)(uint8_t)p[k] << (8 * k);
    }
    return (int32_t)word;
}

/* The `n_cols` stored columns of one input row (`row`: channel c of its first pixel, NULL for a
 * row of padding). Columns whose two inputs are inside the image skip the checks; at a stride of 1
 * column x + 1 of one stored column is column x of the next, widened once. */
static void tr_dw3_row(const int8_t *row, int in_w, int channels, int valid, int pad_left, int step, int n_cols,
                       int32_t zero_word, int32_t *out)
{
    int j = 0, x = -pad_left;
    const int fast = row != NULL && valid == 4;
    for (; j < n_cols && !(fast && x >= 0 && x + 1 < in_w); ++j, x += step, out += TR_DW3_COLUMN_WORDS) {
        int32_t e0, o0, e1, o1;
        tr_dw3_widen(tr_dw3_read(row, x, in_w, channels, valid, zero_word), &e0, &o0);
        tr_dw3_widen(tr_dw3_read(row, x + 1, in_w, channels, valid, zero_word), &e1, &o1);
        tr_dw3_store(out, e0, o0, e1, o1);
    }
    int inner = j; /* columns j .. end - 1 have both inputs inside */
    if (fast) {
        const int last_x = in_w - 2; /* the last x whose x + 1 is inside */
        int end = x <= last_x ? j + (last_x - x) / step + 1 : j;
        end = end < n_cols ? end : n_cols;
        const int8_t *p = row + x * channels;
        if (step == 1 && j < end) {
            int32_t e0, o0;
            tr_dw3_widen(tr_dw3_word(p), &e0, &o0);
            for (; j < end; ++j, out += TR_DW3_COLUMN_WORDS) {
                int32_t e1, o1;
                p += channels;
                tr_dw3_widen(tr_dw3_word(p), &e1, &o1);
                tr_dw3_store(out, e0, o0, e1, o1);
                e0 = e1;
                o0 = o1;
            }
        } else {
            for (; j < end; ++j, p += step * channels, out += TR_DW3_COLUMN_WORDS) {
                int32_t e0, o0, e1, o1;
                tr_dw3_widen(tr_dw3_word(p), &e0, &o0);
                tr_dw3_widen(tr_dw3_word(p + channels), &e1, &o1);
                tr_dw3_store(out, e0, o0, e1, o1);
            }
        }
        x += (j - inner) * step;
    }
    for (; j < n_cols; ++j, x += step, out += TR_DW3_COLUMN_WORDS) {
        int32_t e0, o0, e1, o1;
        tr_dw3_widen(tr_dw3_read(row, x, in_w, channels, valid, zero_word), &e0, &o0);
        tr_dw3_widen(tr_dw3_read(row, x + 1, in_w, channels, valid, zero_word), &e1, &o1);
        tr_dw3_store(out, e0, o0, e1, o1);
    }
}

/* One kernel row of one output pixel for four channels: `h` the stored column of taps 0 and 1,
 * `s` the one of tap 2, `w` the row's six weight words. */
#define TR_DW3_KERNEL_ROW(h, s, w)                 \
    do {                                           \
        a0 = tr_dw3_dual((h)[0], (w)[0], a0);      \
        a1 = tr_dw3_dual((h)[1], (w)[1], a1);      \
        a2 = tr_dw3_dual((h)[2], (w)[2], a2);      \
        a3 = tr_dw3_dual((h)[3], (w)[3], a3);      \
        const int32_t s02 = (s)[4], s13 = (s)[5];  \
        a0 = tr_dw3_low(s02, (w)[4], a0);          \
        a2 = tr_dw3_high(s02, (w)[4], a2);         \
        a1 = tr_dw3_low(s13, (w)[5], a1);          \
        a3 = tr_dw3_high(s13, (w)[5], a3);         \
    } while (0)

/* Channel c of a layer, in the requantization form the kernel was instantiated for. */
TR_INLINE int8_t tr_dw3_requantize(int32_t acc, const tr_requant_params *rq, int c, int doubled_form)
{
    if (doubled_form) {
        return tr_requantize_doubled(acc, rq->multiplier[c], rq->doubled[2 * c], rq->doubled[2 * c + 1],
                                     rq->act_min, rq->act_max);
    }
    return tr_requantize(acc, rq->multiplier[c], rq->shift[c], rq->output_offset, rq->act_min, rq->act_max);
}

TR_INLINE void tr_dw3_image(const tr_depthwise_3x3_params *params, const int8_t *input, int8_t *output,
                            int32_t *scratch, int doubled_form)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after stores */
    const tr_requant_params rq = params->requant;
    const int channels = g.in_c, step = g.stride_w, n_cols = g.out_w + 2 / g.stride_w;
    const int row_words = n_cols * TR_DW3_COLUMN_WORDS, single = (2 / step) * TR_DW3_COLUMN_WORDS;
    const int32_t zero_word = (int32_t)((uint32_t)(uint8_t)params->input_zero_point * 0x01010101u);
    const int32_t *bias = params->bias;
    int32_t *ring = scratch, *zero_row = scratch + 3 * row_words;
    tr_dw3_row(NULL, g.in_w, channels, 4, g.pad_left, step, n_cols, zero_word, zero_row);
    for (int c = 0; c < channels; c += 4) {
        const int valid = channels - c < 4 ? channels - c : 4;
        const int32_t *w = params->filter_words + (c / 4) * 3 * TR_DW3_COLUMN_WORDS;
        for (int b = 0; b < g.batches; ++b) {
            const int8_t *image = input + b * g.in_h * g.in_w * channels + c;
            int held[3] = {-1, -1, -1}; /* the input row in each ring slot */
            for (int oy = 0; oy < g.out_h; ++oy) {
                const int32_t *rows[3];
                for (int ky = 0; ky < 3; ++ky) {
                    const int y = oy * g.stride_h - g.pad_top + ky;
                    if (y < 0 || y >= g.in_h) {
                        rows[ky] = zero_row;
                        continue;
                    }
                    const int slot = y % 3;
                    if (held[slot] != y) {
                        tr_dw3_row(image + y * g.in_w * channels, g.in_w, channels, valid, g.pad_left, step,
                                   n_cols, zero_word, ring + slot * row_words);
                        held[slot] = y;
                    }
                    rows[ky] = ring + slot * row_words;
                }
                const int32_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
                int8_t *out = output + (b * g.out_h + oy) * g.out_w * channels + c;
                for (int ox = 0; ox < g.out_w; ++ox, out += channels) {
                    int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
                    TR_DW3_KERNEL_ROW(r0, r0 + single, w);
                    TR_DW3_KERNEL_ROW(r1, r1 + single, w + TR_DW3_COLUMN_WORDS);
                    TR_DW3_KERNEL_ROW(r2, r2 + single, w + 2 * TR_DW3_COLUMN_WORDS);
                    r0 += TR_DW3_COLUMN_WORDS;
                    r1 += TR_DW3_COLUMN_WORDS;
                    r2 += TR_DW3_COLUMN_WORDS;
                    if (valid == 4) {
                        out[0] = tr_dw3_requantize(a0, &rq, c, doubled_form);
                        out[1] = tr_dw3_requantize(a1, &rq, c + 1, doubled_form);
                        out[2] = tr_dw3_requantize(a2, &rq, c + 2, doubled_form);
                        out[3] = tr_dw3_requantize(a3, &rq, c + 3, doubled_form);
                    } else {
                        const int32_t acc[4] = {a0, a1, a2, a3};
                        for (int k = 0; k < valid; ++k) {
                            out[k] = tr_dw3_requantize(acc[k], &rq, c + k, doubled_form);
                        }
                    }
                }
            }
        }
    }
}

TR_KERNEL void tr_depthwise_conv_3x3_int8(const tr_depthwise_3x3_params *params, const int8_t *input,
                                          int8_t *output, int8_t *scratch)
{
    int32_t *words = (int32_t *)(void *)scratch; /* scratch is 16-byte aligned */
    if (params->requant.doubled != NULL) {
        tr_dw3_image(params, input, output, words, 1);
    } else {
        tr_dw3_image(params, input, output, words, 0);
    }
}
