/*
 * tr_mean.c - TFLite MEAN for int8 tensors over contiguous axes, bit-exact with
 * TFLite Micro (reduce_common.cc EvalIntegerMean).
 *
 * The input is read as [outer][reduced][inner] and the output is [outer][inner]:
 * global average pooling of an NHWC tensor is outer = N, reduced = H*W, inner = C.
 */
#include "tr_common.h"

/* TFLite MEAN, int8 (QuantizedMeanOrSum): params = {input_zp * count, multiplier,
 * shift, output_zp}, the multiplier already holding 1/count. */
TR_KERNEL void tr_mean_int8(const int8_t *input, int8_t *output, int32_t outer, int32_t reduced, int32_t inner, const int32_t *params)
{
    const int32_t zero_sum = params[0], multiplier = params[1], shift = params[2], output_zp = params[3];
    for (int32_t o = 0; o < outer; o++) {
        const int8_t *block = input + o * reduced * inner;
        for (int32_t c = 0; c < inner; c++) {
            int32_t sum = 0;
            for (int32_t r = 0; r < reduced; r++) {
                sum += block[r * inner + c];
            }
            *output++ = tr_requantize(sum - zero_sum, multiplier, shift, output_zp, INT8_MIN, INT8_MAX);
        }
    }
}
