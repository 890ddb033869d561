/*
 * tr_mean.h - TFLite MEAN for int8 tensors over contiguous axes, bit-exact with TFLite Micro
 * (reduce_common.cc EvalIntegerMean, QuantizedMeanOrSum).
 *
 * The input is read as [outer][reduced][inner] and the output is [outer][inner]: global
 * average pooling of an NHWC tensor is outer = N, reduced = H*W, inner = C.
 */
#ifndef TR_MEAN_H
#define TR_MEAN_H

#include "tr_params.h"

typedef struct {
    int32_t outer, reduced, inner;
    int32_t zero_sum;          /* input zero point * reduced */
    int32_t multiplier, shift; /* input scale / output scale / reduced, as TFLM folds it */
    int32_t output_offset;     /* the output zero point */
} tr_mean_params;

void tr_mean_int8(const tr_mean_params *params, const int8_t *input, int8_t *output);

#endif /* TR_MEAN_H */
