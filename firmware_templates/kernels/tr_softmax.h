/*
 * tr_softmax.h - TFLite SOFTMAX for int8 in, int8 out (scale 1/256, zero point -128),
 * bit-exact with TFLite Micro (reference_ops::Softmax with gemmlowp fixed point).
 */
#ifndef TR_SOFTMAX_H
#define TR_SOFTMAX_H

#include "tr_params.h"

typedef struct {
    int32_t outer; /* rows */
    int32_t depth; /* the last dimension, softmax'ed */
    /* exp_table[d]: TFLM's exp of the input difference -d (d = row max - x, 0..255) in Q0.31,
     * 0 where TFLM skips the element (difference below diff_min) */
    const int32_t *exp_table;
} tr_softmax_params;

/* Over the last dimension of `outer` rows. output may be input: each element is written only
 * after its last read. */
void tr_softmax_int8(const tr_softmax_params *params, const int8_t *input, int8_t *output);

#endif /* TR_SOFTMAX_H */
