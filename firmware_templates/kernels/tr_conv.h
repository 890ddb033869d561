/*
 * tr_conv.h - TFLite CONV_2D, int8 NHWC input, OHWI weights, per-channel requantization.
 * (A 1x1 stride-1 CONV_2D runs as tr_fully_connected_int8 over its pixels.)
 */
#ifndef TR_CONV_H
#define TR_CONV_H

#include "tr_params.h"

typedef struct {
    tr_conv_geometry geometry;
    int32_t input_zero_point; /* what padding reads as */
    const int8_t *filter;     /* [out_c][k_h * k_w * in_c], filters packed by four */
    const int32_t *bias;      /* [out_c], the input zero point folded in */
    tr_requant_params requant;
} tr_conv_params;

/* `columns`: scratch for two im2col columns (2 * k_h * k_w * in_c bytes). */
void tr_conv_int8(const tr_conv_params *params, const int8_t *input, int8_t *output, int8_t *columns);

#endif /* TR_CONV_H */
