/*
 * tr_lookup.c - int8 ops computed by table lookup, bit-exact with TFLite Micro: LOGISTIC,
 * TANH, RELU that requantizes, LEAKY_RELU and HARD_SWISH.
 *
 * Each of them maps one int8 input to one int8 output, so the code generator runs TFLM's
 * integer arithmetic (gemmlowp's fixed-point logistic and tanh, ReluQuantized,
 * QuantizeLeakyRelu, HardSwish) once for each of the 256 input values of this op's
 * quantization: table[x + 128] is TFLM's output for input x.
 */
#include "tr_common.h"

/* output[i] = table[input[i] + 128]. In place is fine. */
TR_KERNEL void tr_lookup_int8(const int8_t *input, int8_t *output, int32_t size, const int8_t *table)
{
    for (int32_t i = 0; i < size; i++) {
        output[i] = table[input[i] + 128];
    }
}
