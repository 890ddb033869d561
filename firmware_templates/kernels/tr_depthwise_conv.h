/*
 * tr_depthwise_conv.h - TFLite DEPTHWISE_CONV_2D, int8 NHWC, 1HWC weights, per-channel
 * requantization. Output channel oc = ic * depth_multiplier + j reads input channel ic
 * (depth_multiplier = out_c / in_c).
 */
#ifndef TR_DEPTHWISE_CONV_H
#define TR_DEPTHWISE_CONV_H

#include "tr_params.h"

typedef struct {
    tr_conv_geometry geometry;
    int32_t input_zero_point;  /* what padding reads as */
    const int8_t *filter;      /* [k_h][k_w][out_c] */
    const int32_t *bias;       /* [out_c], the input zero point folded in */
    tr_requant_params requant; /* general form */
} tr_depthwise_params;

/* Depth multiplier 1, channels a multiple of 4, where the doubled requantization is exact:
 * weights doubled to int16 and grouped by four channels, then by tap, each tap as channels
 * (0, 2, 1, 3); accumulators start at the doubled bias. */
typedef struct {
    tr_conv_geometry geometry;
    int32_t input_zero_point;
    const int16_t *filter_x2;  /* [out_c / 4][k_h * k_w][4]: 2 * w of channels 0, 2, 1, 3 */
    const int32_t *bias_x2;    /* [out_c]: 2 * bias, the input zero point folded in */
    tr_requant_params requant; /* doubled form */
} tr_depthwise_x2_params;

/* Any depth multiplier; `acc`: one int32 per output channel of scratch. */
void tr_depthwise_conv_int8(const tr_depthwise_params *params, const int8_t *input, int8_t *output, int32_t *acc);

/* Depth multiplier 1; `scratch`: k_h * k_w tap pointers (8 bytes each) then in_c bytes. */
void tr_depthwise_conv_dm1_int8(const tr_depthwise_params *params, const int8_t *input, int8_t *output,
                                int8_t *scratch);

/* Depth multiplier 1, doubled weights; `scratch` as for tr_depthwise_conv_dm1_int8. */
void tr_depthwise_conv_dm1_doubled_int8(const tr_depthwise_x2_params *params, const int8_t *input, int8_t *output,
                                        int8_t *scratch);

#endif /* TR_DEPTHWISE_CONV_H */
