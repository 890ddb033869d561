/*
 * tr_pad.h - TFLite PAD / PADV2 for int8 tensors up to 4-D, bit-exact with TFLite Micro
 * (reference_ops::Pad copies raw values and fills the border with one int8 value).
 */
#ifndef TR_PAD_H
#define TR_PAD_H

#include "tr_params.h"

typedef struct {
    /* shapes left-extended with 1s to 4-D by the generator */
    int32_t input_dims[4], output_dims[4];
    int32_t before[4]; /* padding before each dimension */
    int32_t value;     /* the int8 value of the border */
} tr_pad_params;

/* Output row by output row (the innermost dimension): fill or copy. */
void tr_pad_int8(const tr_pad_params *params, const int8_t *input, int8_t *output);

#endif /* TR_PAD_H */
