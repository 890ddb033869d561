/*
 * tr_depthwise_conv.c - TFLite DEPTHWISE_CONV_2D (tr_depthwise_conv.h).
 *
 * Per output pixel,
 * `acc` (one int32 per output channel, a scratch buffer) starts at the folded bias and
 * every tap adds weights x input along the contiguous channel axis; a padding tap adds
 * weights x input zero point, because the generator folded -zero_point x sum(weights)
 * into the bias.
 */
#include "tr_depthwise_conv.h"

#include <string.h>

#include "tr_dot.h"
#include "tr_requantize.h"

TR_KERNEL void tr_depthwise_conv_int8(const tr_depthwise_params *params, const int8_t *input, int8_t *output,
                                      int32_t *acc)
{
    const tr_conv_geometry *g = &params->geometry;
    const int batches = g->batches, in_h = g->in_h, in_w = g->in_w, in_c = g->in_c;
    const int out_h = g->out_h, out_w = g->out_w, out_c = g->out_c, depth_multiplier = out_c / in_c;
    const int k_h = g->k_h, k_w = g->k_w, stride_h = g->stride_h, stride_w = g->stride_w;
    const int dil_h = g->dil_h, dil_w = g->dil_w, pad_top = g->pad_top, pad_left = g->pad_left;
    const int32_t input_zero_point = params->input_zero_point;
    const int8_t *filter = params->filter;
    const int32_t *bias = params->bias, *multiplier = params->requant.multiplier, *shift = params->requant.shift;
    const int32_t output_offset = params->requant.output_offset;
    const int32_t act_min = params->requant.act_min, act_max = params->requant.act_max;
    for (int b = 0; b < batches; ++b) {
        const int8_t *image = input + b * in_h * in_w * in_c;
        for (int oy = 0; oy < out_h; ++oy) {
            for (int ox = 0; ox < out_w; ++ox) {
                for (int oc = 0; oc < out_c; ++oc) {
                    acc[oc] = bias[oc];
                }
                const int8_t *taps = filter;
                for (int ky = 0; ky < k_h; ++ky) {
                    int y = oy * stride_h - pad_top + ky * dil_h;
                    for (int kx = 0; kx < k_w; ++kx, taps += out_c) {
                        int x = ox * stride_w - pad_left + kx * dil_w;
                        if (y < 0 || y >= in_h || x < 0 || x >= in_w) {
                            for (int oc = 0; oc < out_c; ++oc) {
                                acc[oc] += (int32_t)taps[oc] * input_zero_point;
                            }
                            continue;
                        }
                        const int8_t *pixel = image + (y * in_w + x) * in_c;
                        if (depth_multiplier == 1) {
                            for (int c = 0; c < in_c; ++c) {
                                acc[c] += (int32_t)taps[c] * (int32_t)pixel[c];
                            }
                        } else {
                            for (int ic = 0, oc = 0; ic < in_c; ++ic) {
                                for (int j = 0; j < depth_multiplier; ++j, ++oc) {
                                    acc[oc] += (int32_t)taps[oc] * (int32_t)pixel[ic];
                                }
                            }
                        }
                    }
                }
                for (int oc = 0; oc < out_c; ++oc) {
                    *output++ = tr_requantize(acc[oc], multiplier[oc], shift[oc], output_offset, act_min, act_max);
                }
            }
        }
    }
}

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
