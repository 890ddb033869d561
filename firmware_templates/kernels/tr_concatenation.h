/*
 * tr_concatenation.h - TFLite CONCATENATION for int8 tensors: TFLite Micro copies the raw
 * values (reference_ops::Concatenation), the converter giving every input the output's
 * quantization.
 */
#ifndef TR_CONCATENATION_H
#define TR_CONCATENATION_H

#include "tr_params.h"

typedef struct {
    int32_t num_inputs;
    int32_t outer;               /* slices before the axis */
    const int32_t *block_sizes;  /* per input: its axis length * the inner size, in bytes */
} tr_concatenation_params;

/* For each of the `outer` slices, block_sizes[i] bytes of input i in turn. */
void tr_concatenation_int8(const tr_concatenation_params *params, const int8_t *const *inputs, int8_t *output);

#endif /* TR_CONCATENATION_H */
