/*
 * tr_concatenation.c - TFLite CONCATENATION for int8 tensors (tr_concatenation.h).
 */
#include "tr_concatenation.h"

#include <string.h>

TR_KERNEL void tr_concatenation_int8(const tr_concatenation_params *params, const int8_t *const *inputs,
                                     int8_t *output)
{
    const int32_t *block_sizes = params->block_sizes;
    for (int32_t o = 0; o < params->outer; o++) {
        for (int32_t i = 0; i < params->num_inputs; i++) {
            memcpy(output, inputs[i] + o * block_sizes[i], (size_t)block_sizes[i]);
            output += block_sizes[i];
        }
    }
}
