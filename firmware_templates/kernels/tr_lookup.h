/*
 * tr_lookup.h - int8 ops computed by table lookup, bit-exact with TFLite Micro: LOGISTIC,
 * TANH, RELU that requantizes, LEAKY_RELU and HARD_SWISH.
 *
 * Each of them maps one int8 input to one int8 output, so the code generator runs TFLM's
 * integer arithmetic (gemmlowp's fixed-point logistic and tanh, ReluQuantized,
 * QuantizeLeakyRelu, HardSwish) once for each of the 256 input values of this op's
 * quantization.
 */
#ifndef TR_LOOKUP_H
#define TR_LOOKUP_H

#include "tr_params.h"

typedef struct {
    int32_t size;         /* elements */
    const int8_t *table;  /* table[x + 128]: TFLM's output for input x */
} tr_lookup_params;

/* output[i] = table[input[i] + 128]. In place is fine. */
void tr_lookup_int8(const tr_lookup_params *params, const int8_t *input, int8_t *output);

#endif /* TR_LOOKUP_H */
