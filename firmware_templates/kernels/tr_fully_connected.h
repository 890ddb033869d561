/*
 * tr_fully_connected.h - TFLite FULLY_CONNECTED, int8 (also a 1x1 stride-1 CONV_2D, whose pixels
 * are the rows), and the fused pair of a low-rank factored layer (two FULLY_CONNECTED, or two
 * pointwise CONV_2D, through a rank-r tensor). The loops are those of tr_matmul.h.
 */
#ifndef TR_FULLY_CONNECTED_H
#define TR_FULLY_CONNECTED_H

#include "tr_params.h"

/* One layer in the matmul layout (tr_matmul.h). `channels` holds four int32 per output channel,
 * padded to whole groups of four: folded bias, multiplier, shift, rounding (TR_CHANNEL_*). With
 * `doubled` = 0 they are TFLM's general form (shift: QuantizeMultiplier's exponent, rounding
 * unused); with `doubled` = 1 the doubled form the generator proved exact (bias doubled, shift:
 * the right shift, rounding: 2^(shift-1) plus the output zero point shifted left). */
typedef struct {
    const int8_t *filter;    /* [groups][words][4 rows][4 bytes], zero-padded (packing.pack_matmul) */
    const int32_t *channels; /* [4 * groups][4] */
    int32_t doubled;         /* which requantization `channels` holds (see above) */
    int32_t output_offset;   /* the output zero point */
    int32_t act_min, act_max; /* the fused activation's int8 range */
} tr_matmul_layer;

typedef struct {
    int32_t batches;      /* input rows */
    int32_t input_depth;  /* values per input row */
    int32_t output_depth; /* values per output row (filter rows) */
    tr_matmul_layer layer;
} tr_fc_params;

/* Two layers through a narrow rank-r tensor that never reaches the arena. */
typedef struct {
    int32_t batches, input_depth, rank, output_depth;
    tr_matmul_layer first;  /* input_depth -> rank (filter and channels NULL when `first_thin` is set) */
    tr_matmul_layer second; /* rank -> output_depth (filter and channels NULL when `second_thin` is set) */
    /* NULL, or the layer as one thin stream of int32 (packing.pack_thin; at most 128 inputs, doubled
     * full-range requantization): per group of four outputs the four doubled biases, per input
     * word eight words of int16 weight pairs (rows 0-3 against the (x0, x2) pair, then against
     * (x1, x3)), then (multiplier, right shift, rounding) of each output. */
    const int32_t *first_thin;
    const int32_t *second_thin;
    /* 1 where the layer is a row stream (packing.pack_row_stream, the table of
     * fully_connected.row_stream_table; as tr_fully_connected_row_int8): set only in a pair of one
     * row (batches = 1) on DSP targets, for a layer into more than four outputs with no thin stream;
     * read only by tr_fully_connected_factored_row_int8. */
    int32_t first_stream;
    int32_t second_stream;
} tr_fc_factored_params;

/* output[b][o] = requantize(bias[o] + sum_i filter[o][i] * input[b][i]); `wide` is the scratch of
 * TR_MATMUL_WIDE_WORDS(input_depth, min(batches, 2)) words, NULL for one row of at most four
 * outputs (read in place). */
void tr_fully_connected_int8(const tr_fc_params *params, const int8_t *input, int8_t *output, int8_t *wide);

/* One input row (batches = 1, more than four outputs) from weights packed as a row stream
 * (packing.pack_row_stream: the matmul layout's bytes permuted and XORed) and a table whose bias
 * field is -bias - 127 sum(w0 + w2) (tr_fully_connected.c has the arithmetic); `wide` is the
 * scratch of TR_MATMUL_WIDE_WORDS(input_depth, 1) words. Generated for DSP targets only. */
void tr_fully_connected_row_int8(const tr_fc_params *params, const int8_t *input, int8_t *output, int8_t *wide);

/* Both layers two input rows at a time (no layer in the row stream); `narrow` is 2 * rank bytes of
 * scratch (rank bytes for one row), `wide` the matmul scratch of the wider of input_depth and rank. */
void tr_fully_connected_factored_int8(const tr_fc_factored_params *params, const int8_t *input, int8_t *output,
                                      int8_t *narrow, int8_t *wide);

/* A pair of one row with a layer in the row stream (`first_stream` or `second_stream` set; DSP
 * targets): each layer from its own form; `narrow` rank bytes, `wide` as above. */
void tr_fully_connected_factored_row_int8(const tr_fc_factored_params *params, const int8_t *input,
                                          int8_t *output, int8_t *narrow, int8_t *wide);

/* A pair whose two layers are thin streams (`first_thin` and `second_thin` set): row by row through
 * tr_thin_pass_row only, so the matmul loops (some 15 KB of code) are not linked into a firmware that
 * never runs them; `narrow` rank bytes, `wide` as above. */
void tr_fully_connected_factored_thin_int8(const tr_fc_factored_params *params, const int8_t *input,
                                           int8_t *output, int8_t *narrow, int8_t *wide);

#endif /* TR_FULLY_CONNECTED_H */
