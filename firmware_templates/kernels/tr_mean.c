/*
 * tr_mean.c - TFLite MEAN for int8 tensors (tr_mean.h): a sum per output, one requantization.
 */
#include "tr_mean.h"

#include "tr_requantize.h"

TR_KERNEL void tr_mean_int8(const tr_mean_params *params, const int8_t *input, int8_t *output)
{
    const int32_t outer = params->outer, reduced = params->reduced, inner = params->inner;
    const int32_t zero_sum = params->zero_sum, multiplier = params->multiplier, shift = params->shift;
    const int32_t output_offset = params->output_offset;
    for (int32_t o = 0; o < outer; o++) {
        const int8_t *block = input + o * reduced * inner;
        for (int32_t c = 0; c < inner; c++) {
            int32_t sum = 0;
            for (int32_t r = 0; r < reduced; r++) {
                sum += block[r * inner + c];
            }
            *output++ = tr_requantize(sum - zero_sum, multiplier, shift, output_offset, INT8_MIN, INT8_MAX);
        }
    }
}
