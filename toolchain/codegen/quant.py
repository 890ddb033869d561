"""TFLite's integer requantization parameters, computed exactly as TFLite Micro does.

Bit-exactness depends on the last bit of each multiplier, so the float arithmetic here
follows TFLM's C++ step by step (which products are float32 and which double, and
rounding half away from zero as `std::round`).
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(x: float) -> int:
    """`std::round`: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite `QuantizeMultiplier`: real = multiplier * 2**(shift - 31), multiplier in [2**30, 2**31).

    `shift` > 0 is a left shift. Zero gives (0, 0); tiny values that need a shift below -31
    flush to (0, 0) as TFLite does.
    """
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = round_half_away(fraction * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def quantize_float(value: float, scale: float, zero_point: int) -> int:
    """TFLite `Quantize` of one float with float32 arithmetic (used for activation bounds)."""
    return int(zero_point) + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range_int8(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite `CalculateActivationRangeQuantized` for int8 outputs: the clamp bounds of a fused activation."""
    lo, hi = INT8_MIN, INT8_MAX
    if act == "NONE":
        return lo, hi
    if act == "RELU":
        return max(lo, quantize_float(0.0, scale, zero_point)), hi
    if act == "RELU6":
        return max(lo, quantize_float(0.0, scale, zero_point)), min(
            hi, quantize_float(6.0, scale, zero_point)
        )
    if act == "RELU_N1_TO_1":
        return max(lo, quantize_float(-1.0, scale, zero_point)), min(
            hi, quantize_float(1.0, scale, zero_point)
        )
    raise ValueError(f"fused activation {act} has no int8 range (supported: NONE, RELU, RELU6, RELU_N1_TO_1)")


def conv_multipliers(
    input_scale: float, filter_scales: np.ndarray, output_scale: float, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED.

    TFLM's `PopulateConvolutionQuantizationParams` multiplies in double:
    double(input_scale) * double(filter_scale) / double(output_scale).
    A per-tensor filter scale is repeated for every channel.
    """
    scales = np.asarray(filter_scales, np.float32)
    mults = np.zeros(channels, np.int32)
    shifts = np.zeros(channels, np.int32)
    for c in range(channels):
        fs = float(scales[c] if scales.size > 1 else scales[0])
        real = float(np.float32(input_scale)) * fs / float(np.float32(output_scale))
        mults[c], shifts[c] = quantize_multiplier(real)
    return mults, shifts


def tflm_quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float -> int8 exactly as TFLM's QUANTIZE (AffineQuantize): float32 division, round half
    away from zero, add the zero point, clamp."""
    q = np.asarray(x, np.float32) / np.float32(scale)
    rounded = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))
    return np.clip(rounded.astype(np.int64) + int(zero_point), INT8_MIN, INT8_MAX).astype(np.int8)


def tflm_dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float exactly as TFLM's DEQUANTIZE: double(scale) * (q - zero_point), then float32."""
    return (float(np.float32(scale)) * (np.asarray(q, np.int64) - int(zero_point)).astype(np.float64)).astype(
        np.float32
    )
