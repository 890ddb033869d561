/*
 * tr_conv_tucker.h - a Tucker-factored convolution in one call: CONV_2D 1x1 (C_in -> r1),
 * CONV_2D k_h x k_w (r1 -> r2, any stride, padding, dilation), CONV_2D 1x1 (r2 -> C_out),
 * as `tinyrank compress --method tucker` leaves it.
 */
#ifndef TR_CONV_TUCKER_H
#define TR_CONV_TUCKER_H

#include "tr_fully_connected.h"
#include "tr_params.h"

typedef struct {
    /* in_*: the chain's input, out_*: its output; window, stride, dilation, padding: the k x k's */
    tr_conv_geometry geometry;
    int32_t rank_in, rank_out;     /* r1, r2 */
    int32_t core_input_zero_point; /* what the k x k's padding reads as */
    /* 1: the scratch is sized for the widened window (tr_conv_tucker.c, DSP path: the core step
     * thin, both ranks whole words, dil_w 1), 0: for the narrow one */
    int32_t wide_window;
    tr_matmul_layer reduce;        /* 1x1, C_in -> r1 */
    tr_matmul_layer core;          /* k x k, r1 -> r2 (filters of k_h * k_w * r1) */
    tr_matmul_layer expand;        /* 1x1, r2 -> C_out */
    /* Each NULL (its layer in the matmul layout), or its step as a thin stream (packing.pack_thin:
     * at most 128 inputs per output, the doubled full-range requantization; the layer's filter and
     * channels are then NULL). */
    const int32_t *reduce_thin, *core_thin, *expand_thin;
} tr_conv_tucker_params;

/* Scratch: `window` ((k_h - 1) * dil_h + 1 rows of in_w * r1 bytes, at most in_h rows; with
 * wide_window the same rows of pad_left + in_w + pad_right pixels of 2 * r1 bytes), `middle`
 * (out_w * r2 bytes; with wide_window at least in_w * r1), `columns` (2 * k_h * k_w * r1 bytes),
 * `wide` (the matmul scratch of two rows of the deepest of C_in, k_h * k_w * r1 and r2). output may
 * be input where the generator proved no output row overwrites an unread input row. */
void tr_conv_tucker_int8(const tr_conv_tucker_params *params, const int8_t *input, int8_t *output, int8_t *window,
                         int8_t *middle, int8_t *columns, int8_t *wide);

#endif /* TR_CONV_TUCKER_H */
