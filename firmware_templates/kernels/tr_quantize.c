/*
 * tr_quantize.c - TFLite QUANTIZE int8 -> int8 (tr_quantize.h).
 */
#include "tr_quantize.h"

#include "tr_requantize.h"

TR_KERNEL void tr_quantize_int8(const tr_quantize_params *params, const int8_t *input, int8_t *output)
{
    const int32_t size = params->size, input_zero_point = params->input_zero_point;
    const int32_t multiplier = params->multiplier, shift = params->shift;
    const int32_t output_zero_point = params->output_zero_point;
    for (int32_t i = 0; i < size; ++i) {
        output[i] = tr_requantize((int32_t)input[i] - input_zero_point, multiplier, shift, output_zero_point,
                                  INT8_MIN, INT8_MAX);
    }
}
