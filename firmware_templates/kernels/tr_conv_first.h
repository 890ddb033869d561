/*
 * tr_conv_first.h - TFLite CONV_2D over one to three input channels (a network's first layer:
 * DS-CNN's 10x4 over one channel, ResNet-8's and MobileNet's 3x3 over RGB), int8 NHWC input,
 * OHWI weights, per-channel requantization. The fields are tr_conv_params' (tr_conv.h).
 */
#ifndef TR_CONV_FIRST_H
#define TR_CONV_FIRST_H

#include "tr_conv.h"

/* The same fields as an ordinary convolution: only the kernel differs. */
typedef tr_conv_params tr_conv_first_params;

/* `columns`: scratch for two im2col columns of whole words, 8 * ((k_h * k_w * in_c + 3) / 4) bytes;
 * `wide`: the matmul scratch, TR_MATMUL_WIDE_WORDS(k_h * k_w * in_c, 2) words (unused on the plain
 * C path). */
void tr_conv_first_int8(const tr_conv_first_params *params, const int8_t *input, int8_t *output, int8_t *columns,
                        int8_t *wide);

#endif /* TR_CONV_FIRST_H */
