/*
 * tr_quantize.h - TFLite QUANTIZE int8 -> int8: values moved to another scale and zero point
 * (TFLM's Requantize: MultiplyByQuantizedMultiplier, plus the output zero point, clamped).
 */
#ifndef TR_QUANTIZE_H
#define TR_QUANTIZE_H

#include "tr_params.h"

typedef struct {
    int32_t size; /* elements */
    int32_t input_zero_point;
    int32_t multiplier, shift; /* input scale / output scale, from QuantizeMultiplier */
    int32_t output_zero_point;
} tr_quantize_params;

/* Elementwise, so output may be the same buffer as input. */
void tr_quantize_int8(const tr_quantize_params *params, const int8_t *input, int8_t *output);

#endif /* TR_QUANTIZE_H */
