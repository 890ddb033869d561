/*
 * tr_quantize.c - TFLite QUANTIZE int8 -> int8: move values to another scale and zero point
 * (TFLM's Requantize: MultiplyByQuantizedMultiplier, plus the output zero point, clamped).
 * Elementwise, so output may be the same buffer as input.
 */
#include "tr_common.h"

TR_KERNEL void tr_requantize_int8(const int8_t *input, int8_t *output, int size, int32_t input_zero_point,
                                  int32_t multiplier, int shift, int32_t output_zero_point)
{
    for (int i = 0; i < size; ++i) {
        output[i] = tr_requantize((int32_t)input[i] - input_zero_point, multiplier, shift, output_zero_point,
                                  INT8_MIN, INT8_MAX);
    }
}
