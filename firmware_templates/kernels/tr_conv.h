/*
 * tr_conv.h - TFLite CONV_2D, int8 NHWC input, OHWI weights, per-channel requantization.
 * (A 1x1 stride-1 CONV_2D runs as tr_fully_connected_int8 over its pixels.)
 */
#ifndef TR_CONV_H
#define TR_CONV_H

#include "tr_fully_connected.h"
#include "tr_params.h"

typedef struct {
    tr_conv_geometry geometry;
    int32_t input_zero_point; /* what padding reads as */
    tr_matmul_layer layer;    /* [out_c] x [k_h * k_w * in_c] in the matmul layout, the zero point folded in */
} tr_conv_params;

/* `columns`: scratch for two im2col columns (2 * k_h * k_w * in_c bytes); `wide`: the matmul
 * scratch, TR_MATMUL_WIDE_WORDS(k_h * k_w * in_c, 2) words (unused on the plain C path). */
void tr_conv_int8(const tr_conv_params *params, const int8_t *input, int8_t *output, int8_t *columns, int8_t *wide);

#endif /* TR_CONV_H */
