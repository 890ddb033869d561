/*
 * tr_pool.h - TFLite AVERAGE_POOL_2D and MAX_POOL_2D for int8 NHWC tensors, bit-exact with
 * TFLite Micro's reference kernels (reference_integer_ops/pooling.h). The window is clipped
 * to the input: padding cells are neither summed nor counted.
 */
#ifndef TR_POOL_H
#define TR_POOL_H

#include "tr_params.h"

typedef struct {
    tr_conv_geometry geometry; /* in_c = out_c = channels; k_h, k_w: the window; no dilation */
    int32_t act_min, act_max;  /* the fused activation's int8 range */
} tr_pool_params;

/* The window mean rounded half away from zero, clamped. */
void tr_average_pool_int8(const tr_pool_params *params, const int8_t *input, int8_t *output);

/* The window maximum, clamped to the fused activation. */
void tr_max_pool_int8(const tr_pool_params *params, const int8_t *input, int8_t *output);

#endif /* TR_POOL_H */
