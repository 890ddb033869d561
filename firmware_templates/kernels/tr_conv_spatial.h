/*
 * tr_conv_spatial.h - a spatially factored convolution in one call: CONV_2D k_h x 1 (C_in -> r,
 * stride and dilation along the height), then CONV_2D 1 x k_w (r -> C_out, along the width), as
 * `tinyrank compress --method spatial` leaves a k_h x k_w convolution.
 */
#ifndef TR_CONV_SPATIAL_H
#define TR_CONV_SPATIAL_H

#include "tr_fully_connected.h"
#include "tr_params.h"

typedef struct {
    /* in_*: the pair's input, out_*: its output; k_h, stride_h, dil_h, pad_top: the k_h x 1's;
     * k_w, stride_w, dil_w, pad_left: the 1 x k_w's */
    tr_conv_geometry geometry;
    int32_t rank;                /* r: channels of the narrow tensor (in_h' x in_w x r) */
    int32_t input_zero_point;    /* what the k_h x 1's padding reads as */
    int32_t narrow_zero_point;   /* what the 1 x k_w's padding reads as */
    tr_matmul_layer first;       /* k_h x 1, C_in -> r (filters of k_h * C_in, matmul layout) */
    tr_matmul_layer second;      /* 1 x k_w, r -> C_out (filters of k_w * r, matmul layout) */
    const int32_t *first_thin;   /* NULL, or `first` as a thin int16 stream (tr_thin.h; filter and */
    const int32_t *second_thin;  /* channels of the layer then NULL); the same for `second` */
} tr_conv_spatial_params;

/* Scratch: `row` (in_w * r bytes: one narrow row; with a thin 1 x k_w step and no dilation across,
 * room for its padding pixels either side too), `columns` (2 * max(k_h * in_c, k_w * r) bytes:
 * two im2col columns), `wide` (the matmul scratch of two such columns). */
void tr_conv_spatial_int8(const tr_conv_spatial_params *params, const int8_t *input, int8_t *output, int8_t *row,
                          int8_t *columns, int8_t *wide);

#endif /* TR_CONV_SPATIAL_H */
