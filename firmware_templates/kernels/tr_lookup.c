/*
 * tr_lookup.c - one-input int8 ops as a 256-entry table lookup (tr_lookup.h).
 */
#include "tr_lookup.h"

TR_KERNEL void tr_lookup_int8(const tr_lookup_params *params, const int8_t *input, int8_t *output)
{
    const int8_t *table = params->table;
    const int32_t size = params->size;
    for (int32_t i = 0; i < size; i++) {
        output[i] = table[input[i] + 128];
    }
}
