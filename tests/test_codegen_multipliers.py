"""Every op's requantization multipliers, checked against the tflite_micro interpreter on scales
where float32 and double arithmetic disagree.

A multiplier that is one unit off changes an output byte only for the few accumulators that sit
on a rounding boundary, so random models rarely see it. These tests pick the scales and the
accumulators that do: a per-tensor FULLY_CONNECTED whose float32 scale product gives another
multiplier than the double product, with a bias that lands an accumulator exactly where the two
multipliers round differently; and, for the other ops, one-op graphs over every int8 input value
with many drawn scales.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_codegen_random_graphs import GraphBuilder

from toolchain import oracle
from toolchain.codegen.fixedpoint import multiply_by_quantized_multiplier
from toolchain.codegen.quant import conv_multipliers, quantize_multiplier
from toolchain.codegen.verify import verify

EVERY_INT8 = np.arange(-128, 128, dtype=np.int8)


def _float32_product_multiplier(si: float, sw: float, so: float) -> tuple[int, int]:
    """The multiplier an implementation gets by multiplying input and filter scales in float32."""
    return quantize_multiplier(float(np.float32(si) * np.float32(sw)) / float(np.float32(so)))


def _requantize(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier on a whole array of int32 accumulators (shift <= 0)."""
    ab = acc.astype(np.int64) * multiplier
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))
    mask = (1 << -shift) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> -shift) + ((high & mask) > threshold)


def _sensitive_fc_case(
    rng: np.random.Generator, accumulators: np.ndarray
) -> tuple[tuple[float, float, float], int]:
    """Scales whose float32 and double FC multipliers differ, and an accumulator whose output differs."""
    while True:
        si, sw, so = (float(np.float32(v)) for v in rng.uniform(0.002, 0.2, 3))
        exact = tuple(int(v[0]) for v in conv_multipliers(si, np.array([sw], np.float32), so, 1))
        wrong = _float32_product_multiplier(si, sw, so)
        if exact == wrong or exact[1] > 0 or wrong[1] > 0:
            continue
        a, b = _requantize(accumulators, *exact), _requantize(accumulators, *wrong)
        found = np.nonzero((a != b) & (np.maximum(np.abs(a), np.abs(b)) < 100))[0]
        if found.size:
            acc = int(accumulators[rng.choice(found)])
            assert multiply_by_quantized_multiplier(acc, *exact) == int(a[accumulators == acc][0])
            return (si, sw, so), acc


def _fc_layer(b: GraphBuilder, src, src_scale: float, w: np.ndarray, w_scale: float, bias, out) -> None:
    s = b.schema
    filt = b.constant(w, s.TensorType.INT8, [w_scale], 0, f"{out.name}_weights")
    if bias is not None:
        bias_scale = [float(np.float32(src_scale) * np.float32(w_scale))]
        bias = b.constant(bias, s.TensorType.INT32, bias_scale, 0, f"{out.name}_bias")
    options = s.FullyConnectedOptionsT()
    b.op(
        s.BuiltinOperator.FULLY_CONNECTED,
        [src, filt, bias],
        [out],
        s.BuiltinOptions.FullyConnectedOptions,
        options,
    )


def build_sensitive_fc(path: Path, seed: int, with_bias: bool) -> tuple[np.ndarray, int, int]:
    """One per-tensor FULLY_CONNECTED whose unit 0 sees the rounding-sensitive accumulator in sample 0.

    Unit 0 has one non-zero weight, on input 0; with a bias the bias carries the accumulator,
    without one the product weight * input does. Returns (samples, TFLM's expected unit-0
    output from the double multiplier, the output a float32 product would give).
    """
    rng = np.random.default_rng(seed)
    if with_bias:  # the bias carries the accumulator: any int32
        (si, sw, so), acc = _sensitive_fc_case(rng, np.arange(-20000, 20000))
        weight = 1
    else:  # the accumulator is one product weight * input
        products = np.unique(np.outer(np.arange(1, 128), np.arange(-128, 128)))
        (si, sw, so), acc = _sensitive_fc_case(rng, products)
        weight = next(v for v in range(1, 128) if acc % v == 0 and -128 <= acc // v < 128)
    depth, units = 8, 12
    w = rng.integers(-127, 128, size=(units, depth), dtype=np.int8)
    w[0], w[0, 0] = 0, weight
    bias = rng.integers(-2000, 2000, size=units, dtype=np.int32) if with_bias else None
    samples = rng.integers(-128, 128, size=(16, 1, depth), dtype=np.int8)
    if with_bias:
        bias[0], samples[0, 0, 0] = acc, 0
    else:
        samples[0, 0, 0] = acc // weight
    b = GraphBuilder()
    x = b.activation((1, depth), si, 0, "input")
    y = b.activation((1, units), so, 0, "output")
    _fc_layer(b, x, si, w, sw, bias, y)
    b.build([x], [y], path)
    exact = tuple(int(v[0]) for v in conv_multipliers(si, np.array([sw], np.float32), so, 1))
    wrong = _float32_product_multiplier(si, sw, so)
    return (
        samples,
        multiply_by_quantized_multiplier(acc, *exact),
        multiply_by_quantized_multiplier(acc, *wrong),
    )


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_tensor_fully_connected_multiplier_is_exact(tmp_path: Path, seed: int, with_bias: bool) -> None:
    path = tmp_path / "fc.tflite"
    samples, expected, float32_answer = build_sensitive_fc(path, seed, with_bias)
    assert expected != float32_answer  # the case really separates the two arithmetics
    assert int(oracle.run(path, samples[:1])[0].reshape(-1)[0]) == expected
    report = verify(path, samples, tflm_arena=False)
    assert report["bit_exact"], report["first_mismatch"]


def test_ten_layer_per_tensor_autoencoder_is_exact(tmp_path: Path) -> None:
    """The shape of MLPerf Tiny's anomaly-detection autoencoder, scaled down: ten per-tensor FC layers."""
    rng = np.random.default_rng(7)
    widths = [40, 32, 24, 16, 8, 16, 24, 32, 40, 40]
    b = GraphBuilder()
    scale = float(np.float32(rng.uniform(0.02, 0.2)))
    x = src = b.activation((1, 40), scale, int(rng.integers(-30, 30)), "input")
    n_in = 40
    for layer, units in enumerate(widths):
        w_scale = float(np.float32(rng.uniform(0.002, 0.03)))
        out_scale = float(np.float32(rng.uniform(0.05, 0.3)))
        out = b.activation((1, units), out_scale, int(rng.integers(-30, 30)), f"dense{layer}")
        w = rng.integers(-127, 128, size=(units, n_in), dtype=np.int8)
        _fc_layer(b, src, scale, w, w_scale, rng.integers(-3000, 3000, size=units, dtype=np.int32), out)
        src, scale, n_in = out, out_scale, units
    path = b.build([x], [src], tmp_path / "autoencoder.tflite")
    samples = rng.integers(-128, 128, size=(64, 1, 40), dtype=np.int8)
    report = verify(path, samples, tflm_arena=False)
    assert report["bit_exact"], report["first_mismatch"]


# --- every other op with a multiplier or a quantized bound: one-op branches over drawn scales ---------

SHAPE = (1, 4, 8, 8)  # 256 values: sample 0 holds every int8 value once
BRANCHES = 10
FUSED = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def _scale(rng: np.random.Generator, low: float = 0.004, high: float = 0.6) -> float:
    """A float32 scale drawn log-uniformly, so the scale ratios span several binades."""
    return float(np.float32(np.exp(rng.uniform(np.log(low), np.log(high)))))


def _activation_code(b: GraphBuilder, name: str) -> int:
    return getattr(b.schema.ActivationFunctionType, name)


def _branch(b: GraphBuilder, rng: np.random.Generator, kind: str, src, k: int):
    """One op of `kind` on `src`, its output quantized with drawn parameters; returns the output."""
    s, ops = b.schema, b.schema.BuiltinOperator
    act = _activation_code(b, FUSED[k % len(FUSED)])
    if kind in ("ADD", "SUB", "MUL"):
        other = b.constant(
            rng.integers(-128, 128, size=SHAPE, dtype=np.int8), s.TensorType.INT8, [_scale(rng)], 0, f"c{k}"
        )
        other.quantization.zero_points = [int(rng.integers(-100, 100))]
        out = b.activation(SHAPE, _scale(rng, 0.01, 2.0), int(rng.integers(-60, 60)), f"y{k}")
        options = {"ADD": s.AddOptionsT, "SUB": s.SubOptionsT, "MUL": s.MulOptionsT}[kind]()
        options.fusedActivationFunction = act
        b.op(
            getattr(ops, kind),
            [src, other],
            [out],
            getattr(s.BuiltinOptions, f"{kind.title()}Options"),
            options,
        )
    elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        q = src.quantization
        out = b.activation((1, 2, 4, 8), q.scales[0], q.zero_points[0], f"y{k}")
        options = s.Pool2DOptionsT()
        options.padding, options.strideH, options.strideW = s.Padding.VALID, 2, 2
        options.filterHeight, options.filterWidth, options.fusedActivationFunction = 2, 2, act
        b.op(getattr(ops, kind), [src], [out], s.BuiltinOptions.Pool2DOptions, options)
    elif kind == "MEAN":
        axes = b.graph.add_tensor(
            shape=(2,), dtype=s.TensorType.INT32, data=np.array([1, 2], np.int32), name=f"a{k}"
        )
        out = b.activation((1, 8), _scale(rng), int(rng.integers(-60, 60)), f"y{k}")
        options = s.ReducerOptionsT()
        options.keepDims = False
        b.op(ops.MEAN, [src, axes], [out], s.BuiltinOptions.ReducerOptions, options)
    elif kind == "SOFTMAX":
        out = b.activation(SHAPE, 1.0 / 256, -128, f"y{k}")
        options = s.SoftmaxOptionsT()
        options.beta = float(rng.uniform(0.2, 3.0))
        b.op(ops.SOFTMAX, [src], [out], s.BuiltinOptions.SoftmaxOptions, options)
    elif kind in ("LOGISTIC", "TANH"):
        scale, zero_point = (1.0 / 256, -128) if kind == "LOGISTIC" else (1.0 / 128, 0)
        out = b.activation(SHAPE, scale, zero_point, f"y{k}")
        b.op(getattr(ops, kind), [src], [out])
    else:
        raise ValueError(kind)
    return out


def build_branches(path: Path, kind: str, seed: int) -> Path:
    """The input requantized (QUANTIZE int8 -> int8) to BRANCHES drawn scales, and one `kind` op on each.

    Every requantized tensor and every op output is a model output, so both are compared.
    """
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.activation(SHAPE, 0.05, 0, "input")
    outputs = []
    for k in range(BRANCHES):
        t = b.activation(SHAPE, _scale(rng), int(rng.integers(-60, 60)), f"t{k}")
        b.op(b.schema.BuiltinOperator.QUANTIZE, [x], [t])
        outputs += [t, _branch(b, rng, kind, t, k)]
    return b.build([x], outputs, path)


@pytest.mark.parametrize(
    "kind", ["ADD", "SUB", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SOFTMAX", "LOGISTIC", "TANH"]
)
def test_every_op_multiplier_over_drawn_scales(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(11)
    path = build_branches(tmp_path / f"{kind}.tflite", kind, seed=sum(map(ord, kind)))
    samples = rng.integers(-128, 128, size=(12, *SHAPE[1:]), dtype=np.int8)
    samples[0] = rng.permutation(EVERY_INT8).reshape(SHAPE[1:])
    report = verify(path, samples, tflm_arena=False)
    assert report["outputs"] == 2 * BRANCHES
    assert report["bit_exact"], report["first_mismatch"]
