/*
 * tr_fully_connected.h - TFLite FULLY_CONNECTED, int8 (also a 1x1 stride-1 CONV_2D, whose pixels
 * are the rows), and the fused pair of a low-rank factored layer.
 */
#ifndef TR_FULLY_CONNECTED_H
#define TR_FULLY_CONNECTED_H

#include "tr_params.h"

typedef struct {
    int32_t batches;      /* input rows */
    int32_t input_depth;  /* values per input row */
    int32_t output_depth; /* values per output row (filter rows) */
    const int8_t *filter; /* [output_depth][input_depth], rows packed by four */
    const int32_t *bias;  /* [output_depth], the input zero point folded in */
    tr_requant_params requant;
} tr_fc_params;

/* Two FULLY_CONNECTED layers through a narrow rank-r tensor that never reaches the arena. */
typedef struct {
    int32_t batches, input_depth, rank, output_depth;
    tr_dense_layer first;  /* input_depth -> rank */
    tr_dense_layer second; /* rank -> output_depth */
} tr_fc_factored_params;

/* output[b][o] = requantize(bias[o] + sum_i filter[o][i] * input[b][i]). */
void tr_fully_connected_int8(const tr_fc_params *params, const int8_t *input, int8_t *output);

/* Both layers one input row at a time; `narrow` is `rank` bytes of scratch. */
void tr_fully_connected_factored_int8(const tr_fc_factored_params *params, const int8_t *input, int8_t *output,
                                      int8_t *narrow);

#endif /* TR_FULLY_CONNECTED_H */
