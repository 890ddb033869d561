/*
 * tr_relu.c - standalone TFLite RELU and RELU6 for int8 tensors, bit-exact with
 * TFLite Micro (activations_common.cc). RELU that requantizes runs as a table lookup
 * (tr_lookup.c).
 */
#include "tr_common.h"

/* RELU with equal input and output quantization, and TFLM's RELU6: clamp the raw
 * values to [lo, hi]. In place is fine. */
TR_KERNEL void tr_relu_int8(const int8_t *input, int8_t *output, int32_t size, int32_t lo, int32_t hi)
{
    for (int32_t i = 0; i < size; i++) {
        output[i] = tr_clamp_to_int8(input[i], lo, hi);
    }
}
