/*
 * tr_slice.h - TFLite STRIDED_SLICE for int8 when the slice is evenly spaced runs of bytes
 * (an LSTM's last time step, a crop along the outer dimensions): a copy, as TFLM's is.
 */
#ifndef TR_SLICE_H
#define TR_SLICE_H

#include "tr_params.h"

typedef struct {
    int32_t count;  /* runs */
    int32_t length; /* bytes per run */
    int32_t offset; /* input byte of the first run */
    int32_t stride; /* input bytes from one run's start to the next */
} tr_slice_params;

void tr_slice_int8(const tr_slice_params *params, const int8_t *input, int8_t *output);

#endif /* TR_SLICE_H */
