/*
 * tr_concatenation.c - TFLite CONCATENATION for int8 tensors, bit-exact with TFLite
 * Micro, which copies the raw values (reference_ops::Concatenation).
 */
#include <string.h>

#include "tr_common.h"

/* TFLite CONCATENATION: for each of the `outer` slices before the axis, copy
 * block_sizes[i] bytes of input i in turn (block = its axis length * inner size). */
TR_KERNEL void tr_concatenation_int8(const int8_t *const *inputs, const int32_t *block_sizes, int32_t num_inputs, int32_t outer, int8_t *output)
{
    for (int32_t o = 0; o < outer; o++) {
        for (int32_t i = 0; i < num_inputs; i++) {
            memcpy(output, inputs[i] + o * block_sizes[i], (size_t)block_sizes[i]);
            output += block_sizes[i];
        }
    }
}
