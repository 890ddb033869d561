"""Generated C for the non-matmul ops is byte for byte TFLite Micro's output.

Each case builds a tiny Keras model around one op (sometimes two), converts it to full
int8, generates C, compiles it for the host with AddressSanitizer/UBSan and compares
every output byte with the `tflite_micro` interpreter (`toolchain.codegen.verify`).
Table-driven ops (LOGISTIC, TANH, RELU) get all 256 int8 input values; the others
random int8 samples. Calibration data of different spreads and offsets varies the
quantization parameters, and a few cases patch the flatbuffer (softmax beta, equal
input/output quantization) to reach paths the converter rarely emits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(300)

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)


def _layer(fn: Callable[[Any], Any]):
    """A Keras layer running `fn` (for ops Keras has no layer for: x + const, keras.ops.pad, mean)."""
    import keras

    class Fn(keras.layers.Layer):
        def call(self, x):
            return fn(x)

    return Fn()


def _convert(
    tmp_path: Path,
    name: str,
    shape: tuple[int, ...],
    build: Callable[[Any], Any],
    *,
    spread: float = 1.0,
    offset: float = 0.0,
) -> Path:
    """Keras model x -> build(x), calibrated on normal(offset, spread) data, saved as .tflite."""
    import keras

    from toolchain.convert import convert_model

    x = keras.Input(shape)
    model = keras.Model(x, build(x))
    calib = np.random.default_rng(7).normal(offset, spread, size=(48, *shape)).astype(np.float32)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert_model(model, calib, samples=48))
    return path


def _patch(path: Path, edit: Callable[[Any], None]) -> Path:
    """Rewrite a .tflite through the flatbuffer object API (edit(model) changes it in place)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(path.read_bytes(), 0))
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = path.with_name(path.stem + "_patched.tflite")
    out.write_bytes(bytes(builder.Output()))
    return out


def _same_quantization(model) -> None:
    """Patch: give the first op's output its input's scale and zero point."""
    tensors = model.subgraphs[0].tensors
    op = model.subgraphs[0].operators[0]
    src, dst = tensors[op.inputs[0]], tensors[op.outputs[0]]
    dst.quantization.scale = list(src.quantization.scale)
    dst.quantization.zeroPoint = list(src.quantization.zeroPoint)


def _random_samples(path: Path, count: int = 24, seed: int = 3) -> np.ndarray:
    from toolchain.codegen.graph import parse

    shape = parse(path).inputs[0].shape
    return np.random.default_rng(seed).integers(-128, 128, size=(count, *shape[1:]), dtype=np.int8)


def _opcodes(path: Path) -> list[str]:
    from toolchain.codegen.graph import parse

    return [op.opcode for op in parse(path).ops]


def _op(path: Path, opcode: str):
    from toolchain.codegen.graph import parse

    return next(op for op in parse(path).ops if op.opcode == opcode)


def _assert_bit_exact(path: Path, x: np.ndarray) -> dict[str, Any]:
    from toolchain.codegen.verify import verify

    report = verify(path, x, sanitize=True)
    assert report["samples"] == len(x)
    assert report["bit_exact"], (
        f"{path.name}: {report['mismatches']} bytes differ, first {report['first_mismatch']}"
    )
    return report


# --- table-driven activations: every int8 input value --------------------------------

CALIBRATIONS = [
    pytest.param(0.4, 0.0, id="narrow"),
    pytest.param(3.0, 0.0, id="wide"),
    pytest.param(1.5, 1.0, id="offset"),
]


def _activation(kind: str):
    from keras import layers

    return {
        "logistic": lambda x: layers.Activation("sigmoid")(x),
        "tanh": lambda x: layers.Activation("tanh")(x),
        "relu": lambda x: layers.ReLU()(x),
        "relu6": lambda x: layers.ReLU(6.0)(x),
        "leaky_relu": lambda x: layers.LeakyReLU(negative_slope=0.15)(x),
        "hard_swish": lambda x: layers.Activation("hard_swish")(x),
    }[kind]


@pytest.mark.parametrize("spread,offset", CALIBRATIONS)
@pytest.mark.parametrize(
    "kind,opcode",
    [
        ("logistic", "LOGISTIC"),
        ("tanh", "TANH"),
        ("relu", "RELU"),
        ("relu6", "RELU6"),
        ("leaky_relu", "LEAKY_RELU"),
        ("hard_swish", "HARD_SWISH"),
    ],
)
def test_unary_activation_every_input_value(tmp_path, kind, opcode, spread, offset):
    path = _convert(tmp_path, kind, (256,), _activation(kind), spread=spread, offset=offset)
    assert _opcodes(path) == [opcode]
    _assert_bit_exact(path, ALL_INT8.reshape(1, 256))


@pytest.mark.parametrize("spread", [0.02, 40.0])
@pytest.mark.parametrize(
    "kind,opcode", [("logistic", "LOGISTIC"), ("tanh", "TANH"), ("hard_swish", "HARD_SWISH")]
)
def test_fixed_point_activations_at_extreme_input_scales(tmp_path, kind, opcode, spread):
    """Tiny and huge input scales move TFLM's shifts (left and right) and radius far from the usual."""
    path = _convert(tmp_path, kind, (256,), _activation(kind), spread=spread)
    assert _opcodes(path) == [opcode]
    _assert_bit_exact(path, ALL_INT8.reshape(1, 256))


def test_relu_with_equal_quantization_is_a_clamp(tmp_path):
    path = _convert(tmp_path, "relu", (256,), _activation("relu"), spread=2.0)

    patched = _patch(path, _same_quantization)
    relu = _op(patched, "RELU")
    assert relu.inputs[0].scale[0] == relu.outputs[0].scale[0]
    _assert_bit_exact(patched, ALL_INT8.reshape(1, 256))


# --- SOFTMAX -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,spread", [((10,), 1.0), ((10,), 8.0), ((3, 7), 2.0), ((2, 2, 33), 0.3), ((511,), 0.05)]
)
def test_softmax(tmp_path, shape, spread):
    from keras import layers

    path = _convert(tmp_path, "softmax", shape, lambda x: layers.Softmax()(x), spread=spread)
    assert _opcodes(path) == ["SOFTMAX"]
    x = _random_samples(path, 32)
    x[0] = 3  # equal values: the largest possible sum of exps (depth * 1.0), the longest final shift
    _assert_bit_exact(path, x)


@pytest.mark.parametrize("beta", [0.25, 3.0])
def test_softmax_beta(tmp_path, beta):
    from keras import layers

    path = _convert(tmp_path, "softmax", (12,), lambda x: layers.Softmax()(x), spread=2.0)

    def set_beta(model):
        model.subgraphs[0].operators[0].builtinOptions.beta = beta

    patched = _patch(path, set_beta)
    assert _op(patched, "SOFTMAX").options["beta"] == pytest.approx(beta)
    x = _random_samples(patched, 32)
    x[0] = 5  # a row of equal values: the sum of exps is exactly depth * 1.0
    _assert_bit_exact(patched, x)


# --- ADD and MUL ---------------------------------------------------------------------------


def _const(values):
    import keras

    return keras.ops.convert_to_tensor(np.asarray(values, np.float32))


def _binary_cases():
    from keras import layers

    tanh = layers.Activation("tanh")
    return {
        "add_elementwise": (lambda x: layers.Add()([x, layers.Activation("tanh")(x)]), "ADD", "NONE", False),
        "add_relu": (lambda x: layers.ReLU()(layers.Add()([x, tanh(x)])), "ADD", "RELU", False),
        "add_relu6": (
            lambda x: layers.ReLU(6.0)(layers.Add()([x, layers.Activation("tanh")(x)])),
            "ADD",
            "RELU6",
            False,
        ),
        "add_broadcast_mean": (
            lambda x: layers.Add()([x, layers.GlobalAveragePooling2D(keepdims=True)(x)]),
            "ADD",
            "NONE",
            True,
        ),
        "add_const_channels": (
            lambda x: _layer(lambda t: t + _const([0.5, -1.0, 2.0]))(x),
            "ADD",
            "NONE",
            True,
        ),
        "sub_elementwise": (
            lambda x: layers.Subtract()([x, layers.Activation("tanh")(x)]),
            "SUB",
            "NONE",
            False,
        ),
        "sub_relu_broadcast": (
            lambda x: layers.ReLU()(layers.Subtract()([x, layers.GlobalAveragePooling2D(keepdims=True)(x)])),
            "SUB",
            "RELU",
            True,
        ),
        "sub_from_const": (lambda x: _layer(lambda t: _const([0.5, -1.0, 2.0]) - t)(x), "SUB", "NONE", True),
        "mul_elementwise": (
            lambda x: layers.Multiply()([x, layers.Activation("sigmoid")(x)]),
            "MUL",
            "NONE",
            False,
        ),
        "mul_relu": (
            lambda x: layers.ReLU()(layers.Multiply()([x, layers.Activation("tanh")(x)])),
            "MUL",
            "RELU",
            False,
        ),
        "mul_broadcast_mean": (
            lambda x: layers.Multiply()([x, layers.GlobalAveragePooling2D(keepdims=True)(x)]),
            "MUL",
            "NONE",
            True,
        ),
        "mul_const_channels": (
            lambda x: _layer(lambda t: t * _const([0.5, -1.0, 3.0]))(x),
            "MUL",
            "NONE",
            True,
        ),
        "mul_const_rows": (
            lambda x: _layer(lambda t: t * _const([[[0.5]], [[-2.0]], [[1.0]], [[4.0]]]))(x),
            "MUL",
            "NONE",
            True,
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "add_elementwise",
        "add_relu",
        "add_relu6",
        "add_broadcast_mean",
        "add_const_channels",
        "sub_elementwise",
        "sub_relu_broadcast",
        "sub_from_const",
        "mul_elementwise",
        "mul_relu",
        "mul_broadcast_mean",
        "mul_const_channels",
        "mul_const_rows",
    ],
)
def test_add_sub_and_mul(tmp_path, case):
    build, opcode, act, broadcast = _binary_cases()[case]
    path = _convert(tmp_path, case, (4, 5, 3), build, spread=1.5, offset=0.3)
    op = _op(path, opcode)
    assert op.options["fused_activation_function"] == act
    assert (op.inputs[0].size != op.inputs[1].size) == broadcast
    _assert_bit_exact(path, _random_samples(path))


# --- pooling -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pool,size,strides,padding,act,channels",
    [
        ("avg", 2, 2, "valid", None, 3),
        ("avg", 3, 2, "same", None, 3),
        ("avg", (2, 3), (1, 2), "same", "relu6", 3),
        ("avg", 3, 1, "same", None, 35),  # channels in three blocks of the kernel
        ("max", 2, 2, "valid", None, 3),
        ("max", 3, 2, "same", "relu", 17),
        ("max", (3, 2), (2, 1), "same", None, 3),
    ],
)
def test_pooling(tmp_path, pool, size, strides, padding, act, channels):
    from keras import layers

    layer = layers.AveragePooling2D if pool == "avg" else layers.MaxPooling2D
    activation = {None: lambda t: t, "relu": layers.ReLU(), "relu6": layers.ReLU(6.0)}[act]
    path = _convert(
        tmp_path,
        pool,
        (7, 6, channels),
        lambda x: activation(layer(size, strides, padding=padding)(x)),
        spread=2.0,
        offset=0.5,
    )
    op = _op(path, "AVERAGE_POOL_2D" if pool == "avg" else "MAX_POOL_2D")
    assert op.options["fused_activation_function"] == (act or "none").upper()
    assert op.options["padding"] == padding.upper()
    _assert_bit_exact(path, _random_samples(path))


# --- MEAN ----------------------------------------------------------------------------------


def _mean_cases():
    import keras
    from keras import layers

    return {
        "gap2d": ((5, 5, 8), lambda x: layers.GlobalAveragePooling2D()(x)),
        "gap2d_keepdims": ((4, 6, 5), lambda x: layers.GlobalAveragePooling2D(keepdims=True)(x)),
        "gap2d_large_window": ((12, 11, 2), lambda x: layers.GlobalAveragePooling2D()(x)),
        "gap1d": ((6, 4), lambda x: layers.GlobalAveragePooling1D()(x)),
        "mean_last_axis": ((4, 6), lambda x: _layer(lambda t: keras.ops.mean(t, axis=-1, keepdims=True))(x)),
    }


@pytest.mark.parametrize("case", ["gap2d", "gap2d_keepdims", "gap2d_large_window", "gap1d", "mean_last_axis"])
def test_mean(tmp_path, case):
    shape, build = _mean_cases()[case]
    path = _convert(tmp_path, case, shape, build, spread=1.0, offset=0.4)
    assert _opcodes(path) == ["MEAN"]
    _assert_bit_exact(path, _random_samples(path))


def test_mean_with_equal_quantization_and_exact_ties(tmp_path):
    from keras import layers

    path = _convert(tmp_path, "gap", (4, 2, 3), lambda x: layers.GlobalAveragePooling2D()(x), offset=0.7)

    patched = _patch(path, _same_quantization)
    x = _random_samples(patched, 64)
    sums = x.reshape(64, 8, 3).astype(int).sum(axis=1)
    assert (sums % 8 == 4).sum() >= 5  # windows of 8 whose mean ends in exactly .5
    _assert_bit_exact(patched, x)


# --- PAD and CONCATENATION -------------------------------------------------------------------


def _pad_cases():
    import keras
    from keras import layers

    return {
        "zero_pad_2d": ((4, 5, 3), lambda x: layers.ZeroPadding2D(((1, 2), (0, 1)))(x), "PAD"),
        "zero_pad_1d": ((5, 3), lambda x: layers.ZeroPadding1D(2)(x), "PAD"),
        "pad_channels": (
            (3, 3, 2),
            lambda x: _layer(lambda t: keras.ops.pad(t, [[0, 0], [0, 0], [1, 0], [2, 3]]))(x),
            "PAD",
        ),
        "padv2_constant": (
            (4, 4, 3),
            lambda x: _layer(
                lambda t: keras.ops.pad(t, [[0, 0], [1, 1], [2, 0], [0, 0]], constant_values=0.7)
            )(x),
            "PADV2",
        ),
    }


@pytest.mark.parametrize("case", ["zero_pad_2d", "zero_pad_1d", "pad_channels", "padv2_constant"])
def test_pad(tmp_path, case):
    shape, build, opcode = _pad_cases()[case]
    path = _convert(tmp_path, case, shape, build, spread=1.0, offset=0.5)
    assert _opcodes(path) == [opcode]
    _assert_bit_exact(path, _random_samples(path))


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenation(tmp_path, axis):
    from keras import layers

    def build(x):
        pooled = layers.MaxPooling2D(2, 1, padding="same")(x)  # same quantization as x: no QUANTIZE op
        return layers.Concatenate(axis=axis)([x, pooled, x])

    path = _convert(tmp_path, "concat", (3, 4, 2), build)
    op = _op(path, "CONCATENATION")
    assert len(op.inputs) == 3
    _assert_bit_exact(path, _random_samples(path))


# --- random shapes (hypothesis): pooling windows and broadcast patterns ----------------------


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pool=st.sampled_from(["avg", "max"]),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    channels=st.integers(1, 20),
    filter_h=st.integers(1, 4),
    filter_w=st.integers(1, 4),
    stride_h=st.integers(1, 3),
    stride_w=st.integers(1, 3),
    same=st.booleans(),
)
def test_random_pooling(
    tmp_path_factory, pool, height, width, channels, filter_h, filter_w, stride_h, stride_w, same
):
    from keras import layers

    assume(same or (filter_h <= height and filter_w <= width))
    layer = layers.AveragePooling2D if pool == "avg" else layers.MaxPooling2D
    build = lambda x: layer((filter_h, filter_w), (stride_h, stride_w), padding="same" if same else "valid")(
        x
    )  # noqa: E731
    path = _convert(tmp_path_factory.mktemp("pool"), pool, (height, width, channels), build, spread=2.0)
    _assert_bit_exact(path, _random_samples(path, 8))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["add", "sub", "mul"]),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    keep=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    seed=st.integers(0, 1000),
)
def test_random_broadcast_constant(tmp_path_factory, kind, shape, keep, seed):
    """x (1,H,W,C) combined with a constant of shape (H|1, W|1, C|1): every broadcast pattern."""
    const_shape = tuple(d if k else 1 for d, k in zip(shape, keep, strict=True))
    values = np.random.default_rng(seed).uniform(-2, 2, size=const_shape).astype(np.float32)
    values.flat[0] = 2.5  # keep the constant's range away from zero width
    combine = {"add": lambda t, c: t + c, "sub": lambda t, c: t - c, "mul": lambda t, c: t * c}[kind]
    build = lambda x: _layer(lambda t: combine(t, _const(values)))(x)  # noqa: E731
    path = _convert(tmp_path_factory.mktemp("bcast"), kind, shape, build, spread=1.0)
    assert _opcodes(path) == [kind.upper()]
    _assert_bit_exact(path, _random_samples(path, 8))


# --- the generated folder carries the kernel headers it needs, and only those ------------------


def test_generated_folder_has_the_headers_its_kernels_include(tmp_path):
    from keras import layers

    from toolchain import codegen

    both = _convert(
        tmp_path,
        "add_softmax",
        (12,),
        lambda x: layers.Softmax()(layers.Add()([x, layers.Activation("tanh")(x)])),
        spread=2.0,
    )
    assert _opcodes(both) == ["TANH", "ADD", "SOFTMAX"]
    codegen.generate(both, tmp_path / "both")
    names = {p.name for p in (tmp_path / "both").iterdir()}
    assert {
        "tr_platform.h",
        "tr_requantize.h",
        "tr_elementwise.h",
        "tr_fixedpoint.h",
        "tr_lookup.c",
        "tr_add.c",
        "tr_softmax.c",
    } <= names
    _assert_bit_exact(both, _random_samples(both, 16))  # verify builds from its own generated folder

    tanh_only = _convert(tmp_path, "tanh", (12,), _activation("tanh"))
    codegen.generate(tanh_only, tmp_path / "tanh")
    headers = {p.name for p in (tmp_path / "tanh").glob("*.h")}
    # only what the lookup kernel needs: no dot products, no convolution core
    assert headers == {"model.h", "tr_lookup.h", "tr_params.h", "tr_platform.h"}
