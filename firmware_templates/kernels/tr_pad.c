/*
 * tr_pad.c - TFLite PAD / PADV2 for int8 tensors (tr_pad.h).
 */
#include "tr_pad.h"

#include <string.h>

TR_KERNEL void tr_pad_int8(const tr_pad_params *params, const int8_t *input, int8_t *output)
{
    const int32_t *in = params->input_dims, *out = params->output_dims, *before = params->before;
    const int pad_value = (int)params->value;
    const int32_t after = out[3] - before[3] - in[3];
    for (int32_t o0 = 0; o0 < out[0]; o0++) {
        const int32_t i0 = o0 - before[0];
        for (int32_t o1 = 0; o1 < out[1]; o1++) {
            const int32_t i1 = o1 - before[1];
            for (int32_t o2 = 0; o2 < out[2]; o2++) {
                const int32_t i2 = o2 - before[2];
                int8_t *row = output + ((o0 * out[1] + o1) * out[2] + o2) * out[3];
                if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2]) {
                    memset(row, pad_value, (size_t)out[3]);
                    continue;
                }
                memset(row, pad_value, (size_t)before[3]);
                memcpy(row + before[3], input + ((i0 * in[1] + i1) * in[2] + i2) * in[3], (size_t)in[3]);
                memset(row + before[3] + in[3], pad_value, (size_t)after);
            }
        }
    }
}
