/*
 * tr_params.h - the pieces the kernel families' parameter structs are made of.
 *
 * Every kernel takes a pointer to its family's `tr_<family>_params` (declared in
 * tr_<family>.h) followed by its arena buffers: tr_fully_connected_int8(&fc_dense_1, T0, T1).
 * The generator fills each struct as a `static const` in model.c, next to its call, so a
 * call names what every number means. Everything fixed at generation time (sizes, geometry,
 * constant arrays, quantization) is in the struct; the arguments are the buffers of the arena
 * (inputs, output, scratch).
 */
#ifndef TR_PARAMS_H
#define TR_PARAMS_H

#include "tr_platform.h"

/* A layer's per-channel requantization of int32 accumulators to int8, in one of two forms
 * (exactly one of `shift` and `doubled` is set):
 * - general (TFLM's MultiplyByQuantizedMultiplier, tr_requantize): multiplier[c], shift[c];
 * - doubled (tr_requantize_doubled, ~10 instructions, only where the generator proved it
 *   exact): multiplier[c] and the pair doubled[2c] = right shift, doubled[2c + 1] = rounding
 *   constant, which also carries the output zero point. */
typedef struct {
    const int32_t *multiplier; /* per channel, from QuantizeMultiplier: 0 or in [2^30, 2^31) */
    const int32_t *shift;      /* per channel, QuantizeMultiplier's exponent (> 0: left); NULL if doubled */
    const int32_t *doubled;    /* per channel (right shift 1..22, rounding); NULL in the general form */
    int32_t output_offset;     /* the output zero point */
    int32_t act_min, act_max;  /* the fused activation's int8 range */
} tr_requant_params;

/* One requantization for a whole tensor (ADD, MUL): TFLM's MultiplyByQuantizedMultiplier
 * with QuantizeMultiplier's (multiplier, shift), then the zero point and the clamp. */
typedef struct {
    int32_t multiplier, shift;
    int32_t output_offset;
    int32_t act_min, act_max;
} tr_tensor_requant;

/* The sliding window of CONV_2D, DEPTHWISE_CONV_2D and the pools over NHWC tensors. */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w; /* filter (window) size */
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;      /* dilation factors */
    int32_t pad_top, pad_left; /* TFLite's padding before the first row and column */
} tr_conv_geometry;

/* A two-input elementwise op over a 4-D output, in TFLM's Broadcast*4DSlow order: the
 * output's dimensions, then each input's strides (0 where that input is broadcast). */
typedef struct {
    int32_t dims[4];
    int32_t stride1[4], stride2[4];
} tr_broadcast_shape;

#endif /* TR_PARAMS_H */
