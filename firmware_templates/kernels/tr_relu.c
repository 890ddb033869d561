/*
 * tr_relu.c - standalone TFLite RELU and RELU6 for int8 tensors (tr_relu.h).
 */
#include "tr_relu.h"

#include "tr_requantize.h"

TR_KERNEL void tr_relu_int8(const tr_relu_params *params, const int8_t *input, int8_t *output)
{
    const int32_t size = params->size, lo = params->lo, hi = params->hi;
    for (int32_t i = 0; i < size; i++) {
        output[i] = tr_clamp_to_int8(input[i], lo, hi);
    }
}
