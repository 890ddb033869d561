/*
 * tr_slice.c - STRIDED_SLICE as runs of bytes (tr_slice.h).
 */
#include "tr_slice.h"

#include <string.h>

TR_KERNEL void tr_slice_int8(const tr_slice_params *params, const int8_t *input, int8_t *output)
{
    const int8_t *from = input + params->offset;
    for (int32_t i = 0; i < params->count; i++, from += params->stride, output += params->length) {
        memcpy(output, from, (size_t)params->length);
    }
}
