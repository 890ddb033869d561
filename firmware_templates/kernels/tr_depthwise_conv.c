/*
 * tr_depthwise_conv.c - TFLite DEPTHWISE_CONV_2D (tr_depthwise_conv.h).
 *
 * Accumulators start at the folded bias and every tap adds weights x input; a padding tap
 * adds weights x input zero point, because the generator folded -zero_point x sum(weights)
 * into the bias. Depth multiplier 1 runs four channels at a time with the accumulators in
 * registers; a larger multiplier pairs taps so that one SMLAD adds two of them.
 */
#include "tr_depthwise_conv.h"

#include <string.h>

#include "tr_dot.h"
#include "tr_requantize.h"

/*
 * Depth multiplier 1 (every MLPerf Tiny model). Per output pixel, `taps` (k_h * k_w
 * pointers in scratch) is set to each tap's input pixel, or to `pad_row` (in_c bytes of
 * the input zero point, also scratch) for a padding tap; then four channels at a time run
 * over the taps with the accumulators in registers, two SMLABB/SMLATT pairs per word on
 * cores with the DSP extension.
 */
TR_INLINE void tr_depthwise_dm1_pixel(const int8_t *const *taps, int n_taps, const int8_t *filter,
                                   const int32_t *bias, int channels, const int32_t *multiplier,
                                   const int32_t *shift, int32_t output_offset, int32_t act_min,
                                   int32_t act_max, int8_t *output)
{
    int c = 0;
    for (; c + 4 <= channels; c += 4) {
        int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
        const int8_t *w = filter + c;
        for (int t = 0; t < n_taps; ++t, w += channels) {
            const int8_t *p = taps[t] + c;
#if TR_USE_DSP
            int32_t pw = tr_read_int8x4(p), ww = tr_read_int8x4(w);
            int32_t pe = __sxtb16(pw), we = __sxtb16(ww);
            int32_t po = tr_sxtb16_ror8(pw), wo = tr_sxtb16_ror8(ww);
            a0 = __smlabb(pe, we, a0);
            a2 = __smlatt(pe, we, a2);
            a1 = __smlabb(po, wo, a1);
            a3 = __smlatt(po, wo, a3);
#else
            a0 += (int32_t)w[0] * p[0];
            a1 += (int32_t)w[1] * p[1];
            a2 += (int32_t)w[2] * p[2];
            a3 += (int32_t)w[3] * p[3];
#endif
        }
        output[c] = tr_requantize(a0, multiplier[c], shift[c], output_offset, act_min, act_max);
        output[c + 1] = tr_requantize(a1, multiplier[c + 1], shift[c + 1], output_offset, act_min, act_max);
        output[c + 2] = tr_requantize(a2, multiplier[c + 2], shift[c + 2], output_offset, act_min, act_max);
        output[c + 3] = tr_requantize(a3, multiplier[c + 3], shift[c + 3], output_offset, act_min, act_max);
    }
    for (; c < channels; ++c) {
        int32_t acc = bias[c];
        for (int t = 0; t < n_taps; ++t) {
            acc += (int32_t)filter[t * channels + c] * taps[t][c];
        }
        output[c] = tr_requantize(acc, multiplier[c], shift[c], output_offset, act_min, act_max);
    }
}

TR_KERNEL void tr_depthwise_conv_dm1_int8(const tr_depthwise_params *params, const int8_t *input, int8_t *output,
                                          int8_t *scratch)
{
    const tr_conv_geometry *g = &params->geometry;
    const int batches = g->batches, in_h = g->in_h, in_w = g->in_w, channels = g->in_c;
    const int out_h = g->out_h, out_w = g->out_w, k_h = g->k_h, k_w = g->k_w;
    const int stride_h = g->stride_h, stride_w = g->stride_w, dil_h = g->dil_h, dil_w = g->dil_w;
    const int pad_top = g->pad_top, pad_left = g->pad_left;
    const int32_t input_zero_point = params->input_zero_point;
    const int8_t *filter = params->filter;
    const int32_t *bias = params->bias, *multiplier = params->requant.multiplier, *shift = params->requant.shift;
    const int32_t output_offset = params->requant.output_offset;
    const int32_t act_min = params->requant.act_min, act_max = params->requant.act_max;
    const int8_t **taps = (const int8_t **)(void *)scratch;
    int8_t *pad_row = scratch + k_h * k_w * 8; /* the generator reserves 8 bytes a pointer */
    for (int c = 0; c < channels; ++c) {
        pad_row[c] = (int8_t)input_zero_point;
    }
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w * channels;
        for (int oy = 0; oy < out_h; ++oy) {
            for (int ox = 0; ox < out_w; ++ox) {
                int t = 0;
                for (int ky = 0; ky < k_h; ++ky) {
                    int y = oy * stride_h - pad_top + ky * dil_h;
                    for (int kx = 0; kx < k_w; ++kx, ++t) {
                        int x = ox * stride_w - pad_left + kx * dil_w;
                        int inside = y >= 0 && y < in_h && x >= 0 && x < in_w;
                        taps[t] = inside ? image + (y * in_w + x) * channels : pad_row;
                    }
                }
                tr_depthwise_dm1_pixel(taps, t, filter, bias, channels, multiplier, shift, output_offset,
                                       act_min, act_max, output);
                output += channels;
            }
        }
    }
}

/*
 * Depth multiplier 1, channels a multiple of 4, requantization by tr_requantize_doubled
 * (the generator checked its preconditions for every channel). The weights arrive doubled
 * and sign-extended to int16 (tr_depthwise_x2_params), each tap as two words: channels
 * (0, 2) and (1, 3), the halves SXTB16 makes of an input word. So a tap
 * of four channels is one input load, two SXTB16, one LDRD and four SMLAxy, and the
 * accumulators come out doubled for the SMMULR of the requantization.
 */
/* Every channel of one output pixel, four at a time, the four accumulators in registers.
 * The tap loop walks pointers to an end pointer (no counter): eleven instructions a tap. */
TR_INLINE void tr_depthwise_doubled_pixel(const int8_t *const *taps, int n_taps, const int16_t *filter,
                                          const int32_t *bias2, int channels, const int32_t *multiplier,
                                          const int32_t *doubled, int32_t act_min, int32_t act_max,
                                          int8_t *output)
{
    const int8_t *const *taps_end = taps + n_taps;
    const int16_t *w = filter;
    for (int c = 0; c < channels; c += 4) {
        int32_t a0 = bias2[c], a1 = bias2[c + 1], a2 = bias2[c + 2], a3 = bias2[c + 3];
        for (const int8_t *const *tap = taps; tap < taps_end; ++tap, w += 4) {
            const int8_t *p = *tap + c;
#if TR_USE_DSP
            int32_t pw = tr_read_int8x4(p);
            int32_t pe = __sxtb16(pw), po = tr_sxtb16_ror8(pw);
            int32_t we, wo;
            memcpy(&we, w, 4);
            memcpy(&wo, w + 2, 4);
            a0 = __smlabb(pe, we, a0);
            a2 = __smlatt(pe, we, a2);
            a1 = __smlabb(po, wo, a1);
            a3 = __smlatt(po, wo, a3);
#else
            a0 += (int32_t)w[0] * p[0];
            a2 += (int32_t)w[1] * p[2];
            a1 += (int32_t)w[2] * p[1];
            a3 += (int32_t)w[3] * p[3];
#endif
        }
        const int32_t *d = doubled + 2 * c; /* (right shift, rounding) per channel */
        output[c] = tr_requantize_doubled(a0, multiplier[c], d[0], d[1], act_min, act_max);
        output[c + 1] = tr_requantize_doubled(a1, multiplier[c + 1], d[2], d[3], act_min, act_max);
        output[c + 2] = tr_requantize_doubled(a2, multiplier[c + 2], d[4], d[5], act_min, act_max);
        output[c + 3] = tr_requantize_doubled(a3, multiplier[c + 3], d[6], d[7], act_min, act_max);
    }
}

TR_KERNEL void tr_depthwise_conv_dm1_doubled_int8(const tr_depthwise_x2_params *params, const int8_t *input,
                                                  int8_t *output, int8_t *scratch)
{
    const tr_conv_geometry *g = &params->geometry;
    const int batches = g->batches, in_h = g->in_h, in_w = g->in_w, channels = g->in_c;
    const int out_h = g->out_h, out_w = g->out_w, k_h = g->k_h, k_w = g->k_w;
    const int stride_h = g->stride_h, stride_w = g->stride_w, dil_h = g->dil_h, dil_w = g->dil_w;
    const int pad_top = g->pad_top, pad_left = g->pad_left;
    const int32_t input_zero_point = params->input_zero_point;
    const int16_t *filter = params->filter_x2;
    const int32_t *bias2 = params->bias_x2, *multiplier = params->requant.multiplier;
    const int32_t *doubled = params->requant.doubled;
    const int32_t act_min = params->requant.act_min, act_max = params->requant.act_max;
    const int n_taps = k_h * k_w;
    const int8_t **taps = (const int8_t **)(void *)scratch;
    int8_t *pad_row = scratch + n_taps * 8; /* the generator reserves 8 bytes a pointer */
    for (int c = 0; c < channels; ++c) {
        pad_row[c] = (int8_t)input_zero_point;
    }
    const int span_h = (k_h - 1) * dil_h, span_w = (k_w - 1) * dil_w;
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w * channels;
        for (int oy = 0; oy < out_h; ++oy) {
            const int y0 = oy * stride_h - pad_top;
            const int rows_inside = y0 >= 0 && y0 + span_h < in_h;
            for (int ox = 0; ox < out_w; ++ox) {
                const int x0 = ox * stride_w - pad_left;
                if (rows_inside && x0 >= 0 && x0 + span_w < in_w) { /* interior: no bounds checks */
                    const int8_t *corner = image + (y0 * in_w + x0) * channels;
                    int t = 0;
                    for (int ky = 0; ky < k_h; ++ky) {
                        const int8_t *row = corner + ky * dil_h * in_w * channels;
                        for (int kx = 0; kx < k_w; ++kx, ++t) {
                            taps[t] = row + kx * dil_w * channels;
                        }
                    }
                } else {
                    int t = 0;
                    for (int ky = 0; ky < k_h; ++ky) {
                        int y = y0 + ky * dil_h;
                        for (int kx = 0; kx < k_w; ++kx, ++t) {
                            int x = x0 + kx * dil_w;
                            int inside = y >= 0 && y < in_h && x >= 0 && x < in_w;
                            taps[t] = inside ? image + (y * in_w + x) * channels : pad_row;
                        }
                    }
                }
                tr_depthwise_doubled_pixel(taps, n_taps, filter, bias2, channels, multiplier, doubled, act_min,
                                           act_max, output);
                output += channels;
            }
        }
    }
}

/*
 * Depth multiplier above 1 (micro_speech's 8). Every input channel feeds `multiplier` output
 * channels with the same taps, so per output pixel the taps are gathered once into a column
 * in scratch, two taps of a channel to a word of two int16 (tap 2p low, 2p + 1 high), and
 * every output channel is one SMLAD per tap pair against weights packed the same way. Four
 * output channels share each column word (the weights of a group follow each other), so a
 * tap pair of a group costs one column load, two LDRD and four SMLAD.
 */

/* Two adjacent words (4-byte aligned) in one LDRD where the core has it; returns p + 2. */
TR_INLINE const int32_t *tr_load_words2(const int32_t *p, int32_t *first, int32_t *second)
{
#if TR_USE_DSP
    __asm__("ldrd %0, %1, [%2], #8" : "=r"(*first), "=r"(*second), "+r"(p) : "m"(*(const int32_t(*)[2])p));
#else
    *first = p[0];
    *second = p[1];
    p += 2;
#endif
    return p;
}

/* The column of one output pixel: for tap pair p and input channel c, column[p * channels + c]
 * packs taps[2p][c] and taps[2p + 1][c]. */
static void tr_depthwise_pairs_column(const int8_t *const *taps, int pairs, int channels, int32_t *column)
{
    for (int p = 0; p < pairs; ++p, taps += 2, column += channels) {
        const int8_t *a = taps[0], *b = taps[1];
        int c = 0;
#if TR_USE_DSP
        for (; c + 4 <= channels; c += 4) {
            int32_t wa = tr_read_int8x4(a + c), wb = tr_read_int8x4(b + c);
            int32_t ae = __sxtb16(wa), be = __sxtb16(wb), ao = tr_sxtb16_ror8(wa), bo = tr_sxtb16_ror8(wb);
            column[c] = tr_pack_int16_pair(ae, be);
            column[c + 1] = tr_pack_int16_pair(ao, bo);
            column[c + 2] = (int32_t)(((uint32_t)ae >> 16) | ((uint32_t)be & 0xffff0000u));
            column[c + 3] = (int32_t)(((uint32_t)ao >> 16) | ((uint32_t)bo & 0xffff0000u));
        }
#endif
        for (; c < channels; ++c) {
            column[c] = tr_pack_int16_pair(a[c], b[c]);
        }
    }
}

/* Every output channel of one pixel from its column. */
static void tr_depthwise_pairs_pixel(const int32_t *column, int pairs, int in_c, int multiplier,
                                     const int32_t *w, const int32_t *bias, const tr_requant_params *rq,
                                     int8_t *output)
{
    const int32_t *mult = rq->multiplier, *shift = rq->shift, *doubled = rq->doubled;
    const int32_t output_offset = rq->output_offset, act_min = rq->act_min, act_max = rq->act_max;
    const int stride = in_c;
    int oc = 0;
    for (int ic = 0; ic < in_c; ++ic) {
        const int32_t *first = column + ic, *end = column + ic + pairs * stride;
        const int32_t *last = column + ic + (pairs & ~1) * stride; /* where whole twos of pairs end */
        int j = 0;
        for (; j + 4 <= multiplier; j += 4, oc += 4) {
            int32_t a0 = bias[oc], a1 = bias[oc + 1], a2 = bias[oc + 2], a3 = bias[oc + 3];
            const int32_t *x = first;
            for (; x < last; x += 2 * stride) { /* two tap pairs a turn */
                const int32_t v = x[0], u = x[stride];
                int32_t w0, w1, w2, w3;
                w = tr_load_words2(w, &w0, &w1);
                w = tr_load_words2(w, &w2, &w3);
                a0 = tr_dot_int16_pair(v, w0, a0);
                a1 = tr_dot_int16_pair(v, w1, a1);
                a2 = tr_dot_int16_pair(v, w2, a2);
                a3 = tr_dot_int16_pair(v, w3, a3);
                w = tr_load_words2(w, &w0, &w1);
                w = tr_load_words2(w, &w2, &w3);
                a0 = tr_dot_int16_pair(u, w0, a0);
                a1 = tr_dot_int16_pair(u, w1, a1);
                a2 = tr_dot_int16_pair(u, w2, a2);
                a3 = tr_dot_int16_pair(u, w3, a3);
            }
            if (x < end) { /* an odd count of pairs */
                const int32_t v = *x;
                int32_t w0, w1, w2, w3;
                w = tr_load_words2(w, &w0, &w1);
                w = tr_load_words2(w, &w2, &w3);
                a0 = tr_dot_int16_pair(v, w0, a0);
                a1 = tr_dot_int16_pair(v, w1, a1);
                a2 = tr_dot_int16_pair(v, w2, a2);
                a3 = tr_dot_int16_pair(v, w3, a3);
            }
            output[oc] = tr_requantize_channel(a0, mult, shift, doubled, oc, output_offset, act_min, act_max);
            output[oc + 1] = tr_requantize_channel(a1, mult, shift, doubled, oc + 1, output_offset, act_min, act_max);
            output[oc + 2] = tr_requantize_channel(a2, mult, shift, doubled, oc + 2, output_offset, act_min, act_max);
            output[oc + 3] = tr_requantize_channel(a3, mult, shift, doubled, oc + 3, output_offset, act_min, act_max);
        }
        for (; j < multiplier; ++j, ++oc) {
            int32_t acc = bias[oc];
            for (const int32_t *x = first; x < end; x += stride, ++w) {
                acc = tr_dot_int16_pair(*x, *w, acc);
            }
            output[oc] = tr_requantize_channel(acc, mult, shift, doubled, oc, output_offset, act_min, act_max);
        }
    }
}

TR_KERNEL void tr_depthwise_conv_pairs_int8(const tr_depthwise_pairs_params *params, const int8_t *input,
                                            int8_t *output, int8_t *scratch)
{
    const tr_conv_geometry *g = &params->geometry;
    const int batches = g->batches, in_h = g->in_h, in_w = g->in_w, in_c = g->in_c;
    const int out_h = g->out_h, out_w = g->out_w, out_c = g->out_c, k_h = g->k_h, k_w = g->k_w;
    const int stride_h = g->stride_h, stride_w = g->stride_w, dil_h = g->dil_h, dil_w = g->dil_w;
    const int pad_top = g->pad_top, pad_left = g->pad_left;
    const int n_taps = k_h * k_w, pairs = (n_taps + 1) / 2, multiplier = out_c / in_c;
    const tr_requant_params requant = params->requant;
    int32_t *column = (int32_t *)(void *)scratch;
    const int8_t **taps = (const int8_t **)(void *)(scratch + pairs * in_c * 4);
    int8_t *pad_row = scratch + pairs * in_c * 4 + (n_taps + 1) * 8; /* 8 bytes a pointer, reserved */
    for (int c = 0; c < in_c; ++c) {
        pad_row[c] = (int8_t)params->input_zero_point;
    }
    taps[n_taps] = pad_row; /* the missing last tap of an odd count: its weights are 0 */
    const int span_h = (k_h - 1) * dil_h, span_w = (k_w - 1) * dil_w;
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w * in_c;
        for (int oy = 0; oy < out_h; ++oy) {
            const int y0 = oy * stride_h - pad_top;
            const int rows_inside = y0 >= 0 && y0 + span_h < in_h;
            for (int ox = 0; ox < out_w; ++ox) {
                const int x0 = ox * stride_w - pad_left;
                int t = 0;
                if (rows_inside && x0 >= 0 && x0 + span_w < in_w) { /* interior: no bounds checks */
                    const int8_t *corner = image + (y0 * in_w + x0) * in_c;
                    for (int ky = 0; ky < k_h; ++ky) {
                        const int8_t *row = corner + ky * dil_h * in_w * in_c;
                        for (int kx = 0; kx < k_w; ++kx, ++t) {
                            taps[t] = row + kx * dil_w * in_c;
                        }
                    }
                } else {
                    for (int ky = 0; ky < k_h; ++ky) {
                        const int y = y0 + ky * dil_h;
                        for (int kx = 0; kx < k_w; ++kx, ++t) {
                            const int x = x0 + kx * dil_w;
                            const int inside = y >= 0 && y < in_h && x >= 0 && x < in_w;
                            taps[t] = inside ? image + (y * in_w + x) * in_c : pad_row;
                        }
                    }
                }
                tr_depthwise_pairs_column(taps, pairs, in_c, column);
                tr_depthwise_pairs_pixel(column, pairs, in_c, multiplier, params->filter_pairs, params->bias,
                                         &requant, output);
                output += out_c;
            }
        }
    }
}

/*
 * One input channel, a multiplier above 1, kernel rows of a multiple of four taps, no dilation
 * across the row (micro_speech's 10x8): a kernel row is contiguous input, and four taps (one word)
 * make two pairs, taps (0, 2) and (1, 3): exactly the halves SXTB16 makes of the word. So the
 * column of a pixel is one load and two SXTB16 per four taps; a row that crosses the border is
 * first copied to `row` in scratch with the input zero point for the taps outside.
 */
TR_INLINE void tr_depthwise_rows_column_row(const int8_t *taps, int words, int32_t *column)
{
    for (int q = 0; q < words; ++q, taps += 4, column += 2) {
#if TR_USE_DSP
        const int32_t word = tr_read_int8x4(taps);
        column[0] = __sxtb16(word);
        column[1] = tr_sxtb16_ror8(word);
#else
        column[0] = tr_pack_int16_pair(taps[0], taps[2]);
        column[1] = tr_pack_int16_pair(taps[1], taps[3]);
#endif
    }
}

TR_KERNEL void tr_depthwise_conv_rows_int8(const tr_depthwise_pairs_params *params, const int8_t *input,
                                           int8_t *output, int8_t *scratch)
{
    const tr_conv_geometry *g = &params->geometry;
    const int batches = g->batches, in_h = g->in_h, in_w = g->in_w;
    const int out_h = g->out_h, out_w = g->out_w, out_c = g->out_c, k_h = g->k_h, k_w = g->k_w;
    const int stride_h = g->stride_h, stride_w = g->stride_w, dil_h = g->dil_h;
    const int pad_top = g->pad_top, pad_left = g->pad_left, words = k_w / 4;
    const int8_t zero_point = (int8_t)params->input_zero_point;
    const tr_requant_params requant = params->requant;
    int32_t *column = (int32_t *)(void *)scratch;
    int8_t *row = scratch + k_h * k_w * 2; /* k_h * k_w / 2 column words, then two rows of k_w bytes */
    int8_t *zero_row = row + k_w;         /* a row above or below the image */
    for (int kx = 0; kx < k_w; ++kx) {
        zero_row[kx] = zero_point;
    }
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w;
        for (int oy = 0; oy < out_h; ++oy) {
            const int y0 = oy * stride_h - pad_top;
            for (int ox = 0; ox < out_w; ++ox) {
                const int x0 = ox * stride_w - pad_left;
                const int row_inside = x0 >= 0 && x0 + k_w <= in_w;
                for (int ky = 0; ky < k_h; ++ky) {
                    const int y = y0 + ky * dil_h;
                    const int8_t *taps = row;
                    if (y < 0 || y >= in_h) {
                        taps = zero_row;
                    } else if (row_inside) {
                        taps = image + y * in_w + x0;
                    } else { /* taps [lo, hi) of the row are inside the image */
                        const int lo = x0 < 0 ? -x0 : 0, hi = x0 + k_w > in_w ? in_w - x0 : k_w;
                        const int8_t *source = image + y * in_w + x0;
                        int kx = 0;
                        for (; kx < lo; ++kx) {
                            row[kx] = zero_point;
                        }
                        for (; kx < hi; ++kx) {
                            row[kx] = source[kx];
                        }
                        for (; kx < k_w; ++kx) {
                            row[kx] = zero_point;
                        }
                    }
                    tr_depthwise_rows_column_row(taps, words, column + ky * words * 2);
                }
                tr_depthwise_pairs_pixel(column, k_h * words * 2, 1, out_c, params->filter_pairs, params->bias,
                                         &requant, output);
                output += out_c;
            }
        }
    }
}
