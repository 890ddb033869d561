/*
 * tr_platform.h - what every tinyrank kernel file needs from the compiler and the core.
 *
 * Kernels are prefix-free shared code: every kernel function is defined with TR_KERNEL,
 * a weak symbol on GCC/Clang, so two generated models (different --prefix) linked into
 * one firmware each bring identical copies and the linker keeps one. TR_USE_DSP is 1 on
 * cores with the DSP extension (Cortex-M4/M7/M33), where <arm_acle.h> provides the SIMD
 * intrinsics; -DTR_NO_DSP forces the plain C path.
 */
#ifndef TR_PLATFORM_H
#define TR_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define TR_KERNEL __attribute__((weak))
#define TR_INLINE static inline __attribute__((always_inline))
#define TR_ALIGNED(n) __attribute__((aligned(n)))
#else
#define TR_KERNEL
#define TR_INLINE static inline
#define TR_ALIGNED(n)
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TR_NO_DSP)
#define TR_USE_DSP 1
#include <arm_acle.h>
#else
#define TR_USE_DSP 0
#endif

TR_INLINE int32_t tr_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
TR_INLINE int32_t tr_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

/* x clamped to the int8 range: one SSAT on cores that have it (ARMv7-M and up: the Cortex-M3 too,
 * which has no DSP extension), two compares elsewhere. */
TR_INLINE int32_t tr_saturate_int8(int32_t x)
{
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    __asm__("ssat %0, #8, %1" : "=r"(x) : "r"(x));
    return x;
#else
    return x < -128 ? -128 : (x > 127 ? 127 : x);
#endif
}

#endif /* TR_PLATFORM_H */
