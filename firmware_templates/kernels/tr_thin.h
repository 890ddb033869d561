/*
 * tr_thin.h - a matmul layer of few inputs from its thin int16 stream (packing.pack_thin):
 * the layers of factored pairs (tr_fully_connected.c), the steps of the spatially factored
 * convolution (tr_conv_core.h) and of the Tucker chain (tr_conv_tucker.c), whose rows are short,
 * so that int8 weights pay most (two SXTB16 per weight word, a group setup spread over few MACs).
 * The stream holds, per group of four outputs, the four doubled biases, per input word eight
 * words of doubled int16 weight pairs (rows 0-3 against the (x0, x2) pair, then against (x1, x3):
 * the accumulators come out doubled without doubling the input), then (multiplier, right shift,
 * rounding) of each output: the generator uses it only with the doubled, full-range
 * requantization.
 *
 * The DSP path's loop has TR_THIN_WORDS straight steps of four inputs (128 inputs). Its deep
 * forms, for up to 256 inputs, run 32 steps more, then continue into those: 1.4 KB of flash per
 * form, defined only in tr_thin_deep.c, which the generator ships only with a model that has a
 * thin layer of more than 128 inputs (a factored pair's, fully_connected.thin_max_depth). The
 * other kernel files reach them through weak references, so every copy of tr_thin_pass_row is the
 * same whatever the model (two models of one firmware share one), and a firmware without the deep
 * forms links without them.
 *
 * The plain C path reads the same stream two groups (eight outputs) at a time, each input once
 * for eight MLAs. On a Cortex-M3 (TR_THIN_PAIR_ASM) that loop is assembly, requantization
 * included, and rows that come several at a time (a Tucker chain's 1x1 rows, two im2col columns)
 * run two rows against one group, each weight read once for both; elsewhere (the host, a
 * Cortex-M0) the loop is C.
 */
#ifndef TR_THIN_H
#define TR_THIN_H

#include <string.h>

#include "tr_matmul.h"
#include "tr_requantize.h"

/* Input words (of four) of the loop's straight steps; the deep forms take up to 64. */
#define TR_THIN_WORDS 32

/* The loop nests (defined below; weak: one copy for every kernel file that includes this; the
 * deep forms only in tr_thin_deep.c). */
#if TR_USE_DSP
typedef void tr_thin_groups_fn(const uint32_t *x_end, const int32_t *stream, int8_t *y, int8_t *y_end, int words);
__attribute__((naked, noinline, weak)) tr_thin_groups_fn tr_thin_groups;
__attribute__((naked, noinline, weak)) tr_thin_groups_fn tr_thin_groups_floor;
__attribute__((naked, noinline, weak)) tr_thin_groups_fn tr_thin_groups_deep;
__attribute__((naked, noinline, weak)) tr_thin_groups_fn tr_thin_groups_deep_floor;
#endif

/*
 * On the DSP path the row is widened once into int16 pairs (tr_thin_widen), then each
 * group of four outputs costs per input word one LDRD of the row's two pairs, two LDM of four
 * weight pairs and eight SMLAD (0.69 instructions per MAC instead of 1.13 with int8 weights,
 * which need SXTB16 and a second pass), plus per output one LDM of its constants, the doubled
 * requantization (SMMLAR, SUB, ASR, SSAT) and a byte store.
 */

/* The stream's int16 weights read one halfword at a time: on the plain C path each weight is one
 * LDRSH and one MLA, where a word load would add a SXTH or an ASR per half. */
#if defined(__GNUC__) || defined(__clang__)
typedef int16_t tr_thin_half __attribute__((may_alias));
#else
typedef int16_t tr_thin_half;
#endif

/* A doubled sum requantized by its stream constants c = (multiplier, right shift, rounding) over
 * the full int8 range, in plain C: tr_requantize_doubled, with the rounding constant added inside
 * the 64-bit product (one SMLAL on the Cortex-M3) and the sign correction taken from the sum,
 * whose sign the high product shares (a doubled sum is even, and the generator checked every
 * multiplier is above 2^30, as the DSP path's SMMLAR form also relies on). */
TR_INLINE int8_t tr_thin_requantize(int32_t acc2, const int32_t *c)
{
    const uint64_t sum = (uint64_t)((int64_t)acc2 * c[0]) + ((uint64_t)(uint32_t)c[2] << 32) + 0x80000000u;
    const int32_t high = (int32_t)(uint32_t)(sum >> 32); /* as SMMLAR: modulo 2^64, no overflow */
    return (int8_t)tr_saturate_int8((high - (int32_t)((uint32_t)acc2 >> 31)) >> c[1]);
}

/* Input value V of a word against the four rows of one group, its halfword K of each row's pair
 * words (the stream's order: per word, rows 0-3's (w0, w2) pairs, then their (w1, w3) pairs):
 * S0..S3 += V * H[K], H[K + 2], H[K + 4], H[K + 6], each one LDRSH and one MLA. */
#define TR_THIN_ROWS(V, H, K, S0, S1, S2, S3) \
    do { \
        S0 += (V) * (H)[(K)]; \
        S1 += (V) * (H)[(K) + 2]; \
        S2 += (V) * (H)[(K) + 4]; \
        S3 += (V) * (H)[(K) + 6]; \
    } while (0)
/* Input K (0-3) of the word at x against both groups h and g: read once for eight MLAs. Inputs
 * x0 and x2 pair with halfwords 0 and 1 of the first four pair words, x1 and x3 with those of the
 * next four. */
#define TR_THIN_INPUT(K) \
    do { \
        const int32_t v = x[K]; \
        const int half = ((K) & 1) * 8 + ((K) >> 1); \
        TR_THIN_ROWS(v, h, half, s0, s1, s2, s3); \
        TR_THIN_ROWS(v, g, half, s4, s5, s6, s7); \
    } while (0)

#if !TR_USE_DSP && defined(__thumb2__)
/* On a Cortex-M3 (Thumb-2 without the DSP extension) whole pairs run in assembly
 * (tr_thin_pairs_asm). In C, GCC, given the eight accumulators, two weight pointers, the row, its
 * end, the input and the weight (all fourteen registers), spilled five or six of them a word, and
 * kept the pair loop's pointers on the stack around about ten instructions of requantization an
 * output. */
#define TR_THIN_PAIR_ASM 1

/* What tr_thin_pairs_asm reads and advances (byte offsets in its assembly: 32-bit pointers). Rows
 * after the first (x_step bytes apart, out_depth outputs each) need whole words and whole pairs. */
typedef struct {
    const int8_t *x;        /*  0: the row's first word */
    const int8_t *x_end;    /*  4: the end of its whole words (at least one) */
    int8_t *y;              /*  8: the next pair's first output (advanced by 8 a pair) */
    int8_t *y_end;          /* 12: the end of all the rows' outputs */
    int32_t size;           /* 16: bytes of one group in the stream */
    const int8_t *done;     /* 20: x_end, or the end of a copy of a short last word padded with zeros */
    int8_t *row_end;        /* 24: the end of the row's outputs */
    int32_t x_step;         /* 28: bytes from one row to the next */
    int32_t out_depth;      /* 32: outputs of a row */
    const int32_t *stream;  /* 36: a row's first group */
} tr_thin_pairs_plan;
typedef char tr_thin_pairs_plan_layout[offsetof(tr_thin_pairs_plan, stream) == 36 ? 1 : -1];

/* One weight against input r12 into sum ACC: LDRSH and MLA (a word load would add a SXTH or an
 * ASR per half). */
#define TR_THIN_MLA(PTR, OFFSET, ACC) "ldrsh lr, [" PTR ", #" #OFFSET "]\n\tmla " ACC ", r12, lr, " ACC "\n\t"
/* Input XK of the word against rows 0-3 of both groups, at halfword byte offsets O0..O3. */
#define TR_THIN_PAIR_INPUT(XK, O0, O1, O2, O3) \
    "ldrsb r12, [r0, #" #XK "]\n\t" TR_THIN_MLA("r1", O0, "r4") TR_THIN_MLA("r1", O1, "r5") TR_THIN_MLA("r1", O2, "r6") \
        TR_THIN_MLA("r1", O3, "r7") TR_THIN_MLA("r2", O0, "r8") TR_THIN_MLA("r2", O1, "r9") \
            TR_THIN_MLA("r2", O2, "r10") TR_THIN_MLA("r2", O3, "r11")
/* One input word against both groups: inputs 3, 2, 1, then 0, whose loads advance the three
 * pointers (the sums are exact modulo 2^32 in any order). Inputs x0 and x2 pair with halfwords 0
 * and 1 of each row's first four pair words, x1 and x3 with those of the next four. */
#define TR_THIN_PAIR_WORD \
    TR_THIN_PAIR_INPUT(3, 18, 22, 26, 30) \
    TR_THIN_PAIR_INPUT(2, 2, 6, 10, 14) \
    TR_THIN_PAIR_INPUT(1, 16, 20, 24, 28) \
    "ldrsb r12, [r0], #4\n\t" TR_THIN_MLA("r1", 4, "r5") TR_THIN_MLA("r1", 8, "r6") TR_THIN_MLA("r1", 12, "r7") \
        "ldrsh lr, [r1], #32\n\tmla r4, r12, lr, r4\n\t" TR_THIN_MLA("r2", 4, "r9") TR_THIN_MLA("r2", 8, "r10") \
            TR_THIN_MLA("r2", 12, "r11") "ldrsh lr, [r2], #32\n\tmla r8, r12, lr, r8\n\t"
/* Sum ACC requantized from the constants at PTR (multiplier, right shift, rounding: one LDM into
 * MULT, SHIFT and r12, PTR advancing past them) and stored at [Y, #K]: tr_thin_requantize, SMLAL
 * adding the product to (rounding, 2^31) in r12:r0. Seven instructions; both assembly loops below. */
#define TR_THIN_M3_STORE(PTR, MULT, SHIFT, ACC, Y, K) \
    "ldm " PTR "!, {" MULT ", " SHIFT ", r12}\n\t" \
    "mov r0, #0x80000000\n\t" \
    "smlal r0, r12, " ACC ", " MULT "\n\t" \
    "sub r12, r12, " ACC ", lsr #31\n\t" \
    "asr r12, r12, " SHIFT "\n\t" \
    "ssat r12, #8, r12\n\t" \
    "strb r12, [" Y ", #" #K "]\n\t"
/* A pair's outputs 1-7: into r3 and r4 (free from the second output of a pair on), stored at lr. */
#define TR_THIN_PAIR_STORE(PTR, ACC, K) TR_THIN_M3_STORE(PTR, "r3", "r4", ACC, "lr", K)

/* Whole pairs from `group` on, into plan->y .. plan->row_end (eight outputs each) against row
 * plan->x, then the next rows' from plan->stream on, up to plan->y_end: per input word four LDRSB,
 * thirty-two LDRSH and MLA, a compare and a branch (70 instructions for 32 MACs), per output seven
 * (the first nine: no register is free for its LDM), 19 more a pair and 15 a row. The plan's
 * address waits at [sp] while the loop holds all fourteen registers (r0 the row, r1 and r2 the two
 * groups' weights, r3 the row's end, r4-r11 the sums, r12 the input, lr the weight). Once the row's
 * words are done, a short last word runs through the same loop from its padded copy (r0 is not yet
 * plan->done); then r1 and r2 point at the groups' constants, and the second group's end is the
 * next pair's first group. */
__attribute__((naked, noinline, weak)) void tr_thin_pairs_asm(tr_thin_pairs_plan *plan, const int32_t *group);
__attribute__((naked, noinline, weak)) void tr_thin_pairs_asm(tr_thin_pairs_plan *plan __attribute__((unused)),
                                                              const int32_t *group __attribute__((unused)))
{
    __asm__("push {r0, r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
            "1:\n\t" /* a pair: r1 its first group */
            "ldr lr, [sp]\n\t"
            "ldr r0, [lr]\n\t"
            "ldr r3, [lr, #4]\n\t"
            "ldr r12, [lr, #16]\n\t"
            "add r2, r1, r12\n\t"
            "ldm r1!, {r4, r5, r6, r7}\n\t" /* the doubled biases */
            "ldm r2!, {r8, r9, r10, r11}\n\t"
            "2:\n\t" TR_THIN_PAIR_WORD "cmp r0, r3\n\t"
            "bne 2b\n\t"
            "ldr lr, [sp]\n\t"
            "ldr r12, [lr, #20]\n\t"
            "cmp r0, r12\n\t"
            "bne 3f\n\t"
            "ldr lr, [lr, #8]\n\t" /* lr the pair's outputs */
            "ldr r3, [r1], #4\n\t" /* output 0: r3 the multiplier, r12:r0 the rounding, then r3 the shift */
            "ldr r12, [r1, #4]\n\t"
            "mov r0, #0x80000000\n\t"
            "smlal r0, r12, r4, r3\n\t"
            "sub r12, r12, r4, lsr #31\n\t"
            "ldr r3, [r1], #8\n\t"
            "asr r12, r12, r3\n\t"
            "ssat r12, #8, r12\n\t"
            "strb r12, [lr]\n\t" TR_THIN_PAIR_STORE("r1", "r5", 1) TR_THIN_PAIR_STORE("r1", "r6", 2)
                TR_THIN_PAIR_STORE("r1", "r7", 3) TR_THIN_PAIR_STORE("r2", "r8", 4) TR_THIN_PAIR_STORE("r2", "r9", 5)
                    TR_THIN_PAIR_STORE("r2", "r10", 6) TR_THIN_PAIR_STORE("r2", "r11", 7) "mov r1, r2\n\t"
            "ldr r0, [sp]\n\t"
            "add lr, lr, #8\n\t"
            "str lr, [r0, #8]\n\t"
            "ldr r3, [r0, #24]\n\t"
            "cmp lr, r3\n\t"
            "bne 1b\n\t"
            "ldr r12, [r0, #12]\n\t" /* the row is done: the next one, if any */
            "cmp lr, r12\n\t"
            "beq 4f\n\t"
            "ldr r12, [r0, #28]\n\t"
            "ldm r0, {r1, r2}\n\t"
            "add r1, r1, r12\n\t"
            "add r2, r2, r12\n\t"
            "stm r0, {r1, r2}\n\t"
            "str r2, [r0, #20]\n\t" /* no short word: done is x_end */
            "ldr r12, [r0, #32]\n\t"
            "add r3, r3, r12\n\t"
            "str r3, [r0, #24]\n\t"
            "ldr r1, [r0, #36]\n\t"
            "b 1b\n\t"
            "4:\n\t"
            "pop {r0, r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t"
            "3:\n\t" /* the short last word: its copy ends at plan->done */
            "sub r0, r12, #4\n\t"
            "mov r3, r12\n\t"
            "b 2b\n\t");
}
#undef TR_THIN_PAIR_STORE
#undef TR_THIN_PAIR_WORD
#undef TR_THIN_PAIR_INPUT
#undef TR_THIN_MLA

/* Two rows against one group (four outputs each): input XK of row A (r12, from r0) and of row B
 * (r3, from r2) against rows 0-3 of the group at halfword byte offsets O0..O3, each weight one
 * LDRSH for two MLAs. */
#define TR_THIN_TWO_MLA(OFFSET, A, B) \
    "ldrsh lr, [r1, #" #OFFSET "]\n\tmla " A ", r12, lr, " A "\n\tmla " B ", r3, lr, " B "\n\t"
#define TR_THIN_TWO_INPUT(XK, O0, O1, O2, O3) \
    "ldrsb r12, [r0, #" #XK "]\n\tldrsb r3, [r2, #" #XK "]\n\t" TR_THIN_TWO_MLA(O0, "r4", "r8") \
        TR_THIN_TWO_MLA(O1, "r5", "r9") TR_THIN_TWO_MLA(O2, "r6", "r10") TR_THIN_TWO_MLA(O3, "r7", "r11")
/* One input word of both rows, inputs 3, 2, 1, then 0, whose loads advance the three pointers. */
#define TR_THIN_TWO_WORD \
    TR_THIN_TWO_INPUT(3, 18, 22, 26, 30) \
    TR_THIN_TWO_INPUT(2, 2, 6, 10, 14) \
    TR_THIN_TWO_INPUT(1, 16, 20, 24, 28) \
    "ldrsb r12, [r0], #4\n\tldrsb r3, [r2], #4\n\t" TR_THIN_TWO_MLA(4, "r5", "r9") TR_THIN_TWO_MLA(8, "r6", "r10") \
        TR_THIN_TWO_MLA(12, "r7", "r11") "ldrsh lr, [r1], #32\n\tmla r4, r12, lr, r4\n\tmla r8, r3, lr, r8\n\t"
/* A row's four outputs: the constants at r1 into r2 and r3 (the rows' pointers, free once the
 * words are done). */
#define TR_THIN_TWO_STORE(ACC, Y, K) TR_THIN_M3_STORE("r1", "r2", "r3", ACC, Y, K)

/* What tr_thin_two_rows_asm reads and advances (byte offsets in its assembly). */
typedef struct {
    const int8_t *x;       /*  0: row A's first input; row B's is x_step further */
    const int8_t *x_end;   /*  4: the end of row A's inputs (whole words) */
    int8_t *y;             /*  8: row A's next group's outputs; row B's are out_depth further */
    int8_t *y_end;         /* 12: the end of the last row pair's outputs */
    int8_t *row_end;       /* 16: the end of row A's outputs */
    int32_t x_step;        /* 20: bytes from one row's inputs to the next's */
    int32_t out_depth;     /* 24: outputs of a row (whole groups) */
    const int32_t *stream; /* 28: a row's first group */
} tr_thin_two_plan;
typedef char tr_thin_two_plan_layout[offsetof(tr_thin_two_plan, stream) == 28 ? 1 : -1];

/* Pairs of rows (A and B, x_step apart), one group of four outputs at a time, from `group` on:
 * each weight is read once for both rows, so a word of four inputs costs 56 instructions for 32
 * MACs and 3 of loop control (59, against 70 one row and two groups at a time); each output 7, and
 * about 20 more a group. Registers in the loop: r0 and r2 rows A and B, r1 the weights, r4-r7 and
 * r8-r11 the two rows' sums, r12 and r3 their inputs, lr the weight; row A's input end waits at
 * [sp] and the plan's address at [sp, #8]. Once a group's words are done, row A's four outputs are
 * requantized, then r1 goes back to the group's constants for row B's (r7 its outputs). */
__attribute__((naked, noinline, weak)) void tr_thin_two_rows_asm(tr_thin_two_plan *plan, const int32_t *group);
__attribute__((naked, noinline, weak)) void tr_thin_two_rows_asm(tr_thin_two_plan *plan __attribute__((unused)),
                                                                 const int32_t *group __attribute__((unused)))
{
    __asm__("push {r0, r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
            "sub sp, sp, #8\n\t"
            "ldr r12, [r0, #4]\n\t"
            "str r12, [sp]\n\t"
            "1:\n\t" /* a group of both rows: r1 the group */
            "ldr lr, [sp, #8]\n\t"
            "ldr r0, [lr]\n\t"
            "ldr r2, [lr, #20]\n\t"
            "add r2, r2, r0\n\t"
            "ldm r1, {r8, r9, r10, r11}\n\t" /* the doubled biases, for both rows */
            "ldm r1!, {r4, r5, r6, r7}\n\t"
            "2:\n\t" TR_THIN_TWO_WORD "ldr r12, [sp]\n\t"
            "cmp r0, r12\n\t"
            "bne 2b\n\t"
            "ldr lr, [sp, #8]\n\t" /* row A's outputs */
            "ldr lr, [lr, #8]\n\t" TR_THIN_TWO_STORE("r4", "lr", 0) TR_THIN_TWO_STORE("r5", "lr", 1)
                TR_THIN_TWO_STORE("r6", "lr", 2) TR_THIN_TWO_STORE("r7", "lr", 3) "sub r1, r1, #48\n\t"
            "ldr r4, [sp, #8]\n\t" /* row B's outputs, r4 the plan from here on */
            "ldr r5, [r4, #24]\n\t"
            "add r7, lr, r5\n\t" TR_THIN_TWO_STORE("r8", "r7", 0) TR_THIN_TWO_STORE("r9", "r7", 1)
                TR_THIN_TWO_STORE("r10", "r7", 2) TR_THIN_TWO_STORE("r11", "r7", 3) "add lr, lr, #4\n\t"
            "str lr, [r4, #8]\n\t"
            "ldr r6, [r4, #16]\n\t"
            "cmp lr, r6\n\t"
            "bne 1b\n\t"
            "add lr, lr, r5\n\t" /* the row pair is done: the next, past row B's outputs */
            "ldr r6, [r4, #12]\n\t"
            "cmp lr, r6\n\t"
            "beq 3f\n\t"
            "str lr, [r4, #8]\n\t"
            "add r6, lr, r5\n\t"
            "str r6, [r4, #16]\n\t"
            "ldr r6, [r4, #20]\n\t"
            "ldr r0, [r4]\n\t"
            "add r0, r0, r6, lsl #1\n\t"
            "str r0, [r4]\n\t"
            "ldr r12, [sp]\n\t"
            "add r12, r12, r6, lsl #1\n\t"
            "str r12, [sp]\n\t"
            "ldr r1, [r4, #28]\n\t"
            "b 1b\n\t"
            "3:\n\t"
            "add sp, sp, #8\n\t"
            "pop {r0, r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");
}
#undef TR_THIN_TWO_STORE
#undef TR_THIN_M3_STORE
#undef TR_THIN_TWO_WORD
#undef TR_THIN_TWO_INPUT
#undef TR_THIN_TWO_MLA

/* Pairs of consecutive groups (eight outputs each) of a thin stream against row x, from `group`
 * on, into y .. end: the whole pairs in one call of the assembly, then a last pair of five to
 * seven outputs into eight bytes on the stack. A short last word of the row is read from a copy
 * padded with zeros (its weights past depth are zero too), the row itself if it has no whole
 * word. */
TR_MATMUL_LOOP void tr_thin_pairs_plain(const int8_t *x, int depth, const int32_t *group, int8_t *y, int8_t *end,
                                        int pairs);
TR_MATMUL_LOOP void tr_thin_pairs_plain(const int8_t *x, int depth, const int32_t *group, int8_t *y, int8_t *end,
                                        int pairs)
{
    const int size = 16 + 8 * ((depth + 3) / 4); /* one group's int32 words */
    const int whole = (int)(end - y) / 8 < pairs ? (int)(end - y) / 8 : pairs;
    uint32_t last_word = 0;
    tr_thin_pairs_plan plan = { .x = x, .x_end = x + (depth & ~3), .y = y, .y_end = y + 8 * whole, .size = 4 * size };
    plan.done = plan.x_end;
    plan.row_end = plan.y_end;
    if (depth & 3) {
        memcpy(&last_word, plan.x_end, (size_t)(depth & 3));
        plan.done = (const int8_t *)(const void *)&last_word + 4;
        if (depth < 4) {
            plan.x = plan.done - 4;
            plan.x_end = plan.done;
        }
    }
    if (whole > 0) {
        tr_thin_pairs_asm(&plan, group);
    }
    if (whole < pairs) {
        int8_t last[8];
        plan.y = last;
        plan.y_end = plan.row_end = last + 8;
        tr_thin_pairs_asm(&plan, group + 2 * size * whole);
        memcpy(y + 8 * whole, last, (size_t)(end - (y + 8 * whole)));
    }
}
#else
#define TR_THIN_PAIR_ASM 0

/* Pairs of consecutive groups (eight outputs each) of a thin stream against row x, from `group`
 * on, into y .. end (the last pair may hold five to seven outputs): per pair the doubled sums
 * (biases included), each input read once for the eight, over whole words and then a last short
 * word, requantized and stored (four LDRSB a word for thirty-two MACs instead of sixteen). The
 * host's and a Cortex-M0's form. Out of line, so the eight accumulators and the two weight
 * pointers have the registers to themselves. */
TR_MATMUL_LOOP void tr_thin_pairs_plain(const int8_t *x, int depth, const int32_t *group, int8_t *y, int8_t *end,
                                        int pairs);
TR_MATMUL_LOOP void tr_thin_pairs_plain(const int8_t *x, int depth, const int32_t *group, int8_t *y, int8_t *end,
                                        int pairs)
{
    const int size = 16 + 8 * ((depth + 3) / 4); /* one group's int32 words */
    const int8_t *const row = x, *const words_end = x + (depth & ~3);
    for (int p = 0; p < pairs; ++p, y += 8, group += 2 * size) {
        const int32_t *next = group + size;
        const tr_thin_half *h = (const tr_thin_half *)(const void *)(group + 4);
        const tr_thin_half *g = (const tr_thin_half *)(const void *)(next + 4);
        int32_t s0 = group[0], s1 = group[1], s2 = group[2], s3 = group[3];
        int32_t s4 = next[0], s5 = next[1], s6 = next[2], s7 = next[3];
        for (x = row; x < words_end; x += 4, h += 16, g += 16) {
            TR_THIN_INPUT(0);
            TR_THIN_INPUT(1);
            TR_THIN_INPUT(2);
            TR_THIN_INPUT(3);
        }
        switch (depth & 3) { /* values past depth are taken as zero (their weights are zero too) */
        case 3:
            TR_THIN_INPUT(2);
            /* fall through */
        case 2:
            TR_THIN_INPUT(1);
            /* fall through */
        case 1:
            TR_THIN_INPUT(0);
            break;
        default:
            break;
        }
        const int32_t *c = group + size - 12, *d = next + size - 12; /* multiplier, shift, rounding */
        if (end - y >= 8) {
            y[0] = tr_thin_requantize(s0, c);
            y[1] = tr_thin_requantize(s1, c + 3);
            y[2] = tr_thin_requantize(s2, c + 6);
            y[3] = tr_thin_requantize(s3, c + 9);
            y[4] = tr_thin_requantize(s4, d);
            y[5] = tr_thin_requantize(s5, d + 3);
            y[6] = tr_thin_requantize(s6, d + 6);
            y[7] = tr_thin_requantize(s7, d + 9);
        } else {
            const int32_t sums[8] = { s0, s1, s2, s3, s4, s5, s6, s7 };
            for (int k = 0; y + k < end; ++k) {
                y[k] = tr_thin_requantize(sums[k], k < 4 ? c + 3 * k : d + 3 * (k - 4));
            }
        }
    }
}
#endif

/* The four doubled sums of one group against row x: the last group where fewer than five
 * outputs remain. */
TR_INLINE void tr_thin_sums_plain(const int8_t *x, int depth, const int32_t *group, int32_t sums[4])
{
    const tr_thin_half *h = (const tr_thin_half *)(const void *)(group + 4);
    int32_t s0 = group[0], s1 = group[1], s2 = group[2], s3 = group[3];
    for (const int8_t *end = x + (depth & ~3); x < end; x += 4, h += 16) {
        const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        TR_THIN_ROWS(x0, h, 0, s0, s1, s2, s3);
        TR_THIN_ROWS(x2, h, 1, s0, s1, s2, s3);
        TR_THIN_ROWS(x1, h, 8, s0, s1, s2, s3);
        TR_THIN_ROWS(x3, h, 9, s0, s1, s2, s3);
    }
    const int left = depth & 3;
    if (left) {
        const int32_t x0 = x[0], x1 = left > 1 ? x[1] : 0, x2 = left > 2 ? x[2] : 0;
        TR_THIN_ROWS(x0, h, 0, s0, s1, s2, s3);
        TR_THIN_ROWS(x2, h, 1, s0, s1, s2, s3);
        TR_THIN_ROWS(x1, h, 8, s0, s1, s2, s3);
    }
    sums[0] = s0;
    sums[1] = s1;
    sums[2] = s2;
    sums[3] = s3;
}
#undef TR_THIN_INPUT
#undef TR_THIN_ROWS

/* Outputs y[0 .. out_depth) of row x in plain C, from `stream`: pairs of groups while more than
 * four outputs remain, then at most one group. The generic path (any depth; it reads x while it
 * stores y). */
TR_MATMUL_HELPER void tr_thin_groups_plain(const int8_t *x, int depth, const int32_t *stream, int8_t *y,
                                           int out_depth)
{
    const int size = 16 + 8 * ((depth + 3) / 4);
    int8_t *end = y + out_depth;
    const int pairs = out_depth > 4 ? (out_depth + 3) / 8 : 0; /* eight outputs each, the last five to eight */
    if (pairs > 0) {
        tr_thin_pairs_plain(x, depth, stream, y, end, pairs);
        stream += 2 * size * pairs;
        y = 8 * pairs < out_depth ? y + 8 * pairs : end;
    }
    if (y < end) {
        int32_t sums[4];
        tr_thin_sums_plain(x, depth, stream, sums);
        const int32_t *c = stream + size - 12;
        for (int k = 0; y + k < end; ++k) {
            y[k] = tr_thin_requantize(sums[k], c + 3 * k);
        }
    }
}

#if TR_USE_DSP
/* One input word of every group: the row's two pairs (LDRD, from the end of the widened row),
 * then the four outputs' weight pairs against each. Exactly 44 bytes (eleven 32-bit
 * instructions), so the entry point for `words` input words is 44 x words before the end. */
#define TR_THIN_STEP(OFFSET) \
    "ldrd r12, lr, [r0, #-(" #OFFSET ")]\n\t" \
    "ldm r1!, {r8, r9, r10, r11}\n\t" \
    "smlad r4, r12, r8, r4\n\t" \
    "smlad r5, r12, r9, r5\n\t" \
    "smlad r6, r12, r10, r6\n\t" \
    "smlad r7, r12, r11, r7\n\t" \
    "ldm r1!, {r8, r9, r10, r11}\n\t" \
    "smlad r4, lr, r8, r4\n\t" \
    "smlad r5, lr, r9, r5\n\t" \
    "smlad r6, lr, r10, r6\n\t" \
    "smlad r7, lr, r11, r7\n\t"
/* Accumulators A and B (two consecutive outputs) requantized (multiplier, right shift, rounding
 * of each from the stream, one LDM of six words: r12 and lr are free once the steps are done) and
 * stored; CA and CB are TFLM's sign correction of the rounding (SUB of the accumulator's sign bit)
 * or nothing. Five instructions an output and a half, against six with an LDM per output. */
#define TR_THIN_STORE_PAIR(A, CA, B, CB) \
    "ldm r1!, {r8, r9, r10, r11, r12, lr}\n\t" \
    "smmlar r10, " A ", r8, r10\n\t" \
    CA \
    "asr r10, r10, r9\n\t" \
    "ssat r10, #8, r10\n\t" \
    "strb r10, [r2], #1\n\t" \
    "smmlar lr, " B ", r11, lr\n\t" \
    CB \
    "asr lr, lr, r12\n\t" \
    "ssat lr, #8, lr\n\t" \
    "strb lr, [r2], #1\n\t"
#define TR_THIN_SIGN(R, A) "sub " R ", " R ", " A ", lsr #31\n\t"
/* Thirty-two steps, the first reading 256 + BASE bytes before the row's end, the last 8 + BASE
 * (the assembler adds): the 128 inputs of TR_THIN_WORDS (BASE 0), and the 32 steps of the deep
 * forms that come before them (BASE 256: LDRD's offset reaches 1020 bytes, the row's start is 512
 * before its end). */
#define TR_THIN_32_STEPS(BASE) \
    TR_THIN_STEP(BASE + 256) TR_THIN_STEP(BASE + 248) TR_THIN_STEP(BASE + 240) TR_THIN_STEP(BASE + 232) \
    TR_THIN_STEP(BASE + 224) TR_THIN_STEP(BASE + 216) TR_THIN_STEP(BASE + 208) TR_THIN_STEP(BASE + 200) \
    TR_THIN_STEP(BASE + 192) TR_THIN_STEP(BASE + 184) TR_THIN_STEP(BASE + 176) TR_THIN_STEP(BASE + 168) \
    TR_THIN_STEP(BASE + 160) TR_THIN_STEP(BASE + 152) TR_THIN_STEP(BASE + 144) TR_THIN_STEP(BASE + 136) \
    TR_THIN_STEP(BASE + 128) TR_THIN_STEP(BASE + 120) TR_THIN_STEP(BASE + 112) TR_THIN_STEP(BASE + 104) \
    TR_THIN_STEP(BASE + 96) TR_THIN_STEP(BASE + 88) TR_THIN_STEP(BASE + 80) TR_THIN_STEP(BASE + 72) \
    TR_THIN_STEP(BASE + 64) TR_THIN_STEP(BASE + 56) TR_THIN_STEP(BASE + 48) TR_THIN_STEP(BASE + 40) \
    TR_THIN_STEP(BASE + 32) TR_THIN_STEP(BASE + 24) TR_THIN_STEP(BASE + 16) TR_THIN_STEP(BASE + 8)
#define TR_THIN_STEPS TR_THIN_32_STEPS(0)
#define TR_THIN_DEEP_STEPS TR_THIN_32_STEPS(256)
/* The frame of both forms (nine registers, then the steps' entry point at [sp]): the entry is
 * 44 x words before label 2, the end of the function's steps; the deep forms' steps stand for the
 * words past the first TR_THIN_WORDS (SKIP subtracts those). Then the first group's biases and the
 * jump into the steps. */
#define TR_THIN_ENTER(SKIP) \
    "push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t" \
    "ldr r12, [sp, #36]\n\t" SKIP \
    "mov r8, #44\n\t" \
    "adr r9, 2f\n\t" \
    "mls r12, r12, r8, r9\n\t" \
    "orr r12, r12, #1\n\t" /* a Thumb address for LDR PC */ \
    "sub sp, sp, #4\n\t" \
    "str r12, [sp]\n\t" \
    "3:\n\t" \
    "ldm r1!, {r4, r5, r6, r7}\n\t" /* the four doubled biases */ \
    "ldr pc, [sp]\n\t" \
    ".p2align 2\n\t"
/* The C prototype of the naked functions (tr_thin_groups_fn; the assembly reads the arguments). */
#define TR_THIN_NAKED(NAME) \
    __attribute__((naked, noinline, weak)) void NAME( \
        const uint32_t *x_end __attribute__((unused)), const int32_t *stream __attribute__((unused)), \
        int8_t *y __attribute__((unused)), int8_t *y_end __attribute__((unused)), \
        int words __attribute__((unused)))

/* Whole groups of four outputs, y .. y_end, against the widened row that ends at x_end
 * (`words` input words, 1..32): all fourteen registers hold the loop (r0 the row's end, r1 the
 * stream, r2 and r3 the outputs, r4-r7 the accumulators, r8-r11 weights or constants, r12 and
 * lr the row's pairs), so the function NAME is written whole in assembly; the entry point of the
 * steps waits on the stack and each group jumps to it with one LDR PC. C0..C3 are the sign
 * corrections of the four outputs (or nothing). STEPS names the first step (a weak label: each
 * copy of the function is the same code) for the deep form to continue into. */
#define TR_THIN_GROUPS_FUNCTION(NAME, STEPS, C0, C1, C2, C3) \
    TR_THIN_NAKED(NAME) \
    { \
        __asm__(TR_THIN_ENTER("") \
                ".weak " STEPS "\n\t" \
                ".thumb_func\n\t" \
                STEPS ":\n\t" TR_THIN_STEPS "2:\n\t" TR_THIN_STORE_PAIR("r4", C0, "r5", C1) \
                    TR_THIN_STORE_PAIR("r6", C2, "r7", C3) "cmp r2, r3\n\t" \
                "bne 3b\n\t" \
                "add sp, sp, #4\n\t" \
                "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t"); \
    }
/* A deep form (33..64 words): the same frame, its 32 steps of the first words, then a branch to
 * STEPS, the short form's first step, whose steps, stores and loop do the rest (its loop jumps to
 * the entry point on the stack, in these steps: one branch more per group, 1.4 KB of code instead
 * of 2.9 KB for a form of its own). */
#define TR_THIN_DEEP_FUNCTION(NAME, STEPS) \
    TR_THIN_NAKED(NAME) \
    { \
        __asm__(TR_THIN_ENTER("sub r12, r12, #32\n\t") TR_THIN_DEEP_STEPS "2:\n\t" \
                "b.w " STEPS "\n\t"); \
    }

/* tr_thin_groups: TFLM's rounding. The _floor forms are for an output zero point of -128 (ReLU
 * layers): there a negative high product gives -128 or less with or without the sign correction,
 * which SSAT clamps to -128 either way, and a non-negative one has no correction, so the SUB is
 * dropped (one instruction per output). */
TR_THIN_GROUPS_FUNCTION(tr_thin_groups, "tr_thin_groups_steps", TR_THIN_SIGN("r10", "r4"), TR_THIN_SIGN("lr", "r5"),
                        TR_THIN_SIGN("r10", "r6"), TR_THIN_SIGN("lr", "r7"))
TR_THIN_GROUPS_FUNCTION(tr_thin_groups_floor, "tr_thin_groups_floor_steps", "", "", "", "")
#ifdef TR_THIN_DEEP_FORMS /* tr_thin_deep.c */
TR_THIN_DEEP_FUNCTION(tr_thin_groups_deep, "tr_thin_groups_steps")
TR_THIN_DEEP_FUNCTION(tr_thin_groups_deep_floor, "tr_thin_groups_floor_steps")
#endif
#undef TR_THIN_DEEP_FUNCTION
#undef TR_THIN_GROUPS_FUNCTION
#undef TR_THIN_NAKED
#undef TR_THIN_ENTER
#undef TR_THIN_DEEP_STEPS
#undef TR_THIN_STEPS
#undef TR_THIN_32_STEPS
#undef TR_THIN_SIGN
#undef TR_THIN_STEP
#undef TR_THIN_STORE_PAIR
#endif

#if TR_USE_DSP
/* Row x .. end widened into int16 pairs at out (tr_widen_row's order, not doubled), eight values
 * a pass (end - x a positive multiple of eight): two LDR (the row need not be word-aligned), four
 * SXTB16 and one STM, half the instructions of a word at a time (and on a Cortex-M4 about 16
 * cycles for two words instead of 22). *px and *pout advance past what was read and written. */
TR_INLINE void tr_thin_widen_eights(const int8_t **px, const int8_t *end, uint32_t **pout)
{
    const int8_t *x = *px;
    uint32_t *out = *pout, low, high;
    register uint32_t r8 __asm__("r8"), r9 __asm__("r9"), r10 __asm__("r10"), r11 __asm__("r11");
    __asm__ volatile("1:\n\t"
                     "ldr %[high], [%[x], #4]\n\t"
                     "ldr %[low], [%[x]], #8\n\t"
                     "sxtb16 r8, %[low]\n\t"
                     "sxtb16 r9, %[low], ror #8\n\t"
                     "sxtb16 r10, %[high]\n\t"
                     "sxtb16 r11, %[high], ror #8\n\t"
                     "stm %[out]!, {r8, r9, r10, r11}\n\t"
                     "cmp %[x], %[end]\n\t"
                     "bne 1b\n\t"
                     : [x] "+r"(x), [out] "+r"(out), [low] "=&r"(low), [high] "=&r"(high), "=&r"(r8), "=&r"(r9),
                       "=&r"(r10), "=&r"(r11)
                     : [end] "r"(end)
                     : "cc", "memory");
    *px = x;
    *pout = out;
}

/* Row x of `depth` values widened into int16 pairs at out: eight at a time, then the rest. */
TR_INLINE void tr_thin_widen(const int8_t *x, int depth, uint32_t *out)
{
    const int8_t *end = x + (depth & ~7);
    if (x != end) {
        tr_thin_widen_eights(&x, end, &out);
    }
    if (depth & 7) {
        tr_widen_row(x, depth & 7, out, 2, 0);
    }
}
#endif

/* One thin layer's row work, decided once per call: the loop form, the widened row's end and
 * the groups. A kernel that runs a layer row after row (a factored pair per pixel, a Tucker step
 * per pixel) then pays per row only the widening, the groups and one call: choosing the form and
 * its arguments for every row cost about 25 instructions more (bench_factored on the M4, pw
 * 32-8-64 over 8x8 pixels: 46 instructions a row outside the loops before, 71,258 in all). */
typedef struct {
    const int32_t *stream;
    int depth, out_depth;
#if TR_USE_DSP
    int whole; /* the outputs in groups of four */
    tr_thin_groups_fn *run;
    int words; /* input words of four */
    int even;  /* inputs a multiple of eight and outputs of four: tr_thin_pass_row's short path */
#elif TR_THIN_PAIR_ASM
    int pairs_only; /* whole words in, whole pairs out: rows run in one call of tr_thin_pairs_asm */
    int two_rows;   /* whole words in, whole groups out: rows two at a time (tr_thin_two_rows_asm) */
#endif
} tr_thin_pass;

/* The pass of a layer of `depth` inputs and `out_depth` outputs (`output_offset` -128 drops the
 * sign correction). */
TR_INLINE tr_thin_pass tr_thin_prepare(int depth, const int32_t *stream, int out_depth, int32_t output_offset)
{
    tr_thin_pass pass = { .stream = stream, .depth = depth, .out_depth = out_depth };
#if TR_USE_DSP
    pass.whole = out_depth & ~3;
    const int at_floor = output_offset == -128;
    pass.words = (depth + 3) / 4;
    pass.run = pass.words > TR_THIN_WORDS ? (at_floor ? tr_thin_groups_deep_floor : tr_thin_groups_deep)
                                          : (at_floor ? tr_thin_groups_floor : tr_thin_groups);
    pass.even = depth > 0 && depth % 8 == 0 && out_depth > 0 && out_depth % 4 == 0;
#else
    (void)output_offset;
#if TR_THIN_PAIR_ASM
    pass.two_rows = depth > 0 && depth % 4 == 0 && out_depth > 0 && out_depth % 4 == 0;
    pass.pairs_only = pass.two_rows && out_depth % 8 == 0;
#endif
#endif
    return pass;
}

/* Whether `rows` rows of x (x_step bytes apart, depth each) and of y (out_depth each) share a byte. */
TR_INLINE int tr_thin_rows_overlap(const tr_thin_pass *pass, const int8_t *x, int x_step, const int8_t *y, int rows)
{
    const uintptr_t x_end = (uintptr_t)(x + (rows - 1) * x_step + pass->depth);
    return (uintptr_t)y < x_end && (uintptr_t)x < (uintptr_t)(y + rows * pass->out_depth);
}

#if TR_THIN_PAIR_ASM
/* `rows` rows (x_step bytes apart) of a pass of whole words and whole pairs (`pairs_only`) in one
 * call of the assembly: a Cortex-M3 pays per row about 15 instructions instead of about 75 through
 * tr_thin_pass_row, tr_thin_groups_plain and tr_thin_pairs_plain. */
TR_INLINE void tr_thin_rows_asm(const tr_thin_pass *pass, const int8_t *x, int x_step, int8_t *y, int rows)
{
    tr_thin_pairs_plan plan = {
        .x = x, .x_end = x + pass->depth, .y = y, .y_end = y + rows * pass->out_depth,
        .size = 4 * (16 + 2 * pass->depth), .done = x + pass->depth, .row_end = y + pass->out_depth,
        .x_step = x_step, .out_depth = pass->out_depth, .stream = pass->stream,
    };
    tr_thin_pairs_asm(&plan, pass->stream);
}

/* `rows` rows (an even count, x_step bytes apart) of a pass of whole words and whole groups
 * (`two_rows`) in one call of the assembly, two rows at a time: each weight read once for both. */
TR_INLINE void tr_thin_two_rows(const tr_thin_pass *pass, const int8_t *x, int x_step, int8_t *y, int rows)
{
    tr_thin_two_plan plan = {
        .x = x, .x_end = x + pass->depth, .y = y, .y_end = y + rows * pass->out_depth, .row_end = y + pass->out_depth,
        .x_step = x_step, .out_depth = pass->out_depth, .stream = pass->stream,
    };
    tr_thin_two_rows_asm(&plan, pass->stream);
}
#endif

#if TR_USE_DSP
/* tr_thin_pass_row for any depth and output count (a last input word widened apart, a partial
 * last group run through the same loop into four bytes on the stack, where the plain C loop would
 * cost about eight instructions per input); out of line, so the short path keeps a small frame. */
TR_MATMUL_LOOP void tr_thin_pass_row_any(const tr_thin_pass *pass, const int8_t *x, int8_t *y, uint32_t *wide);
TR_MATMUL_LOOP void tr_thin_pass_row_any(const tr_thin_pass *pass, const int8_t *x, int8_t *y, uint32_t *wide)
{
    const int whole = pass->whole, words = pass->words;
    const uint32_t *x_end = wide + 2 * words;
    tr_thin_widen(x, pass->depth, wide);
    if (whole > 0) {
        pass->run(x_end, pass->stream, y, y + whole, words);
    }
    if (whole < pass->out_depth) {
        int8_t last[4];
        pass->run(x_end, pass->stream + (whole / 4) * (16 + 8 * words), last, last + 4, words);
        for (int k = 0; whole + k < pass->out_depth; ++k) {
            y[whole + k] = last[k];
        }
    }
}
#endif

/* One row x -> y through a pass (`wide`: scratch for the widened row, TR_MATMUL_WIDE_WORDS(depth,
 * 1) words). A thin layer's clamp is the whole int8 range. The row is read whole before the first
 * output is stored (the DSP path widens it, the plain C path copies it where the outputs overlap
 * it), so the outputs may overwrite it (inplace.narrow_in_input). On the DSP path a row of whole
 * passes of eight inputs into whole groups (`even`) is widened and run with nothing else: 14
 * instructions a row outside the loops, against 31 for the general form. */
TR_MATMUL_LOOP void tr_thin_pass_row(const tr_thin_pass *pass, const int8_t *x, int8_t *y, uint32_t *wide);
TR_MATMUL_LOOP void tr_thin_pass_row(const tr_thin_pass *pass, const int8_t *x, int8_t *y, uint32_t *wide)
{
#if TR_USE_DSP
    if (!pass->even) {
        tr_thin_pass_row_any(pass, x, y, wide);
        return;
    }
    uint32_t *x_end = wide;
    tr_thin_widen_eights(&x, x + pass->depth, &x_end);
    pass->run(x_end, pass->stream, y, y + pass->out_depth, pass->words);
#else
    const int depth = pass->depth;
    const int overlap = tr_thin_rows_overlap(pass, x, 0, y, 1);
#if TR_THIN_PAIR_ASM
    if (pass->pairs_only && !overlap) {
        tr_thin_rows_asm(pass, x, 0, y, 1);
        return;
    }
#endif
    if (overlap) {
        /* the outputs overwrite the row (a pair's rank-r vector kept in its input's bytes, as a
         * DSP target's plan may place it): read a copy, as the DSP path reads the widened row */
        memcpy(wide, x, (size_t)depth);
        x = (const int8_t *)(const void *)wide;
    }
    tr_thin_groups_plain(x, depth, pass->stream, y, pass->out_depth);
#endif
}

/* `rows` rows through a pass, x_step bytes apart in x (they may overlap: a convolution's columns
 * in one padded row) and out_depth apart in y. */
TR_INLINE void tr_thin_pass_rows(const tr_thin_pass *pass, const int8_t *x, int x_step, int8_t *y, int rows,
                                 uint32_t *wide)
{
#if TR_THIN_PAIR_ASM
    if (rows > 0 && (pass->two_rows || pass->pairs_only) && !tr_thin_rows_overlap(pass, x, x_step, y, rows)) {
        const int even = pass->two_rows ? rows & ~1 : 0; /* two at a time: each weight read once for both */
        if (even > 0) {
            tr_thin_two_rows(pass, x, x_step, y, even);
        }
        if (even < rows && pass->pairs_only) {
            tr_thin_rows_asm(pass, x + even * x_step, x_step, y + even * pass->out_depth, rows - even);
        } else if (even < rows) {
            tr_thin_pass_row(pass, x + even * x_step, y + even * pass->out_depth, wide);
        }
        return;
    }
#endif
    for (int r = 0; r < rows; ++r) {
        tr_thin_pass_row(pass, x + r * x_step, y + r * pass->out_depth, wide);
    }
}

/* `rows` rows of one layer: from its thin stream row by row where it has one (`thin` not NULL;
 * `layer` then gives only the output zero point), else the int8 matmul loops. */
TR_INLINE void tr_layer_rows(const int8_t *x, int8_t *y, int rows, int depth, int out_depth,
                             const tr_matmul_layer *layer, const int32_t *thin, uint32_t *scratch)
{
    if (thin == NULL) {
        tr_matmul_rows(x, y, rows, depth, out_depth, layer, scratch);
        return;
    }
    const tr_thin_pass pass = tr_thin_prepare(depth, thin, out_depth, layer->output_offset);
    tr_thin_pass_rows(&pass, x, depth, y, rows, scratch);
}

#endif /* TR_THIN_H */
