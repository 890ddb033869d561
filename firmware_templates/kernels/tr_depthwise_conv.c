/*
 * tr_depthwise_conv.c - TFLite DEPTHWISE_CONV_2D, int8 NHWC, 1HWC weights, per-channel.
 *
 * Output channel oc = ic * depth_multiplier + j reads input channel ic. Per output pixel,
 * `acc` (one int32 per output channel, a scratch buffer) starts at the folded bias and
 * every tap adds weights x input along the contiguous channel axis; a padding tap adds
 * weights x input zero point, because the generator folded -zero_point x sum(weights)
 * into the bias.
 */
#include "tr_common.h"

TR_KERNEL void tr_depthwise_conv_int8(const int8_t *input, const int8_t *filter, const int32_t *bias,
                                      int8_t *output, int batches, int in_h, int in_w, int in_c,
                                      int out_h, int out_w, int depth_multiplier, int k_h, int k_w,
                                      int stride_h, int stride_w, int dil_h, int dil_w,
                                      int pad_top, int pad_left, int32_t input_zero_point,
                                      const int32_t *multiplier, const int32_t *shift,
                                      int32_t output_offset, int32_t act_min, int32_t act_max, int32_t *acc)
{
    const int out_c = in_c * depth_multiplier;
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
            uint32_t pw = (uint32_t)tr_read_int8x4(p), ww = (uint32_t)tr_read_int8x4(w);
            uint32_t pe = __sxtb16(pw), we = __sxtb16(ww);
            uint32_t po = tr_sxtb16_ror8(pw), wo = tr_sxtb16_ror8(ww);
            a0 = __smlabb((int32_t)pe, (int32_t)we, a0);
            a2 = __smlatt((int32_t)pe, (int32_t)we, a2);
            a1 = __smlabb((int32_t)po, (int32_t)wo, a1);
            a3 = __smlatt((int32_t)po, (int32_t)wo, a3);
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

TR_KERNEL void tr_depthwise_conv_dm1_int8(const int8_t *input, const int8_t *filter, const int32_t *bias,
                                          int8_t *output, int batches, int in_h, int in_w, int channels,
                                          int out_h, int out_w, int k_h, int k_w,
                                          int stride_h, int stride_w, int dil_h, int dil_w,
                                          int pad_top, int pad_left, int32_t input_zero_point,
                                          const int32_t *multiplier, const int32_t *shift,
                                          int32_t output_offset, int32_t act_min, int32_t act_max, int8_t *scratch)
{
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
