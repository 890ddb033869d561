/*
 * tr_dot.h - int8 dot products, the inner loops of FULLY_CONNECTED and CONV_2D, and the int16
 * pair helpers of the depthwise kernels (taps widened to int16, two to a word).
 *
 * On cores with the DSP extension (TR_USE_DSP) four int8 pairs are two SXTB16 and two SMLAD;
 * elsewhere the same sums in plain C. Both paths give the same int32 results.
 */
#ifndef TR_DOT_H
#define TR_DOT_H

#include <string.h>

#include "tr_platform.h"

/* (low, high) as the two int16 halves of a word. */
TR_INLINE int32_t tr_pack_int16_pair(int32_t low, int32_t high)
{
    return (int32_t)(((uint32_t)low & 0xffffu) | ((uint32_t)high << 16));
}

/* acc + low(x) * low(w) + high(x) * high(w): SMLAD, or the same sum in plain C. */
TR_INLINE int32_t tr_dot_int16_pair(int32_t x, int32_t w, int32_t acc)
{
#if TR_USE_DSP
    return __smlad(x, w, acc);
#else
    return acc + (int32_t)(int16_t)x * (int32_t)(int16_t)w + (x >> 16) * (w >> 16);
#endif
}

#if TR_USE_DSP
/* Four int8 from any address as one word (the M4 allows unaligned LDR). */
TR_INLINE int32_t tr_read_int8x4(const int8_t *p)
{
    int32_t word;
    memcpy(&word, p, 4);
    return word;
}

/* Bytes 1 and 3 of a word, sign-extended to two halfwords: one SXTB16 with its rotate
 * operand (gcc 12 has no __ror, and a shift-or is not folded into the SXTB16). */
TR_INLINE int32_t tr_sxtb16_ror8(int32_t x)
{
    int32_t result;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(result) : "r"(x));
    return result;
}

/* acc + dot(a[0..3], b[0..3]) with two SMLADs; bytes 0,2 and 1,3 pair up on both sides,
 * so the sum equals the plain C loop exactly. */
TR_INLINE int32_t tr_dot4_int8(int32_t acc, int32_t a, int32_t b)
{
    acc = __smlad(__sxtb16(a), __sxtb16(b), acc);
    return __smlad(tr_sxtb16_ror8(a), tr_sxtb16_ror8(b), acc);
}
#endif

/* acc + sum a[i] * b[i] over n int8 pairs. */
TR_INLINE int32_t tr_dot_int8(int32_t acc, const int8_t *a, const int8_t *b, int n)
{
    int i = 0;
#if TR_USE_DSP
    for (; i + 4 <= n; i += 4) {
        acc = tr_dot4_int8(acc, tr_read_int8x4(a + i), tr_read_int8x4(b + i));
    }
#endif
    for (; i < n; ++i) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

/* acc[r] += dot(x, row r) for a group of four rows of length n stored "packed by four":
 * for every whole word of the rows, 16 bytes (row 0's four bytes, then rows 1, 2, 3),
 * then the n % 4 leftover bytes of row 0, 1, 2, 3. The generator packs weights this way
 * (codegen/packing.py), so one pointer walks all four rows and each input word is loaded
 * and sign-extended once for the four. */
TR_INLINE void tr_dot_int8_x4(const int8_t *x, const int8_t *packed, int n, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int words = n / 4;
    const int8_t *w = packed;
#if TR_USE_DSP
    for (const int8_t *end = x + 4 * words; x < end; x += 4, w += 16) {
        int32_t word = tr_read_int8x4(x);
        int32_t even = __sxtb16(word), odd = tr_sxtb16_ror8(word);
        int32_t w0 = tr_read_int8x4(w), w1 = tr_read_int8x4(w + 4);
        a0 = __smlad(odd, tr_sxtb16_ror8(w0), __smlad(even, __sxtb16(w0), a0));
        a1 = __smlad(odd, tr_sxtb16_ror8(w1), __smlad(even, __sxtb16(w1), a1));
        int32_t w2 = tr_read_int8x4(w + 8), w3 = tr_read_int8x4(w + 12);
        a2 = __smlad(odd, tr_sxtb16_ror8(w2), __smlad(even, __sxtb16(w2), a2));
        a3 = __smlad(odd, tr_sxtb16_ror8(w3), __smlad(even, __sxtb16(w3), a3));
    }
#else
    /* The four bytes of a word written out: gcc 12 otherwise runs one loop over the bytes, and
     * its test and branch per byte cost as much as a quarter of the MACs. */
#define TR_DOT_X4_BYTE(k)          \
    do {                           \
        const int32_t xk = x[k];   \
        a0 += xk * w[k];           \
        a1 += xk * w[4 + k];       \
        a2 += xk * w[8 + k];       \
        a3 += xk * w[12 + k];      \
    } while (0)
    for (const int8_t *end = x + 4 * words; x < end; x += 4, w += 16) {
        TR_DOT_X4_BYTE(0);
        TR_DOT_X4_BYTE(1);
        TR_DOT_X4_BYTE(2);
        TR_DOT_X4_BYTE(3);
    }
#undef TR_DOT_X4_BYTE
#endif
    const int rest = n - 4 * words;
    for (int k = 0; k < rest; ++k) {
        int32_t xk = x[k];
        a0 += xk * w[k];
        a1 += xk * w[rest + k];
        a2 += xk * w[2 * rest + k];
        a3 += xk * w[3 * rest + k];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Two input rows x0, x1 against two consecutive rows of a packed-by-four group (`w` points
 * at the first of them inside the group; words are 16 bytes apart): acc[0], acc[1] for x0
 * with rows 0, 1 and acc[2], acc[3] for x1. Each weight word is loaded and sign-extended
 * once for the two inputs, which halves the weight work of 1x1 convolutions. Whole words
 * only; the caller adds the leftover bytes. */
TR_INLINE void tr_dot_int8_2x2_words(const int8_t *x0, const int8_t *x1, const int8_t *w, int words,
                                     int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
#if TR_USE_DSP
    for (const int8_t *end = x0 + 4 * words; x0 < end; x0 += 4, x1 += 4, w += 16) {
        int32_t p = tr_read_int8x4(x0), q = tr_read_int8x4(x1);
        int32_t pe = __sxtb16(p), po = tr_sxtb16_ror8(p), qe = __sxtb16(q), qo = tr_sxtb16_ror8(q);
        int32_t r = tr_read_int8x4(w);
        int32_t re = __sxtb16(r), ro = tr_sxtb16_ror8(r);
        a0 = __smlad(po, ro, __smlad(pe, re, a0));
        b0 = __smlad(qo, ro, __smlad(qe, re, b0));
        r = tr_read_int8x4(w + 4);
        re = __sxtb16(r);
        ro = tr_sxtb16_ror8(r);
        a1 = __smlad(po, ro, __smlad(pe, re, a1));
        b1 = __smlad(qo, ro, __smlad(qe, re, b1));
    }
#else
#define TR_DOT_2X2_BYTE(k)                              \
    do {                                                \
        const int32_t p = x0[k], q = x1[k];             \
        const int32_t r0 = w[k], r1 = w[4 + k];         \
        a0 += p * r0;                                   \
        a1 += p * r1;                                   \
        b0 += q * r0;                                   \
        b1 += q * r1;                                   \
    } while (0)
    for (const int8_t *end = x0 + 4 * words; x0 < end; x0 += 4, x1 += 4, w += 16) { /* as tr_dot_int8_x4 */
        TR_DOT_2X2_BYTE(0);
        TR_DOT_2X2_BYTE(1);
        TR_DOT_2X2_BYTE(2);
        TR_DOT_2X2_BYTE(3);
    }
#undef TR_DOT_2X2_BYTE
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

#endif /* TR_DOT_H */
