/*
 * tr_quantize.c - TFLite QUANTIZE int8 -> int8: move values to another scale and zero point.
 * Elementwise, so output may be the same buffer as input.
 */
#include "tr_common.h"

TR_KERNEL void tr_requantize_int8(const int8_t *input, int8_t *output, int size, int32_t input_zero_point,
                                  int32_t multiplier, int shift, int32_t output_zero_point)
{
    for (int i = 0; i < size; ++i) {
        int32_t value = tr_multiply_by_quantized_multiplier((int32_t)input[i] - input_zero_point, multiplier, shift);
        output[i] = tr_clamp_to_int8(value + output_zero_point, -128, 127);
    }
}
