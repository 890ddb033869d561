"""Hypothesis-generated small int8 graphs, written directly as TFLite flatbuffers (TFLM's
model editor, no TensorFlow converter), so shapes, strides, padding, dilation, depth
multipliers, per-channel scales, zero points and fused activations are all drawn at random
and every one must be bit-exact with TFLite Micro."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.helpers.budget import build_checked
from toolchain.codegen.ops.conv import out_size
from toolchain.codegen.verify import verify

ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


class GraphBuilder:
    """A one-subgraph int8 model built tensor by tensor with tflite_micro's model_editor."""

    def __init__(self) -> None:
        from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

        self.me, self.schema = me, schema
        self.model = me.Model()
        self.graph = self.model.add_subgraph()
        self._codes: set[int] = set()

    def activation(self, shape, scale: float, zero_point: int, name: str):
        q = self.me.Quantization(scales=[float(scale)], zero_points=[int(zero_point)])
        return self.graph.add_tensor(
            shape=tuple(shape), dtype=self.schema.TensorType.INT8, quantization=q, name=name
        )

    def constant(self, array: np.ndarray, dtype, scales, axis: int, name: str):
        scales = [float(s) for s in np.atleast_1d(scales)]
        q = self.me.Quantization(scales=scales, zero_points=[0] * len(scales), axis=axis)
        return self.graph.add_tensor(shape=array.shape, dtype=dtype, data=array, quantization=q, name=name)

    def op(self, opcode: int, inputs, outputs, options_type: int = 0, options=None) -> None:
        if (
            opcode not in self._codes
        ):  # the editor leaves deprecated_builtin_code at 0; TFLM reads max of both
            code = self.me.OperatorCode(builtin_code=opcode)
            code._fb.deprecatedBuiltinCode = min(opcode, 127)
            self.model.operator_codes.append(code)
            self._codes.add(opcode)
        op = self.me.Operator(opcode=opcode, inputs=inputs, outputs=outputs)
        if options is not None:
            op._fb.builtinOptionsType = options_type
            op._fb.builtinOptions = options
        self.graph.operators.append(op)

    def build(self, inputs, outputs, path: Path) -> Path:
        self.graph.inputs, self.graph.outputs = inputs, outputs
        path.write_bytes(bytes(self.model.build()))
        return path


def _weights(rng, shape, channels_axis: int, per_channel: bool):
    w = rng.integers(-127, 128, size=shape, dtype=np.int8)
    channels = shape[channels_axis]
    scales = rng.uniform(0.002, 0.05, size=channels if per_channel else 1).astype(np.float32)
    return w, scales


def _bias(b: GraphBuilder, rng, in_scale: float, w_scales, channels: int, name: str):
    data = rng.integers(-3000, 3000, size=channels, dtype=np.int32)
    scales = np.float32(in_scale) * np.broadcast_to(w_scales, (channels,))
    return b.constant(data, b.schema.TensorType.INT32, scales, 0, name)


conv_params = st.fixed_dictionaries(
    {
        "depthwise": st.booleans(),
        "h": st.integers(1, 9),
        "w": st.integers(1, 9),
        "c": st.integers(1, 6),
        "k_h": st.integers(1, 4),
        "k_w": st.integers(1, 4),
        "stride_h": st.integers(1, 3),
        "stride_w": st.integers(1, 3),
        "dil_h": st.integers(1, 3),
        "dil_w": st.integers(1, 3),
        "padding": st.sampled_from(["SAME", "VALID"]),
        "out_c": st.integers(1, 7),
        "multiplier": st.integers(1, 3),
        "per_channel": st.booleans(),
        "bias": st.booleans(),
        "act": st.sampled_from(list(ACTIVATIONS)),
        "in_zp": st.integers(-128, 127),
        "out_zp": st.integers(-128, 127),
        "in_scale": st.floats(0.005, 0.5),
        "out_scale": st.floats(0.005, 0.5),
        "seed": st.integers(0, 2**16),
    }
)


def conv_output_size(p: dict) -> tuple[int, int]:
    """(out_h, out_w) of the drawn convolution; below 1 when the window does not fit the input."""
    out_h = out_size(p["padding"], p["h"], p["k_h"], p["stride_h"], p["dil_h"])
    out_w = out_size(p["padding"], p["w"], p["k_w"], p["stride_w"], p["dil_w"])
    return out_h, out_w


def build_conv(p: dict, path: Path) -> Path:
    """One CONV_2D or DEPTHWISE_CONV_2D from drawn parameters with a non-empty output."""
    padding = 0 if p["padding"] == "SAME" else 1
    out_h, out_w = conv_output_size(p)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"empty convolution output {out_h}x{out_w} for {p}")
    rng = np.random.default_rng(p["seed"])
    b = GraphBuilder()
    s = b.schema
    x = b.activation((1, p["h"], p["w"], p["c"]), p["in_scale"], p["in_zp"], "input")
    if p["depthwise"]:
        out_c = p["c"] * p["multiplier"]
        w, scales = _weights(rng, (1, p["k_h"], p["k_w"], out_c), 3, p["per_channel"])
        filt = b.constant(w, s.TensorType.INT8, scales, 3, "dw_weights")
        options = s.DepthwiseConv2DOptionsT()
        options.depthMultiplier = p["multiplier"]
        opcode, options_type = s.BuiltinOperator.DEPTHWISE_CONV_2D, s.BuiltinOptions.DepthwiseConv2DOptions
    else:
        out_c = p["out_c"]
        w, scales = _weights(rng, (out_c, p["k_h"], p["k_w"], p["c"]), 0, p["per_channel"])
        filt = b.constant(w, s.TensorType.INT8, scales, 0, "conv_weights")
        options = s.Conv2DOptionsT()
        opcode, options_type = s.BuiltinOperator.CONV_2D, s.BuiltinOptions.Conv2DOptions
    options.padding, options.strideH, options.strideW = padding, p["stride_h"], p["stride_w"]
    options.dilationHFactor, options.dilationWFactor = p["dil_h"], p["dil_w"]
    options.fusedActivationFunction = ACTIVATIONS[p["act"]]
    # TFLM's DEPTHWISE_CONV_2D crashes without a bias (the converter always emits one).
    with_bias = p["bias"] or p["depthwise"]
    bias = _bias(b, rng, p["in_scale"], scales, out_c, "bias") if with_bias else None
    y = b.activation((1, out_h, out_w, out_c), p["out_scale"], p["out_zp"], "output")
    b.op(opcode, [x, filt, bias], [y], options_type, options)
    return b.build([x], [y], path)


fc_params = st.fixed_dictionaries(
    {
        "batches": st.integers(1, 3),
        "depth": st.integers(1, 40),
        "hidden": st.integers(1, 8),
        "units": st.integers(1, 20),
        "per_channel": st.booleans(),
        "bias": st.booleans(),
        "act1": st.sampled_from(list(ACTIVATIONS)),
        "act2": st.sampled_from(list(ACTIVATIONS)),
        "zps": st.tuples(st.integers(-128, 127), st.integers(-128, 127), st.integers(-128, 127)),
        "scales": st.tuples(st.floats(0.005, 0.5), st.floats(0.005, 0.5), st.floats(0.005, 0.5)),
        "seed": st.integers(0, 2**16),
    }
)


def build_fc_chain(p: dict, path: Path) -> Path:
    """FULLY_CONNECTED -> FULLY_CONNECTED through a (possibly narrow) hidden tensor."""
    rng = np.random.default_rng(p["seed"])
    b = GraphBuilder()
    s = b.schema
    (s0, s1, s2), (z0, z1, z2) = p["scales"], p["zps"]
    x = b.activation((p["batches"], p["depth"]), s0, z0, "input")
    h = b.activation((p["batches"], p["hidden"]), s1, z1, "hidden")
    y = b.activation((p["batches"], p["units"]), s2, z2, "output")
    for i, (src, dst, n_in, n_out, act, scale) in enumerate(
        [(x, h, p["depth"], p["hidden"], p["act1"], s0), (h, y, p["hidden"], p["units"], p["act2"], s1)]
    ):
        w, scales = _weights(rng, (n_out, n_in), 0, p["per_channel"])
        filt = b.constant(w, s.TensorType.INT8, scales, 0, f"fc{i}_weights")
        bias = _bias(b, rng, scale, scales, n_out, f"fc{i}_bias") if p["bias"] else None
        options = s.FullyConnectedOptionsT()
        options.fusedActivationFunction = ACTIVATIONS[act]
        b.op(
            s.BuiltinOperator.FULLY_CONNECTED,
            [src, filt, bias],
            [dst],
            s.BuiltinOptions.FullyConnectedOptions,
            options,
        )
    return b.build([x], [y], path)


def _check(path: Path, seed: int, fuse: bool | None = None) -> dict:
    from toolchain.codegen.graph import parse

    shape = parse(path).inputs[0].shape
    x = np.random.default_rng(seed).integers(-128, 128, size=(12, *shape), dtype=np.int8)
    report = verify(path, x, tflm_arena=False, fuse=fuse)
    assert report["bit_exact"], report["first_mismatch"]
    return report


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_params)
def test_random_conv_and_depthwise_are_bit_exact(tmp_path: Path, p: dict) -> None:
    assume(min(conv_output_size(p)) >= 1)  # a VALID window larger than the input has no output
    _check(build_conv(p, tmp_path / "conv.tflite"), p["seed"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fc_params)
def test_random_fully_connected_chains_are_bit_exact(tmp_path: Path, p: dict) -> None:
    path = build_fc_chain(p, tmp_path / "fc.tflite")
    from toolchain.codegen.ops.fully_connected import takes_row_stream

    plain = _check(path, p["seed"], fuse=False)
    expected = [  # a one-row layer into more than four outputs runs the DSP targets' row stream
        "tr_fully_connected_row_int8"
        if takes_row_stream(p["batches"], n_out, dsp=True)
        else "tr_fully_connected_int8"
        for n_out in (p["hidden"], p["units"])
    ]
    assert plain["kernels"] == expected
    if p["hidden"] < min(p["depth"], p["units"]):  # a factored pair: the fused kernel must agree too
        fused = _check(path, p["seed"], fuse=True)["kernels"]  # one of the fused pair's three forms
        assert fused in ([f"tr_fully_connected_factored{form}_int8"] for form in ("", "_row", "_thin"))


def test_builder_writes_what_the_parser_reads(tmp_path: Path) -> None:
    from toolchain.codegen.graph import parse

    p = {
        "depthwise": True,
        "h": 5,
        "w": 6,
        "c": 2,
        "k_h": 3,
        "k_w": 2,
        "stride_h": 2,
        "stride_w": 1,
        "dil_h": 2,
        "dil_w": 1,
        "padding": "SAME",
        "out_c": 1,
        "multiplier": 3,
        "per_channel": True,
        "bias": True,
        "act": "RELU6",
        "in_zp": -3,
        "out_zp": 7,
        "in_scale": 0.1,
        "out_scale": 0.2,
        "seed": 1,
    }
    op = parse(build_conv(p, tmp_path / "dw.tflite")).ops[0]
    assert op.opcode == "DEPTHWISE_CONV_2D"
    assert op.options["depth_multiplier"] == 3 and op.options["dilation_h_factor"] == 2
    assert op.options["fused_activation_function"] == "RELU6" and op.options["padding"] == "SAME"
    assert op.inputs[1].scale.size == 6 and op.inputs[1].quantized_dimension == 3
    assert op.outputs[0].shape == (1, 3, 6, 6)
    _check(tmp_path / "dw.tflite", 0)


@pytest.mark.parametrize("opcode", ["QUANTIZE"])
def test_requantize_between_two_fully_connected(tmp_path: Path, opcode: str) -> None:
    """QUANTIZE int8 -> int8 (a change of scale) inside a graph, as the converter may insert."""
    b = GraphBuilder()
    s = b.schema
    rng = np.random.default_rng(4)
    x = b.activation((1, 16), 0.05, 3, "input")
    h = b.activation((1, 8), 0.02, -20, "hidden")
    r = b.activation((1, 8), 0.037, 11, "requantized")
    y = b.activation((1, 4), 0.1, 0, "output")
    w1, s1 = _weights(rng, (8, 16), 0, True)
    w2, s2 = _weights(rng, (4, 8), 0, False)
    for src, dst, w, sc, name in ((x, h, w1, s1, "fc0"), (r, y, w2, s2, "fc1")):
        if name == "fc1":
            b.op(s.BuiltinOperator.QUANTIZE, [h], [r])
        b.op(
            s.BuiltinOperator.FULLY_CONNECTED,
            [src, b.constant(w, s.TensorType.INT8, sc, 0, name), None],
            [dst],
            s.BuiltinOptions.FullyConnectedOptions,
            s.FullyConnectedOptionsT(),
        )
    path = b.build([x], [y], tmp_path / "requant.tflite")
    from toolchain.codegen.graph import parse

    assert [op.opcode for op in parse(path).ops] == ["FULLY_CONNECTED", opcode, "FULLY_CONNECTED"]
    _check(path, 3)


def _build_and_run(gen: Path, board: str, x: np.ndarray) -> np.ndarray:
    """Outputs of the benchmark firmware `tinyrank build` makes from `gen` for `board`, run in QEMU."""
    from toolchain.bench.measure import run_samples

    build_checked(gen, board)
    return run_samples(gen, board, x)["outputs"][0]


@pytest.mark.qemu
def test_odd_shapes_are_bit_exact_on_cortex_m4_dsp_and_m3_generic(
    tmp_path: Path, pio_build_cache: Path
) -> None:
    """Channel counts and depths that are not multiples of four exercise every DSP tail path.

    Each model runs in the benchmark firmware built for qemu_m4 (DSP) and qemu_m3 (generic)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from toolchain import oracle
    from toolchain.codegen import generate
    from toolchain.codegen.graph import parse

    conv = {
        "depthwise": False,
        "h": 7,
        "w": 6,
        "c": 5,
        "k_h": 3,
        "k_w": 2,
        "stride_h": 2,
        "stride_w": 1,
        "dil_h": 1,
        "dil_w": 2,
        "padding": "SAME",
        "out_c": 7,
        "multiplier": 1,
        "per_channel": True,
        "bias": True,
        "act": "RELU",
        "in_zp": -7,
        "out_zp": 5,
        "in_scale": 0.05,
        "out_scale": 0.1,
        "seed": 3,
    }
    depthwise = {**conv, "depthwise": True, "c": 7, "multiplier": 1, "k_w": 3, "act": "RELU6"}
    depthwise_x2 = {**depthwise, "c": 3, "multiplier": 2}
    fc = {
        "batches": 2,
        "depth": 19,
        "hidden": 6,
        "units": 11,
        "per_channel": True,
        "bias": True,
        "act1": "RELU",
        "act2": "NONE",
        "zps": (3, -9, 12),
        "scales": (0.04, 0.03, 0.2),
        "seed": 5,
    }
    paths = [
        build_conv(conv, tmp_path / "conv.tflite"),
        build_conv(depthwise, tmp_path / "dw.tflite"),
        build_conv(depthwise_x2, tmp_path / "dw2.tflite"),
        build_fc_chain(fc, tmp_path / "fc.tflite"),
    ]
    cases = {}  # digest of the generated C -> (label, folder, samples, expected outputs)
    for path in paths:
        shape = parse(path).inputs[0].shape
        x = np.random.default_rng(9).integers(-128, 128, size=(3, *shape), dtype=np.int8)
        expected = oracle.run(path, x)[0]
        for fuse in (False, True):
            gen = tmp_path / f"{path.stem}_{fuse}"
            generate(path, gen, tflm_arena=False, fuse=fuse)
            # Where fusing changes nothing the C is byte for byte the same: one firmware covers both.
            digest = hashlib.sha256(
                b"".join(f.name.encode() + f.read_bytes() for f in sorted(gen.glob("*.[ch]")))
            )
            cases.setdefault(digest.hexdigest(), (f"{path.name} fuse={fuse}", gen, x, expected))
    assert "fc.tflite fuse=True" in [label for label, *_ in cases.values()]  # the fused FC pair is its own C
    with ThreadPoolExecutor(max_workers=2) as pool:  # builds and QEMU runs are subprocesses: two at a time
        runs = {
            (label, board): (pool.submit(_build_and_run, gen, board, x), expected)
            for label, gen, x, expected in cases.values()
            for board in ("qemu_m4", "qemu_m3")
        }
    for (label, board), (future, expected) in runs.items():
        np.testing.assert_array_equal(future.result(), expected, err_msg=f"{label} on {board}")


# (channels, multiplier, kernel, stride, dilation, padding): every branch of the paired kernel
MULTIPLIER_CASES = {
    "micro_speech_like": (1, 8, (10, 8), (2, 2), (1, 1), "SAME"),
    "one_channel_rows_dilated": (1, 6, (3, 4), (1, 3), (2, 1), "SAME"),
    "one_channel_odd_row": (1, 2, (3, 3), (1, 1), (1, 1), "VALID"),
    "odd_taps_rest_of_four": (3, 5, (3, 3), (1, 2), (1, 1), "SAME"),
    "channels_by_four_mult_2": (8, 2, (3, 3), (2, 2), (1, 1), "SAME"),
    "dilated_mult_3": (6, 3, (2, 3), (1, 1), (2, 1), "VALID"),
    "one_tap_mult_4": (5, 4, (1, 1), (1, 1), (1, 1), "VALID"),
}


# The quantization, activation and seed of the depthwise cases built by hand (here and in
# test_codegen_depthwise_3x3.py).
DEPTHWISE_QUANT = {
    "out_c": 1,
    "per_channel": True,
    "bias": True,
    "act": "RELU",
    "in_zp": -9,
    "out_zp": 4,
    "in_scale": 0.05,
    "out_scale": 0.3,
    "seed": 11,
}


def _multiplier_params(case: str) -> dict:
    channels, multiplier, (k_h, k_w), (s_h, s_w), (d_h, d_w), padding = MULTIPLIER_CASES[case]
    return {
        "depthwise": True,
        "h": 11,
        "w": 10,
        "c": channels,
        "k_h": k_h,
        "k_w": k_w,
        "stride_h": s_h,
        "stride_w": s_w,
        "dil_h": d_h,
        "dil_w": d_w,
        "padding": padding,
        "multiplier": multiplier,
        **DEPTHWISE_QUANT,
    }


@pytest.mark.parametrize("case", sorted(MULTIPLIER_CASES))
def test_depthwise_multiplier_kernel_is_bit_exact(tmp_path: Path, case: str) -> None:
    p = _multiplier_params(case)
    report = _check(build_conv(p, tmp_path / "dw.tflite"), p["seed"])
    by_rows = p["c"] == 1 and p["k_w"] % 4 == 0
    assert report["kernels"] == ["tr_depthwise_conv_rows_int8" if by_rows else "tr_depthwise_conv_pairs_int8"]


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3", "qemu_m0"])  # DSP path; generic on M3 and M0
def test_depthwise_multiplier_kernel_is_bit_exact_in_qemu(
    tmp_path: Path, pio_build_cache: Path, board: str
) -> None:
    """Multiplier cases, one model each (channels by four on the DSP column path, the rest-of-four
    and odd-tap branches, one channel by kernel rows across the border), run in the benchmark firmware."""
    from toolchain import oracle
    from toolchain.codegen import generate
    from toolchain.codegen.graph import parse

    for case in ("channels_by_four_mult_2", "odd_taps_rest_of_four", "one_channel_rows_dilated"):
        path = build_conv(_multiplier_params(case), tmp_path / f"{case}.tflite")
        x = np.random.default_rng(3).integers(
            -128, 128, size=(2, *parse(path).inputs[0].shape), dtype=np.int8
        )
        generate(path, tmp_path / case, tflm_arena=False)
        outputs = _build_and_run(tmp_path / case, board, x)
        np.testing.assert_array_equal(outputs, oracle.run(path, x)[0], err_msg=f"{case} on {board}")
