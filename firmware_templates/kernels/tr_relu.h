/*
 * tr_relu.h - standalone TFLite RELU and RELU6 for int8 tensors, bit-exact with TFLite Micro
 * (activations_common.cc). RELU that requantizes runs as a table lookup (tr_lookup.h).
 */
#ifndef TR_RELU_H
#define TR_RELU_H

#include "tr_params.h"

typedef struct {
    int32_t size;   /* elements */
    int32_t lo, hi; /* the clamp, in the input's (= output's) quantization */
} tr_relu_params;

/* RELU with equal input and output quantization, and TFLM's RELU6: clamp the raw values to
 * [lo, hi]. In place is fine. */
void tr_relu_int8(const tr_relu_params *params, const int8_t *input, int8_t *output);

#endif /* TR_RELU_H */
