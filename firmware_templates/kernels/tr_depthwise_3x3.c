/*
 * tr_depthwise_3x3.c - 3x3 DEPTHWISE_CONV_2D, depth multiplier 1 (tr_depthwise_3x3.h).
 *
 * A depthwise 3x3 reads every input value up to nine times, so each is widened to int16 once:
 * per group of four channels, the input rows the current output row needs are held in a ring of
 * three rows of stored columns in scratch (a row above or below the image is a prebuilt row of
 * zero points; the generator folded -zero_point x sum(weights) into the bias, so padding adds
 * nothing). Per output pixel and kernel row, channel c adds taps 0 and 1 with one SMLAD on the
 * pair word (x, x + 1) and tap 2 with one SMLABB/SMLATT on the word holding column x + 2: per
 * four channels and kernel row, three load-multiples or pairs of loads (pairs, singles, weights)
 * and eight multiply-accumulates for twelve MACs. The plain C path runs the same layout.
 *
 * On the DSP path one assembly loop runs all of a group's output rows and, between them, moves
 * the window down itself (tr_dw3_next_row widens the incoming row, its edge columns read from a
 * per-layer table instead of tested per column; past the image it moves in the row of zero
 * points); it also takes the group's first input rows, the window starting below the rows of
 * padding above the image (the same for every group), and reads the group's requantization
 * constants and biases where the generator laid them out (`group_constants`, then their only copy:
 * the C loop, which runs a partial last group, reads that table too): per group, C sets
 * four pointers and calls it (MobileNet's last layers have 32-64 groups of nine pixels, so what a
 * group costs outside its pixels counted for a quarter of their time). A row still costs some fifty
 * instructions of bookkeeping per group of four channels, so the kernel can also run an image by
 * columns (`transposed`): a stride across of 3 always, a tall image where the generator finds the
 * arena room for the longer rows (DS-CNN's 25x5 maps would run 12% faster as five rows of 25, but
 * their ring would grow from 480 to 2,400 bytes and set the arena's peak).
 */
#include "tr_depthwise_3x3.h"

#include <stddef.h>
#include <string.h>

#include "tr_dot.h"
#include "tr_requantize.h"

/* The inline assembly of the DSP path needs the optimizer: gcc 12 at -O0 cannot allocate it. */
#if TR_USE_DSP && defined(__OPTIMIZE__)
#define TR_DW3_ASM 1
#else
#define TR_DW3_ASM 0
#endif

/* Four int8 channels from any address as one word. */
TR_INLINE int32_t tr_dw3_word(const int8_t *p)
{
    int32_t word;
    memcpy(&word, p, 4);
    return word;
}

/* The high halves of two words, `a`'s low: (a >> 16, b >> 16). */
TR_INLINE int32_t tr_dw3_pair_high(int32_t a, int32_t b)
{
    return (int32_t)(((uint32_t)a >> 16) | ((uint32_t)b & 0xffff0000u));
}

/* acc + low(x) * low(w) */
TR_INLINE int32_t tr_dw3_low(int32_t x, int32_t w, int32_t acc)
{
#if TR_USE_DSP
    return __smlabb(x, w, acc);
#else
    return acc + (int32_t)(int16_t)x * (int32_t)(int16_t)w;
#endif
}

/* acc + high(x) * high(w) */
TR_INLINE int32_t tr_dw3_high(int32_t x, int32_t w, int32_t acc)
{
#if TR_USE_DSP
    return __smlatt(x, w, acc);
#else
    return acc + (x >> 16) * (w >> 16);
#endif
}

/* Four int8 channels of one pixel as int16 pairs (channel 0, 2) and (channel 1, 3). */
TR_INLINE void tr_dw3_widen(int32_t word, int32_t *even, int32_t *odd)
{
#if TR_USE_DSP
    *even = __sxtb16(word);
    *odd = tr_sxtb16_ror8(word);
#else
    *even = tr_pack_int16_pair((int8_t)word, (int8_t)(word >> 16));
    *odd = tr_pack_int16_pair((int8_t)(word >> 8), (int8_t)(word >> 24));
#endif
}

/* One stored column from the widened input columns x (e0, o0), x + 1 (e1, o1) and x + 2 (e2, o2). */
TR_INLINE void tr_dw3_store(int32_t *out, int32_t e0, int32_t o0, int32_t e1, int32_t o1, int32_t e2, int32_t o2)
{
#if TR_DW3_ASM
    int32_t t0, t1;
    __asm__ volatile("pkhbt %[t0], %[e0], %[e1], lsl #16\n\t"
            "pkhbt %[t1], %[o0], %[o1], lsl #16\n\t"
            "strd %[t0], %[t1], [%[out]]\n\t"
            "pkhtb %[t0], %[e1], %[e0], asr #16\n\t"
            "pkhtb %[t1], %[o1], %[o0], asr #16\n\t"
            "strd %[t0], %[t1], [%[out], #8]\n\t"
            "strd %[e2], %[o2], [%[out], #16]"
            : [t0] "=&r"(t0), [t1] "=&r"(t1)
            : [out] "r"(out), [e0] "r"(e0), [o0] "r"(o0), [e1] "r"(e1), [o1] "r"(o1), [e2] "r"(e2), [o2] "r"(o2)
            : "memory");
#else
    out[0] = tr_pack_int16_pair(e0, e1);
    out[1] = tr_pack_int16_pair(o0, o1);
    out[2] = tr_dw3_pair_high(e0, e1);
    out[3] = tr_dw3_pair_high(o0, o1);
    out[4] = e2;
    out[5] = o2;
#endif
}

/* The `valid` (1..4) channels of input column x of `row` (`col_bytes` apart), the others 0; the
 * zero point outside. */
static int32_t tr_dw3_read(const int8_t *row, int x, int in_w, int col_bytes, int valid, int32_t zero_word)
{
    if (row == NULL || x < 0 || x >= in_w) {
        return zero_word;
    }
    const int8_t *p = row + x * col_bytes;
    if (valid == 4) {
        return tr_dw3_word(p);
    }
    uint32_t word = 0;
    for (int k = 0; k < valid; ++k) {
        word |= (uint32_t)(uint8_t)p[k] << (8 * k);
    }
    return (int32_t)word;
}

/* Four channels of input column x (at byte offset `offset` of `row`), the zero point outside. */
TR_INLINE int32_t tr_dw3_at(const int8_t *row, int x, int offset, int in_w, int32_t zero_word)
{
    return (unsigned)x < (unsigned)in_w ? tr_dw3_word(row + offset) : zero_word;
}

/* What the widening of a row needs of the layer, worked out once per call. */
typedef struct {
    int in_w, pad_left, step, n_cols;
    int col_bytes, row_bytes; /* from one input column (row) to the next: see tr_dw3_strides */
    int n_in;          /* stored columns 0 .. n_in - 1 read only input columns inside the row */
    int row_words;     /* words of one stored row: n_cols stored columns */
    int32_t zero_word; /* four channels of the input zero point */
} tr_dw3_shape;

/* n_in of tr_dw3_shape (step 2 reads x + 3 too, for the next column). */
static int tr_dw3_inner_columns(int in_w, int pad_left, int step, int n_cols)
{
    const int last = in_w - 3 - (step - 1) + pad_left; /* the last j * step whose reads are inside */
    const int n_in = last < 0 ? 0 : last / step + 1;
    return n_in < n_cols ? n_in : n_cols;
}

#if TR_DW3_ASM
/* How a layer's rows are widened into the ring of stored rows, worked out once per call; the
 * assembly (tr_dw3_next_row) reads the fields by these offsets. A row's input columns form one
 * stream, read in order: the row's own columns while the stored columns read inside it, then
 * `tail`, the stream's next words as the row would give them (zero points past its end), so no
 * stored column tests a bound. */
typedef struct {
    int32_t first[2];       /* +0: the stream's columns before it: step 1 columns x, x + 1, step 2 column x */
    int32_t stride;         /* +8: bytes from one stream word to the next in the row */
    const int32_t *end;     /* +12: past the row's last stored column */
    int32_t tail[4];        /* +16: the stream past the columns inside the row */
    int32_t loads;          /* +32: how many of the words above each row gives (the others: zero points) */
    int32_t load_offset[6]; /* +36: each one's byte offset in the row */
    int32_t load_index[6];  /* +60: and its word index in this struct */
    int32_t head;           /* +84: bytes from a row to its stream's first word */
    int32_t inner_bytes;    /* +88: bytes of the stored columns that read inside the row */
    int32_t row_bytes;      /* +92: bytes from one input row to the next */
    int32_t slot_bytes;     /* +96: bytes of one stored row */
    int32_t *ring;          /* +100: three stored rows ... */
    int32_t *ring_end;      /* +104: ... then a row of zero points */
    int32_t entry;          /* +108: where tr_dw3_next_row enters the widening loop (0-2: step 1, 3-4: step 2) */
} tr_dw3_widening;

/* One stored column: the next stream word from r0 (advanced by r8 bytes) widened into (ce, co);
 * the column pairs from the widened columns (ae, ao), (be, bo); six words to r1 (advanced).
 * r3, r9-r11 are scratch. */
#define TR_DW3_COLUMN_ASM(ae, ao, be, bo, ce, co)        \
    "ldr r3, [r0]\n\t"                                   \
    "add r0, r0, r8\n\t"                                 \
    "sxtb16 " ce ", r3\n\t"                              \
    "sxtb16 " co ", r3, ror #8\n\t"                      \
    "pkhbt r3, " ae ", " be ", lsl #16\n\t"               \
    "pkhbt r9, " ao ", " bo ", lsl #16\n\t"               \
    "pkhtb r10, " be ", " ae ", asr #16\n\t"              \
    "pkhtb r11, " bo ", " ao ", asr #16\n\t"              \
    "stmia r1!, {r3, r9, r10, r11}\n\t"                  \
    "strd " ce ", " co ", [r1], #8\n\t"

/* The inner stored columns (those reading only the row) run unrolled with one end test per unroll,
 * entered at the column that makes their count come out even (`entry`); then the stream goes on
 * from the tail (four bytes a word) up to the row's end, one test a column. The widening is at
 * [sp]; r1 at r2 ends the inner run. Done at 9. */
#define TR_DW3_TAIL_ASM           \
    "ldr r3, [sp]\n\t"             \
    "ldr r9, [r3, #12]\n\t"        \
    "cmp r2, r9\n\t"               \
    "beq 9f\n\t"                   \
    "mov r2, r9\n\t"               \
    "add r0, r3, #16\n\t"          \
    "mov r8, #4\n\t"

/* The stored columns of a row at step 1: r0 the stream's first word (input column x + 2 of the
 * first stored column), r3 the widening. The three widened columns rotate through r4-r7 and
 * r12/lr (unrolled by three), so nothing moves: each entry (11, 12, 13: at the loop's first,
 * second or third column) puts the first two widened columns where that column reads them. */
#define TR_DW3_SLIDE1_ASM                                                                        \
    "12:\n\t"                                                                                    \
    "ldm r3, {r6, r7, r8}\n\t"                                                                   \
    "sxtb16 r12, r7\n\t"                                                                         \
    "sxtb16 lr, r7, ror #8\n\t"                                                                  \
    "sxtb16 r7, r6, ror #8\n\t"                                                                  \
    "sxtb16 r6, r6\n\t"                                                                          \
    "b 2f\n\t"                                                                                   \
    "13:\n\t"                                                                                    \
    "ldm r3, {r4, r5, r8}\n\t"                                                                   \
    "sxtb16 r12, r4\n\t"                                                                         \
    "sxtb16 lr, r4, ror #8\n\t"                                                                  \
    "sxtb16 r4, r5\n\t"                                                                          \
    "sxtb16 r5, r5, ror #8\n\t"                                                                  \
    "b 3f\n\t"                                                                                   \
    "11:\n\t"                                                                                    \
    "ldm r3, {r4, r5, r8}\n\t"                                                                   \
    "sxtb16 r6, r5\n\t"                                                                          \
    "sxtb16 r7, r5, ror #8\n\t"                                                                  \
    "sxtb16 r5, r4, ror #8\n\t"                                                                  \
    "sxtb16 r4, r4\n\t"                                                                          \
    "1:\n\t" TR_DW3_COLUMN_ASM("r4", "r5", "r6", "r7", "r12", "lr")                                \
    "2:\n\t" TR_DW3_COLUMN_ASM("r6", "r7", "r12", "lr", "r4", "r5")                                \
    "3:\n\t" TR_DW3_COLUMN_ASM("r12", "lr", "r4", "r5", "r6", "r7") "cmp r1, r2\n\t"                \
    "bne 1b\n\t" TR_DW3_TAIL_ASM                                                                 \
    "14:\n\t" TR_DW3_COLUMN_ASM("r4", "r5", "r6", "r7", "r12", "lr") "cmp r1, r2\n\t"               \
    "beq 9f\n\t" TR_DW3_COLUMN_ASM("r6", "r7", "r12", "lr", "r4", "r5") "cmp r1, r2\n\t"            \
    "beq 9f\n\t" TR_DW3_COLUMN_ASM("r12", "lr", "r4", "r5", "r6", "r7") "cmp r1, r2\n\t"            \
    "bne 14b\n\t"                                                                                \
    "b 9f\n\t"

/* One stored column at step 2: the stream's next word (its input column x + 1) widened into r6/r7,
 * then TR_DW3_COLUMN_ASM. */
#define TR_DW3_STEP2_COLUMN_ASM(ae, ao, ce, co) \
    "ldr r3, [r0]\n\t"                          \
    "add r0, r0, r8\n\t"                        \
    "sxtb16 r6, r3\n\t"                         \
    "sxtb16 r7, r3, ror #8\n\t" TR_DW3_COLUMN_ASM(ae, ao, "r6", "r7", ce, co)

/* The same at step 2: r0 input column x + 1 of the first stored column, first[0] its column x;
 * each stored column reads two stream words, its x + 2 the next one's x (unrolled by two; entries
 * 21 and 22). */
#define TR_DW3_SLIDE2_ASM                                                                        \
    "22:\n\t"                                                                                    \
    "ldm r3, {r4, r5, r8}\n\t"                                                                   \
    "sxtb16 r12, r4\n\t"                                                                         \
    "sxtb16 lr, r4, ror #8\n\t"                                                                  \
    "b 2f\n\t"                                                                                   \
    "21:\n\t"                                                                                    \
    "ldm r3, {r4, r5, r8}\n\t"                                                                   \
    "sxtb16 r5, r4, ror #8\n\t"                                                                  \
    "sxtb16 r4, r4\n\t"                                                                          \
    "1:\n\t" TR_DW3_STEP2_COLUMN_ASM("r4", "r5", "r12", "lr")                                      \
    "2:\n\t" TR_DW3_STEP2_COLUMN_ASM("r12", "lr", "r4", "r5") "cmp r1, r2\n\t"                      \
    "bne 1b\n\t" TR_DW3_TAIL_ASM                                                                 \
    "24:\n\t" TR_DW3_STEP2_COLUMN_ASM("r4", "r5", "r12", "lr") "cmp r1, r2\n\t"                     \
    "beq 9f\n\t" TR_DW3_STEP2_COLUMN_ASM("r12", "lr", "r4", "r5") "cmp r1, r2\n\t"                  \
    "bne 24b\n\t"

/* Whether tr_dw3_next_row widens this layer's rows: a left padding TFLite gives a 3x3 (0 or 1),
 * a stored column inside the row, and a tail that fits its four words. */
static int tr_dw3_slides(const tr_dw3_shape *shape)
{
    return shape->pad_left <= 1 && shape->n_in > 0 && (shape->n_cols - shape->n_in) * shape->step <= 4;
}

/* The widening of a layer (tr_dw3_slides holds) over the ring at `ring`. */
static void tr_dw3_widening_setup(const tr_dw3_shape *shape, tr_dw3_widening *w, int32_t *ring)
{
    const int in_w = shape->in_w, col_bytes = shape->col_bytes, step = shape->step;
    const int head = step == 1 ? 2 - shape->pad_left : 1 - shape->pad_left; /* the stream's first column */
    int x[6] = {-shape->pad_left, 1 - shape->pad_left};
    int index[6] = {0, 1, 4, 5, 6, 7}; /* first[0], first[1], tail[0..3] as words of the struct */
    for (int k = 0; k < 4; ++k) {
        x[2 + k] = head + shape->n_in * step + k;
    }
    int32_t *words = (int32_t *)(void *)w;
    w->loads = 0;
    for (int k = 0; k < 6; ++k) {
        words[index[k]] = shape->zero_word;
        if (x[k] >= 0 && x[k] < in_w) {
            w->load_offset[w->loads] = x[k] * col_bytes;
            w->load_index[w->loads++] = index[k];
        }
    }
    w->stride = col_bytes;
    w->head = head * col_bytes;
    w->inner_bytes = shape->n_in * TR_DW3_COLUMN_WORDS * 4;
    w->row_bytes = shape->row_bytes;
    w->slot_bytes = shape->row_words * 4;
    w->ring = ring;
    w->ring_end = ring + 3 * shape->row_words;
    /* the unrolled loop's entry (TR_DW3_SLIDE1_ASM: 11, 12, 13; TR_DW3_SLIDE2_ASM: 21, 22) */
    w->entry = step == 1 ? (3 - shape->n_in % 3) % 3 : 3 + shape->n_in % 2;
}
#endif

/* The row of zero points (the padding above and below the image): every stored column the same six
 * words, worked out once and copied (tr_dw3_row would widen each of its columns' three reads). */
static void tr_dw3_zero_row(int32_t *out, int n_cols, int32_t zero_word)
{
    int32_t e, o, column[TR_DW3_COLUMN_WORDS];
    tr_dw3_widen(zero_word, &e, &o);
    tr_dw3_store(column, e, o, e, o, e, o);
    for (int j = 0; j < n_cols; ++j, out += TR_DW3_COLUMN_WORDS) {
        memcpy(out, column, sizeof column);
    }
}

/* The `n_cols` stored columns of one input row (`row`: channel c of its first pixel, NULL for a
 * row of padding); stored column j holds the taps of output column j, input columns x .. x + 2
 * with x = j * step - pad_left. The columns slide: each input column is read and widened once.
 * The plain C path's widening, and the DSP path's outside the assembly row loop (the last,
 * partial group; a clamp narrower than int8; the general requantization). */
/* Kept out of line: inlined, its register-hungry stores and the kernel rows exhaust the allocator. */
__attribute__((noinline)) static void tr_dw3_row(const tr_dw3_shape *shape, const int8_t *row, int valid, int32_t *out)
{
    const int in_w = shape->in_w, col = shape->col_bytes, pad_left = shape->pad_left, step = shape->step;
    const int n_cols = shape->n_cols, n_in = shape->n_in;
    const int32_t zero_word = shape->zero_word;
    /* a row of padding, the last channels, or a padding no 3x3 kernel has: column by column */
    if (row == NULL || valid < 4 || pad_left > 2) {
        for (int j = 0, x = -pad_left; j < n_cols; ++j, x += step, out += TR_DW3_COLUMN_WORDS) {
            int32_t e0, o0, e1, o1, e2, o2;
            tr_dw3_widen(tr_dw3_read(row, x, in_w, col, valid, zero_word), &e0, &o0);
            tr_dw3_widen(tr_dw3_read(row, x + 1, in_w, col, valid, zero_word), &e1, &o1);
            tr_dw3_widen(tr_dw3_read(row, x + 2, in_w, col, valid, zero_word), &e2, &o2);
            tr_dw3_store(out, e0, o0, e1, o1, e2, o2);
        }
        return;
    }
    int x = -pad_left, offset = x * col;
    int32_t e0, o0, e1, o1, e2, o2;
    tr_dw3_widen(tr_dw3_at(row, x, offset, in_w, zero_word), &e0, &o0);
    tr_dw3_widen(tr_dw3_at(row, x + 1, offset + col, in_w, zero_word), &e1, &o1);
    const int8_t *p = row + (x + 2) * col; /* input column x + 2 (inside the row for j < n_in) */
    const int32_t *inner = out + n_in * TR_DW3_COLUMN_WORDS, *end = out + n_cols * TR_DW3_COLUMN_WORDS;
    if (step == 1) { /* unrolled by two: the three widened columns rotate through the names */
        for (; out + TR_DW3_COLUMN_WORDS < inner; out += 2 * TR_DW3_COLUMN_WORDS, p += 2 * col) {
            tr_dw3_widen(tr_dw3_word(p), &e2, &o2);
            tr_dw3_store(out, e0, o0, e1, o1, e2, o2);
            tr_dw3_widen(tr_dw3_word(p + col), &e0, &o0);
            tr_dw3_store(out + TR_DW3_COLUMN_WORDS, e1, o1, e2, o2, e0, o0);
            e1 = e0, o1 = o0, e0 = e2, o0 = o2; /* once per two columns */
        }
        x = (int)((out - (end - n_cols * TR_DW3_COLUMN_WORDS)) / TR_DW3_COLUMN_WORDS) - pad_left;
        for (; out < end; ++x, out += TR_DW3_COLUMN_WORDS) {
            tr_dw3_widen(tr_dw3_at(row, x + 2, (x + 2) * col, in_w, zero_word), &e2, &o2);
            tr_dw3_store(out, e0, o0, e1, o1, e2, o2);
            e0 = e1, o0 = o1, e1 = e2, o1 = o2;
        }
    } else { /* step 2: column x + 2 is the next stored column's x */
        for (; out < inner; out += TR_DW3_COLUMN_WORDS, p += 2 * col) {
            tr_dw3_widen(tr_dw3_word(p), &e2, &o2);
            tr_dw3_store(out, e0, o0, e1, o1, e2, o2);
            e0 = e2, o0 = o2;
            tr_dw3_widen(tr_dw3_word(p + col), &e1, &o1);
        }
        x = 2 * n_in - pad_left;
        for (; out < end; x += 2, out += TR_DW3_COLUMN_WORDS) {
            tr_dw3_widen(tr_dw3_at(row, x + 2, (x + 2) * col, in_w, zero_word), &e2, &o2);
            tr_dw3_store(out, e0, o0, e1, o1, e2, o2);
            e0 = e2, o0 = o2;
            tr_dw3_widen(tr_dw3_at(row, x + 3, (x + 3) * col, in_w, zero_word), &e1, &o1);
        }
    }
}

#if TR_DW3_ASM
/* One kernel row: LDM of the pairs into r8-r11 (named: an LDM list ascends), LDRD of the weights into
 * r12/lr, the tap-2 word pair post-incrementing the row pointer past the stored column. */
#define TR_DW3_ROW_ASM(h, offset)                             \
    "ldm " h "!, {r8, r9, r10, r11}\n\t"                      \
    "ldrd r12, lr, [%[wp], #" offset "]\n\t"                  \
    "smlad %[a0], r8, r12, %[a0]\n\t"                         \
    "smlad %[a1], r9, lr, %[a1]\n\t"                          \
    "ldrd r12, lr, [%[wp], #" offset "+8]\n\t"                \
    "smlad %[a2], r10, r12, %[a2]\n\t"                        \
    "smlad %[a3], r11, lr, %[a3]\n\t"                         \
    "ldrd r8, r9, [" h "], #8\n\t"                            \
    "ldrd r12, lr, [%[wp], #" offset "+16]\n\t"               \
    "smlabb %[a0], r8, r12, %[a0]\n\t"                        \
    "smlatt %[a2], r8, r12, %[a2]\n\t"                        \
    "smlabb %[a1], r9, lr, %[a1]\n\t"                         \
    "smlatt %[a3], r9, lr, %[a3]\n\t"

/* a0..a3 += the nine taps of one output pixel: r0, r1, r2 its stored columns in the three rows
 * (each advanced to the next column), `w` the 18 weight words of the group. */
#define TR_DW3_PIXEL(r0, r1, r2, w)                                                               \
    __asm__(TR_DW3_ROW_ASM("%[h0]", "0") TR_DW3_ROW_ASM("%[h1]", "24") TR_DW3_ROW_ASM("%[h2]", "48") \
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [h0] "+r"(r0), [h1] "+r"(r1), \
              [h2] "+r"(r2)                                                                        \
            : [wp] "r"(w)                                                                          \
            : "r8", "r9", "r10", "r11", "r12", "lr", "memory")
#else
/* a0..a3 += one kernel row of one output pixel: `h` its stored column, `w` the row's six weight words. */
#define TR_DW3_KERNEL_ROW(h, w)                     \
    do {                                            \
        a0 = tr_dot_int16_pair((h)[0], (w)[0], a0); \
        a1 = tr_dot_int16_pair((h)[1], (w)[1], a1); \
        a2 = tr_dot_int16_pair((h)[2], (w)[2], a2); \
        a3 = tr_dot_int16_pair((h)[3], (w)[3], a3); \
        a0 = tr_dw3_low((h)[4], (w)[4], a0);        \
        a2 = tr_dw3_high((h)[4], (w)[4], a2);       \
        a1 = tr_dw3_low((h)[5], (w)[5], a1);        \
        a3 = tr_dw3_high((h)[5], (w)[5], a3);       \
    } while (0)
#endif

/* Channel k of a group, in the requantization form the kernel was instantiated for: `m` the group's
 * multipliers, `e` its shifts (TFLM's general form) or its (right shift, rounding constant) pairs
 * (the doubled form), laid out as tr_requant_params' arrays from the group's first channel. */
TR_INLINE int8_t tr_dw3_requantize(int32_t acc, const int32_t *m, const int32_t *e, int k, const tr_requant_params *rq,
                                   int doubled_form)
{
    if (doubled_form) {
        return tr_requantize_doubled(acc, m[k], e[2 * k], e[2 * k + 1], rq->act_min, rq->act_max);
    }
    return tr_requantize(acc, m[k], e[k], rq->output_offset, rq->act_min, rq->act_max);
}

#if TR_DW3_ASM
/* One channel of tr_requantize_doubled before its clamp, saturated to int8 (the clamp range lies
 * inside it): `m` the multiplier, `d` its (right shift, rounding) pair. */
#define TR_DW3_SCALE_ASM(a, m, d)                     \
    "ldr %[t0], [" m "]\n\t"                          \
    "smmulr " a ", " a ", %[t0]\n\t"                   \
    "ldrd %[t0], %[t1], [" d "]\n\t"                  \
    "sub %[t1], %[t1], " a ", lsr #31\n\t"             \
    "add " a ", " a ", %[t1]\n\t"                      \
    "asr " a ", " a ", %[t0]\n\t"                      \
    "ssat " a ", #8, " a "\n\t"

/* Four channels requantized (doubled form) into one word, clamped bytewise: SSUB8 sets a GE flag per
 * byte, SEL picks by them. */
TR_INLINE int32_t tr_dw3_requantize4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, const int32_t *m,
                                     const int32_t *d, int32_t lo4, int32_t hi4)
{
    int32_t t0, t1;
    __asm__(TR_DW3_SCALE_ASM("%[a0]", "%[m]", "%[d]") TR_DW3_SCALE_ASM("%[a1]", "%[m], #4", "%[d], #8")
                TR_DW3_SCALE_ASM("%[a2]", "%[m], #8", "%[d], #16") TR_DW3_SCALE_ASM("%[a3]", "%[m], #12", "%[d], #24")
            "pkhbt %[a0], %[a0], %[a2], lsl #16\n\t"
            "pkhbt %[a1], %[a1], %[a3], lsl #16\n\t"
            "uxtb16 %[a0], %[a0]\n\t"
            "uxtb16 %[a1], %[a1]\n\t"
            "orr %[a0], %[a0], %[a1], lsl #8\n\t"
            "ssub8 %[t0], %[a0], %[lo]\n\t"
            "sel %[a0], %[a0], %[lo]\n\t"
            "ssub8 %[t0], %[a0], %[hi]\n\t"
            "sel %[a0], %[hi], %[a0]"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [t0] "=&r"(t0), [t1] "=&r"(t1)
            : [m] "r"(m), [d] "r"(d), [lo] "r"(lo4), [hi] "r"(hi4)
            : "cc", "memory");
    return a0;
}
#endif

#if TR_DW3_ASM
/* One group of four channels for the assembly row loop below, which reads the fields by these
 * offsets (through the stack: it needs every register). C sets the first four per call: the
 * group's constants (laid out by the generator for LDM, `group_constants`), its weights, its first
 * output pixel and its first input row; the loop starts its window, row ends and row count from the
 * layer's fields, then moves the window down between output rows. */
typedef struct {
    const int32_t *constants;  /* +0: the group's 16 words of tr_depthwise_3x3_params.group_constants */
    int8_t *out;               /* +4: channel 0 of the first output pixel (then of the current row's) */
    const int32_t *weights;    /* +8: the group's 18 weight words */
    const int8_t *src;         /* +12: the first input row (then the next), inside the image */
    int32_t *slot;             /* +16: the ring slot the next input row goes to (input row y to slot
                                  y % 3, so three consecutive rows never share one) */
    const int32_t *rows[3];    /* +20: the window: the stored columns of the three kernel rows */
    int32_t more_rows;         /* +32: output rows to run after this one, each `stride_h` input rows down */
    const int8_t *src_end;     /* +36: past the image's last input row: from there on, rows of padding */
    tr_dw3_widening *widening; /* +40 */
    int32_t step;              /* +44: bytes from one output pixel to the next */
    int32_t stride_h;          /* +48 */
    int32_t out_row;           /* +52: bytes from one output row to the next */
    int32_t row_skip;          /* +56: bytes from past a row's last output pixel to the next row's first
                                  (0 unless the rows are the image's columns) */
    int32_t first_rows;        /* +60: input rows the loop moves in before its first output row */
    int32_t *top_slot;         /* +64: the slot and the window at the start of a call (with the rows
                                  of padding above the image: the same ring slots for every group) */
    const int32_t *top[3];     /* +68 */
    int32_t out_rows;          /* +80: output rows a call runs (at least one) */
    int32_t in_bytes;          /* +84: src_end - src at the start of a call */
    int32_t span;              /* +88: bytes from a row's first output pixel to past its last */
} tr_dw3_run;

/* Moves the window one input row down: the row at run->src widened into the next ring slot (its
 * words of the widening first, then TR_DW3_SLIDE1_ASM or TR_DW3_SLIDE2_ASM), or, at src_end and
 * past it, the row of zero points (the padding below the image). The assembly row loop calls it
 * between output rows; AAPCS, so C calls it too. */
__attribute__((naked, noinline, used)) static void tr_dw3_next_row(tr_dw3_run *run)
{
    (void)run;
    __asm__ volatile("ldr r3, [r0, #40]\n\t" /* the widening, at [sp] for TR_DW3_TAIL_ASM */
                     "push {r3-r11, lr}\n\t"
                     "ldrd r1, r2, [r0, #12]\n\t" /* src, slot */
                     "ldrd r4, r5, [r0, #24]\n\t"  /* the window one row down, the slot last */
                     "strd r4, r5, [r0, #20]\n\t"
                     "str r2, [r0, #28]\n\t"
                     "ldrd r4, r5, [r3, #92]\n\t" /* row_bytes, slot_bytes */
                     "add r4, r1, r4\n\t"
                     "str r4, [r0, #12]\n\t"
                     "add r5, r2, r5\n\t" /* past the slot: the row's end, and the next slot */
                     "str r5, [r3, #12]\n\t"
                     "ldrd r6, r7, [r3, #100]\n\t" /* ring, ring_end */
                     "cmp r5, r7\n\t"
                     "it eq\n\t"
                     "moveq r5, r6\n\t"
                     "str r5, [r0, #16]\n\t"
                     "ldr r4, [r0, #36]\n\t" /* past the image: the row of zero points (r7) */
                     "cmp r1, r4\n\t"
                     "bhs 10f\n\t"
                     "ldr r4, [r3, #32]\n\t" /* the row's words of the widening */
                     "cbz r4, 8f\n\t"
                     "add r5, r3, #36\n\t"
                     "7:\n\t"
                     "ldr r6, [r5, #24]\n\t"
                     "ldr r7, [r5], #4\n\t"
                     "ldr r7, [r1, r7]\n\t"
                     "str r7, [r3, r6, lsl #2]\n\t"
                     "subs r4, r4, #1\n\t"
                     "bne 7b\n\t"
                     "8:\n\t"
                     "ldrd r6, r7, [r3, #84]\n\t" /* head, inner_bytes */
                     "add r0, r1, r6\n\t"          /* the stream */
                     "mov r1, r2\n\t"
                     "add r2, r2, r7\n\t"          /* the end of the inner columns */
                     "ldr r4, [r3, #108]\n\t"      /* the entry */
                     "tbb [pc, r4]\n\t"
                     "20:\n\t"
                     ".byte (11f - 20b) / 2, (12f - 20b) / 2, (13f - 20b) / 2\n\t"
                     ".byte (21f - 20b) / 2, (22f - 20b) / 2, 0\n\t" TR_DW3_SLIDE1_ASM TR_DW3_SLIDE2_ASM "9:\n\t"
                     "pop {r3-r11, pc}\n\t"
                     "10:\n\t"
                     "str r7, [r0, #28]\n\t"
                     "pop {r3-r11, pc}");
}

/* The offsets the assembly reads, checked when compiling (C99 has no _Static_assert: an array of
 * -1 elements fails). */
#define TR_DW3_CHECK(name, holds) typedef char name[(holds) ? 1 : -1]
TR_DW3_CHECK(tr_dw3_run_offsets_checked, offsetof(tr_dw3_run, src) == 12 && offsetof(tr_dw3_run, rows) == 20 &&
                                             offsetof(tr_dw3_run, more_rows) == 32 &&
                                             offsetof(tr_dw3_run, widening) == 40 &&
                                             offsetof(tr_dw3_run, row_skip) == 56 &&
                                             offsetof(tr_dw3_run, first_rows) == 60 &&
                                             offsetof(tr_dw3_run, span) == 88);
TR_DW3_CHECK(tr_dw3_widening_offsets_checked, offsetof(tr_dw3_widening, loads) == 32 &&
                                                  offsetof(tr_dw3_widening, head) == 84 &&
                                                  offsetof(tr_dw3_widening, entry) == 108);

/* Moves the window one row of padding down (or a row a stride down of more than three skips). */
static void tr_dw3_next_zero_row(tr_dw3_run *run)
{
    tr_dw3_widening *w = run->widening;
    int32_t *slot = run->slot + w->slot_bytes / 4;
    run->rows[0] = run->rows[1];
    run->rows[1] = run->rows[2];
    run->rows[2] = w->ring_end; /* the row of zero points */
    run->slot = slot == w->ring_end ? w->ring : slot;
}

/* One channel's doubled requantization, saturated to int8 and stored (the range of the layer's
 * clamp is the whole of int8: nothing else to clamp): LDM of (multiplier, rounding constant, right
 * shift) into r8-r10 from r12; SMMLAR adds the rounding constant to the rounded high word (exact:
 * it enters above the product's low word). `sign` subtracts 1 from it for a negative accumulator
 * (the rounding half away from zero of RoundingDivideByPOT); the ReLU form leaves it out. */
#define TR_DW3_RQ(a, k, sign)                     \
    "ldm r12!, {r8, r9, r10}\n\t"                  \
    sign                                          \
    "smmlar " a ", " a ", r8, r9\n\t"               \
    "asr " a ", " a ", r10\n\t"                     \
    "ssat " a ", #8, " a "\n\t"                     \
    "strb " a ", [r11, #" #k "]\n\t"
#define TR_DW3_SIGN(a) "add r9, r9, " a ", asr #31\n\t"

/* The output pixels of one call: nine taps (TR_DW3_ROW_ASM_R on r4-r6 and the weights in r7),
 * requantization, the next pixel's bias; r0-r3 are the four accumulators. First the call's window,
 * row count and ends from the layer's fields, then the frame on the stack: [sp] the tr_dw3_run,
 * [sp, #4] the output pixel, [sp, #8] the group's constants (requant, then bias: one pointer, LDM
 * on), [sp, #12] step, [sp, #16] the row's end. The window then takes its first_rows input rows
 * (tr_dw3_next_row: widened, or past the image zero points), so a group needs no C between its
 * constants and its first output row. */
#define TR_DW3_RUN_BODY(s0, s1, s2, s3)                                                              \
    "push {r4-r11, lr}\n\t"                                                                          \
    "add r12, r0, #64\n\t"                                                                           \
    "ldm r12, {r4-r10}\n\t"                                                                          \
    "add r12, r0, #16\n\t"                                                                           \
    "stm r12, {r4-r7}\n\t"                                                                           \
    "subs r8, r8, #1\n\t"                                                                            \
    "ldr r2, [r0, #12]\n\t"                                                                          \
    "add r9, r2, r9\n\t"                                                                             \
    "strd r8, r9, [r0, #32]\n\t"                                                                     \
    "ldrd r2, r1, [r0]\n\t"                                                                          \
    "ldr r3, [r0, #44]\n\t"                                                                          \
    "add r4, r1, r10\n\t"                                                                            \
    "push {r0-r4}\n\t"                                                                               \
    "ldr r4, [r0, #60]\n\t"                                                                          \
    "cbz r4, 5f\n\t"                                                                                 \
    "4:\n\t"                                                                                         \
    "bl tr_dw3_next_row\n\t"                                                                         \
    "ldr r0, [sp]\n\t"                                                                               \
    "subs r4, r4, #1\n\t"                                                                            \
    "bne 4b\n\t"                                                                                     \
    "5:\n\t"                                                                                         \
    "ldr r7, [r0, #8]\n\t"                                                                           \
    "add r12, r0, #20\n\t"                                                                           \
    "ldm r12, {r4, r5, r6}\n\t"                                                                      \
    "ldr r12, [sp, #8]\n\t"                                                                          \
    "add r12, r12, #48\n\t"                                                                          \
    "ldm r12, {r0-r3}\n\t"                                                                           \
    "1:\n\t" TR_DW3_ROW_ASM_R("r4", "0") TR_DW3_ROW_ASM_R("r5", "24") TR_DW3_ROW_ASM_R("r6", "48")      \
    "ldrd r11, r12, [sp, #4]\n\t" TR_DW3_RQ("r0", 0, s0) TR_DW3_RQ("r1", 1, s1) TR_DW3_RQ("r2", 2, s2) \
        TR_DW3_RQ("r3", 3, s3) "ldm r12, {r0-r3}\n\t"                                                 \
    "ldrd r8, r9, [sp, #12]\n\t"                                                                     \
    "add r11, r11, r8\n\t"                                                                           \
    "str r11, [sp, #4]\n\t"                                                                          \
    "cmp r11, r9\n\t"                                                                                \
    "bne 1b\n\t" TR_DW3_NEXT_ROW_ASM "add sp, sp, #20\n\t"                                           \
    "pop {r4-r11, pc}"

/* After an output row: while more_rows, the next output row (its end one output row on, its first
 * pixel row_skip past r11 at [sp, #4]) after stride_h calls of tr_dw3_next_row; r7 (the weights)
 * survives the calls. */
#define TR_DW3_NEXT_ROW_ASM     \
    "ldr r0, [sp]\n\t"          \
    "ldr r1, [r0, #32]\n\t"     \
    "subs r1, r1, #1\n\t"       \
    "bmi 3f\n\t"                \
    "str r1, [r0, #32]\n\t"     \
    "ldr r1, [r0, #52]\n\t"     \
    "add r1, r1, r11\n\t"       \
    "str r1, [sp, #16]\n\t"     \
    "ldr r1, [r0, #56]\n\t"     \
    "add r11, r11, r1\n\t"      \
    "str r11, [sp, #4]\n\t"     \
    "ldr r4, [r0, #48]\n\t"     \
    "2:\n\t"                    \
    "bl tr_dw3_next_row\n\t"    \
    "ldr r0, [sp]\n\t"          \
    "subs r4, r4, #1\n\t"       \
    "bne 2b\n\t"                \
    "add r12, r0, #20\n\t"      \
    "ldm r12, {r4, r5, r6}\n\t" \
    "ldr r12, [sp, #8]\n\t"     \
    "add r12, r12, #48\n\t"     \
    "ldm r12, {r0-r3}\n\t"      \
    "b 1b\n\t"                  \
    "3:\n\t"

/* TR_DW3_ROW_ASM with the weights in r7 (the loop's registers are its own). */
#define TR_DW3_ROW_ASM_R(h, offset)                           \
    "ldm " h "!, {r8, r9, r10, r11}\n\t"                      \
    "ldrd r12, lr, [r7, #" offset "]\n\t"                     \
    "smlad r0, r8, r12, r0\n\t"                               \
    "smlad r1, r9, lr, r1\n\t"                                \
    "ldrd r12, lr, [r7, #" offset "+8]\n\t"                   \
    "smlad r2, r10, r12, r2\n\t"                              \
    "smlad r3, r11, lr, r3\n\t"                               \
    "ldrd r8, r9, [" h "], #8\n\t"                            \
    "ldrd r12, lr, [r7, #" offset "+16]\n\t"                  \
    "smlabb r0, r8, r12, r0\n\t"                              \
    "smlatt r2, r8, r12, r2\n\t"                              \
    "smlabb r1, r9, lr, r1\n\t"                               \
    "smlatt r3, r9, lr, r3\n\t"

/* An output row (at least one pixel), the doubled form, a full int8 clamp range, output zero point
 * -128 and act_min >= it (ReLU): a negative value lands on -128 whichever way it rounds. */
__attribute__((naked, noinline)) static void tr_dw3_run_relu(tr_dw3_run *run)
{
    (void)run;
    __asm__ volatile(TR_DW3_RUN_BODY("", "", "", ""));
}

/* The same for any output zero point (rounding half away from zero kept). */
__attribute__((naked, noinline)) static void tr_dw3_run_signed(tr_dw3_run *run)
{
    (void)run;
    __asm__ volatile(TR_DW3_RUN_BODY(TR_DW3_SIGN("r0"), TR_DW3_SIGN("r1"), TR_DW3_SIGN("r2"), TR_DW3_SIGN("r3")));
}
#endif

#if TR_DW3_ASM
/* Moves the window to input row y (the next), widening it unless it is padding or `skipped`. */
static void tr_dw3_take(tr_dw3_run *run, const int8_t *image, int y, int in_h, int skipped)
{
    if (skipped || (unsigned)y >= (unsigned)in_h) {
        tr_dw3_next_zero_row(run);
        return;
    }
    run->src = image + y * run->widening->row_bytes;
    tr_dw3_next_row(run);
}

/* One group of four channels of one image through the assembly row loop (`relu`: its ReLU form),
 * `out` channel c of the image's first output pixel, for a stride down of more than three (which
 * skips rows: C moves the window, row by row, and the loop runs one output row a call; first_rows
 * is 0). A smaller stride runs the whole image in one call (tr_dw3_whole_groups). */
__attribute__((noinline)) static void tr_dw3_group_run(const tr_conv_geometry *g, const int8_t *image, int8_t *out,
                                                       tr_dw3_run *run, int relu)
{
    const int in_h = g->in_h, stride_h = g->stride_h, out_h = g->out_h;
    const int row_bytes = run->widening->row_bytes;
    run->slot = run->widening->ring;
    run->src_end = image + in_h * row_bytes;
    int y = -g->pad_top; /* the next input row */
    for (int k = 0; k < 3; ++k, ++y) {
        tr_dw3_take(run, image, y, in_h, 0);
    }
    const int rows_per_run = stride_h <= 3 ? out_h : 1;
    for (int oy = 0; oy < out_h; oy += rows_per_run) {
        if (oy > 0) { /* a stride down of four or more: C moves the window */
            for (int k = 0; k < stride_h; ++k, ++y) {
                tr_dw3_take(run, image, y, in_h, k < stride_h - 3);
            }
        }
        /* the call starts from the window as it stands */
        run->top_slot = run->slot;
        run->top[0] = run->rows[0], run->top[1] = run->rows[1], run->top[2] = run->rows[2];
        run->out_rows = rows_per_run;
        run->out = out + oy * run->out_row;
        run->src = y < in_h ? image + y * row_bytes : run->src_end;
        run->in_bytes = (int32_t)(run->src_end - run->src);
        if (relu) {
            tr_dw3_run_relu(run);
        } else {
            tr_dw3_run_signed(run);
        }
        y += (rows_per_run - 1) * stride_h;
    }
}
#endif

/* Bytes from one column (row) of the kernel's frame to the next, input and output. The geometry is
 * given in the frame; `transposed`, the frame's rows are the image's columns, so one step along a
 * frame row crosses a whole image row (g.in_h pixels of the frame's column). */
typedef struct {
    int in_col, in_row, out_col, out_row;
} tr_dw3_strides;

static tr_dw3_strides tr_dw3_frame(const tr_conv_geometry *g, int transposed)
{
    const int c = g->in_c;
    tr_dw3_strides s = {c, g->in_w * c, c, g->out_w * c};
    if (transposed) {
        s.in_col = g->in_h * c;
        s.in_row = c;
        s.out_col = g->out_h * c;
        s.out_row = c;
    }
    return s;
}

#if TR_DW3_ASM
/* Every whole group of four channels of every image through the assembly row loop (`relu`: its
 * ReLU form), reading the constants the generator laid out (`group_constants`); tr_dw3_image
 * checks the loop applies (tr_dw3_slides, the doubled form over all of int8). A function of its
 * own: its group loop, four fields and a call per group, keeps its registers whatever the C loop
 * of tr_dw3_image holds. */
__attribute__((noinline)) static void tr_dw3_whole_groups(const tr_depthwise_3x3_params *params, const int8_t *input,
                                                          int8_t *output, const tr_dw3_shape *shape, int32_t *ring,
                                                          int relu)
{
    const tr_conv_geometry *g = &params->geometry; /* no copy: its fields are read before the loops */
    const tr_dw3_strides frame = tr_dw3_frame(g, params->transposed);
    tr_dw3_widening widening;
    tr_dw3_widening_setup(shape, &widening, ring);
    tr_dw3_run run; /* the layer's fields once; per group its constants, weights, input and output */
    run.step = frame.out_col;
    run.stride_h = g->stride_h;
    run.out_row = frame.out_row;
    run.row_skip = frame.out_row - g->out_w * frame.out_col;
    run.widening = &widening;
    /* A stride down of up to three: one call of the loop runs a group's whole image. The rows of
     * padding above the image are the same for every group (the row of zero points in the same
     * ring slots), so the window starts past them; the loop moves in the rest of the first three
     * rows itself (first_rows). */
    const int whole_image = g->stride_h <= 3 && g->pad_top <= 3 && g->out_h > 0;
    run.first_rows = whole_image ? 3 - g->pad_top : 0;
    run.span = frame.out_row - run.row_skip;
    run.slot = widening.ring;
    run.rows[0] = run.rows[1] = run.rows[2] = widening.ring_end;
    for (int k = 0; whole_image && k < g->pad_top; ++k) {
        tr_dw3_next_zero_row(&run);
    }
    run.top_slot = run.slot;
    run.top[0] = run.rows[0], run.top[1] = run.rows[1], run.top[2] = run.rows[2];
    run.out_rows = g->out_h;
    run.in_bytes = g->in_h * frame.in_row;
    void (*const run_image)(tr_dw3_run *) = relu ? tr_dw3_run_relu : tr_dw3_run_signed;
    const int channels = g->in_c, whole_groups = channels / 4 * 4;
    const int in_image = g->in_h * g->in_w * channels, out_image = g->out_h * g->out_w * channels;
    /* batches outside, groups inside (one loop per form of call): per group four fields and a call */
    for (int b = 0; b < g->batches; ++b) {
        const int32_t *constants = params->group_constants, *weights = params->filter_words;
        const int8_t *image = input + b * in_image;
        int8_t *out = output + b * out_image;
        if (whole_image) {
            for (int c = 0; c < whole_groups; c += 4) {
                run.constants = constants;
                run.weights = weights;
                run.src = image + c;
                run.out = out + c;
                run_image(&run);
                constants += TR_DW3_GROUP_CONSTANTS;
                weights += 3 * TR_DW3_COLUMN_WORDS;
            }
            continue;
        }
        for (int c = 0; c < whole_groups; c += 4) {
            run.constants = constants;
            run.weights = weights;
            tr_dw3_group_run(g, image + c, out + c, &run, relu);
            constants += TR_DW3_GROUP_CONSTANTS;
            weights += 3 * TR_DW3_COLUMN_WORDS;
        }
    }
}
#endif

TR_INLINE void tr_dw3_image(const tr_depthwise_3x3_params *params, const int8_t *input, int8_t *output,
                            int32_t *scratch, int doubled_form)
{
    const tr_conv_geometry g = params->geometry; /* locals: not reloaded after stores */
    const tr_requant_params rq = params->requant;
    const tr_dw3_strides frame = tr_dw3_frame(&g, params->transposed);
    const int channels = g.in_c, step = g.stride_w, n_cols = g.out_w;
    const int row_words = n_cols * TR_DW3_COLUMN_WORDS;
    const int32_t zero_word = (int32_t)((uint32_t)(uint8_t)params->input_zero_point * 0x01010101u);
    const int32_t *bias = params->bias;
#if TR_DW3_ASM
    const int32_t lo4 = (int32_t)((uint32_t)(uint8_t)rq.act_min * 0x01010101u);
    const int32_t hi4 = (int32_t)((uint32_t)(uint8_t)rq.act_max * 0x01010101u);
    /* The assembly row loop: doubled form, nothing to clamp past int8 (1: and ReLU at -128). */
    const int full_range = doubled_form && rq.act_min == -128 && rq.act_max == 127 && g.out_w > 0;
    const int run_form = !full_range ? 0 : rq.output_offset == -128 ? 1 : 2;
#endif
    int32_t *ring = scratch, *zero_row = scratch + 3 * row_words;
    const tr_dw3_shape shape = {g.in_w, g.pad_left, step, n_cols, frame.in_col, frame.in_row,
                                tr_dw3_inner_columns(g.in_w, g.pad_left, step, n_cols), row_words, zero_word};
    tr_dw3_zero_row(zero_row, n_cols, zero_word);
    const int in_image = g.in_h * g.in_w * channels, out_image = g.out_h * g.out_w * channels;
    int first = 0; /* the first channel the C loop below runs */
#if TR_DW3_ASM
    /* every whole group through the assembly row loop (where the generator laid out its constants) */
    if (run_form != 0 && tr_dw3_slides(&shape) && params->group_constants != NULL) {
        tr_dw3_whole_groups(params, input, output, &shape, ring, run_form == 1);
        first = channels / 4 * 4;
    }
#endif
    for (int c = first; c < channels; c += 4) {
        const int valid = channels - c < 4 ? channels - c : 4;
        const int32_t *w = params->filter_words + (c / 4) * 3 * TR_DW3_COLUMN_WORDS;
        /* The group's biases and requantization (see tr_dw3_requantize). Where the generator laid
         * out `group_constants`, that table is their only copy (bias and the requant arrays are
         * NULL): its words go into the arrays' layout once per group, so the pixels read one. */
        const int32_t *group_bias, *group_mult, *group_rq;
        int32_t table_mult[4], table_rq[8];
        if (doubled_form && params->group_constants != NULL) {
            const int32_t *t = params->group_constants + (c / 4) * TR_DW3_GROUP_CONSTANTS;
            for (int k = 0; k < 4; ++k) { /* per channel: multiplier, rounding constant, right shift */
                table_mult[k] = t[3 * k];
                table_rq[2 * k] = t[3 * k + 2];
                table_rq[2 * k + 1] = t[3 * k + 1];
            }
            group_bias = t + 12, group_mult = table_mult, group_rq = table_rq;
        } else {
            group_bias = bias + c, group_mult = rq.multiplier + c;
            group_rq = doubled_form ? rq.doubled + 2 * c : rq.shift + c;
        }
        for (int b = 0; b < g.batches; ++b) {
            const int8_t *image = input + b * in_image + c;
            int held[3] = {-1, -1, -1}; /* the input row in each ring slot */
            for (int oy = 0; oy < g.out_h; ++oy) {
                const int32_t *rows[3];
                for (int ky = 0; ky < 3; ++ky) {
                    const int y = oy * g.stride_h - g.pad_top + ky;
                    if (y < 0 || y >= g.in_h) {
                        rows[ky] = zero_row;
                        continue;
                    }
                    const int slot = y % 3;
                    if (held[slot] != y) {
                        tr_dw3_row(&shape, image + y * frame.in_row, valid, ring + slot * row_words);
                        held[slot] = y;
                    }
                    rows[ky] = ring + slot * row_words;
                }
                const int32_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
                int8_t *out = output + b * out_image + oy * frame.out_row + c;
                for (int ox = 0; ox < g.out_w; ++ox, out += frame.out_col) {
                    int32_t a0 = group_bias[0], a1 = group_bias[1], a2 = group_bias[2], a3 = group_bias[3];
#if TR_DW3_ASM
                    TR_DW3_PIXEL(r0, r1, r2, w);
#else
                    TR_DW3_KERNEL_ROW(r0, w);
                    TR_DW3_KERNEL_ROW(r1, w + TR_DW3_COLUMN_WORDS);
                    TR_DW3_KERNEL_ROW(r2, w + 2 * TR_DW3_COLUMN_WORDS);
                    r0 += TR_DW3_COLUMN_WORDS;
                    r1 += TR_DW3_COLUMN_WORDS;
                    r2 += TR_DW3_COLUMN_WORDS;
#endif
#if TR_DW3_ASM
                    if (doubled_form && valid == 4) {
                        const int32_t word = tr_dw3_requantize4(a0, a1, a2, a3, group_mult, group_rq, lo4, hi4);
                        memcpy(out, &word, 4);
                        continue;
                    }
#endif
                    if (valid == 4) {
                        out[0] = tr_dw3_requantize(a0, group_mult, group_rq, 0, &rq, doubled_form);
                        out[1] = tr_dw3_requantize(a1, group_mult, group_rq, 1, &rq, doubled_form);
                        out[2] = tr_dw3_requantize(a2, group_mult, group_rq, 2, &rq, doubled_form);
                        out[3] = tr_dw3_requantize(a3, group_mult, group_rq, 3, &rq, doubled_form);
                    } else {
                        const int32_t acc[4] = {a0, a1, a2, a3};
                        for (int k = 0; k < valid; ++k) {
                            out[k] = tr_dw3_requantize(acc[k], group_mult, group_rq, k, &rq, doubled_form);
                        }
                    }
                }
            }
        }
    }
}

TR_KERNEL void tr_depthwise_conv_3x3_int8(const tr_depthwise_3x3_params *params, const int8_t *input,
                                          int8_t *output, int8_t *scratch)
{
    tr_dw3_image(params, input, output, (int32_t *)(void *)scratch, 0); /* scratch is 16-byte aligned */
}

TR_KERNEL void tr_depthwise_conv_3x3_doubled_int8(const tr_depthwise_3x3_params *params, const int8_t *input,
                                                  int8_t *output, int8_t *scratch)
{
    tr_dw3_image(params, input, output, (int32_t *)(void *)scratch, 1);
}
