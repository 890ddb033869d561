"""Requantization: Python parameters (quant.py) and the C helpers of tr_requantize.h against an
independent Python model of TFLite Micro's integer arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cdriver import build_driver, run_driver
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.codegen.quant import activation_range_int8, quantize_multiplier, round_half_away

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def ref_srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    return _trunc_div(ab + (2**30 if ab >= 0 else 1 - 2**30), 2**31)


def ref_rdbp(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def ref_mbqm(x: int, multiplier: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbp(ref_srdhm(_wrap32(x * (1 << left)), multiplier), right)


@pytest.mark.parametrize(
    "real, expected",
    [(0.5, (2**30, 0)), (1.0, (2**30, 1)), (0.25, (2**30, -1)), (0.0, (0, 0)), (1e-12, (0, 0))],
)
def test_quantize_multiplier_known_values(real: float, expected: tuple[int, int]) -> None:
    assert quantize_multiplier(real) == expected


@given(st.floats(min_value=1e-8, max_value=100.0))
def test_quantize_multiplier_reconstructs_the_real_value(real: float) -> None:
    m, s = quantize_multiplier(real)
    assert 2**30 <= m < 2**31
    assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-30


def test_round_half_away_from_zero() -> None:
    assert [round_half_away(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4999)] == [1, 2, 3, -1, -3, 2]


def test_activation_ranges() -> None:
    assert activation_range_int8("NONE", 0.1, 3) == (-128, 127)
    assert activation_range_int8("RELU", 0.1, -20) == (-20, 127)
    assert activation_range_int8("RELU6", 6 / 255, -128) == (-128, 127)
    assert activation_range_int8("RELU6", 0.05, -10) == (-10, 110)
    assert activation_range_int8("RELU_N1_TO_1", 0.01, 0) == (-100, 100)
    with pytest.raises(ValueError, match="TANH"):
        activation_range_int8("TANH", 0.1, 0)


HELPERS_MAIN = r"""
#include <stdio.h>
#include "tr_requantize.h"
int main(void)
{
    long long x, m, s;
    while (scanf("%lld %lld %lld", &x, &m, &s) == 3) {
        printf("%ld %ld %ld\n", (long)tr_saturating_rounding_doubling_high_mul((int32_t)x, (int32_t)m),
               (long)tr_rounding_divide_by_pot((int32_t)x, (int)(s < 0 ? -s : s) % 31),
               (long)tr_multiply_by_quantized_multiplier((int32_t)x, (int32_t)m, (int)s));
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def helpers_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_driver(HELPERS_MAIN, tmp_path_factory.mktemp("helpers"), "helpers")


def test_c_requantization_helpers_match_tflm_arithmetic(helpers_exe: Path) -> None:
    rng = np.random.default_rng(0)
    cases = [
        (INT32_MIN, INT32_MIN, 0),
        (INT32_MAX, INT32_MAX, -31),
        (INT32_MIN, 2**30, 0),
        (-5, 2**30, -1),
        (5, 2**30, -1),
        (-3, 2**31 - 1, -1),
        (7, 1518500250, 2),
        (-1, 1, 0),
    ]
    xs = rng.integers(-(2**24), 2**24, 3000).tolist() + rng.integers(INT32_MIN, INT32_MAX, 1000).tolist()
    for x in xs:
        m = int(rng.integers(2**30, 2**31))
        s = int(rng.integers(-20, 3)) if abs(x) < 2**24 else int(rng.integers(-31, 1))
        cases.append((int(x), m, s))
    for (x, m, s), line in zip(cases, run_driver(helpers_exe, cases), strict=True):
        expected = (ref_srdhm(x, m), ref_rdbp(x, abs(s) % 31), ref_mbqm(x, m, s))
        assert tuple(int(v) for v in line.split()) == expected, (x, m, s)


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=1e-6, max_value=0.99), st.integers(-(2**20), 2**20))
def test_requantized_value_is_close_to_the_real_product(real: float, acc: int) -> None:
    m, s = quantize_multiplier(real)
    assert abs(ref_mbqm(acc, m, s) - acc * real) <= 1.0 + abs(acc * real) * 2**-28


REQUANTIZE_MAIN = r"""
#include <stdio.h>
#include "tr_requantize.h"
int main(void)
{
    long long acc, m, s, zp, lo, hi;
    while (scanf("%lld %lld %lld %lld %lld %lld", &acc, &m, &s, &zp, &lo, &hi) == 6) {
        printf("%d\n", (int)tr_requantize((int32_t)acc, (int32_t)m, (int32_t)s, (int32_t)zp, (int32_t)lo, (int32_t)hi));
    }
    return 0;
}
"""


def test_fast_requantize_equals_tflm_requantization(tmp_path: Path) -> None:
    """tr_requantize (the kernels' hot path, rewritten for speed) against TFLM's arithmetic."""
    exe = build_driver(REQUANTIZE_MAIN, tmp_path, "requantize")
    rng = np.random.default_rng(1)
    cases = []
    for _ in range(6000):
        real = float(np.exp(rng.uniform(np.log(1e-7), np.log(4.0))))
        m, s = quantize_multiplier(real)
        acc = int(rng.integers(-(2**31), 2**31)) if rng.random() < 0.2 else int(rng.integers(-(2**20), 2**20))
        zp = int(rng.integers(-128, 128))
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
        cases.append((acc, m, s, zp, lo, hi))
    cases += [
        (-(2**31), 2**30, 0, 0, -128, 127),
        (2**31 - 1, 2**31 - 1, -31, 5, -128, 127),
        (0, 0, 0, -3, -128, 127),
    ]
    for (acc, m, s, zp, lo, hi), line in zip(cases, run_driver(exe, cases), strict=True):
        assert int(line) == min(max(ref_mbqm(acc, m, s) + zp, lo), hi), (acc, m, s, zp)
