"""The non-matmul op lowerings refuse what they cannot do, and their C builds everywhere.

`check(op)` must reject unsupported ops with one line naming the op index, the opcode,
what is wrong and what is supported, before any file is written. The kernels must
compile warning-free for the host and the Cortex-M cores tinyrank targets, the
fixed-point helpers of the C kernels (tr_fixedpoint.h) must agree with the Python port
that computes the tables (fixedpoint.py), and the renderer must copy every header a
used kernel includes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cdriver import build_driver, run_driver
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.codegen import fixedpoint, render
from toolchain.codegen.graph import Op, Tensor
from toolchain.codegen.lowering import LoweringContext
from toolchain.codegen.ops import (
    _common,
    add,
    concatenation,
    logistic,
    mean,
    mul,
    pad,
    pool,
    registry,
    relu,
    softmax,
    tanh,
)
from toolchain.errors import TinyrankError, UnsupportedError

KERNELS = Path(__file__).resolve().parent.parent / "firmware_templates" / "kernels"


def _tensor(
    index: int,
    shape: tuple[int, ...],
    *,
    dtype: str = "int8",
    scale=(0.05,),
    zero_point=(0,),
    data: np.ndarray | None = None,
) -> Tensor:
    return Tensor(
        index=index,
        name=f"t{index}",
        shape=shape,
        dtype=dtype,
        scale=np.asarray(scale, np.float32),
        zero_point=np.asarray(zero_point, np.int64),
        quantized_dimension=0,
        data=data,
    )


def _op(opcode: str, inputs: list[Tensor | None], outputs: list[Tensor], index: int = 7, **options) -> Op:
    return Op(index=index, opcode=opcode, inputs=inputs, outputs=outputs, options=options)


def _rejects(module, op: Op, *words: str) -> str:
    with pytest.raises(UnsupportedError) as info:
        module.check(op)
    message = str(info.value)
    assert message.startswith(f"op {op.index} ({op.opcode}):"), message
    assert "supported" in message and "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_every_supported_opcode_is_registered():
    table = registry()
    for opcode in (
        "FULLY_CONNECTED",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "QUANTIZE",
        "RESHAPE",
        "ADD",
        "SUB",
        "MUL",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "MEAN",
        "SOFTMAX",
        "LOGISTIC",
        "TANH",
        "RELU",
        "RELU6",
        "LEAKY_RELU",
        "HARD_SWISH",
        "CONCATENATION",
        "PAD",
        "PADV2",
    ):
        assert opcode in table, opcode


def test_elementwise_ops_reject_float_and_per_channel_tensors():
    a, b = _tensor(0, (1, 4)), _tensor(1, (1, 4))
    out_float = _tensor(2, (1, 4), dtype="float32", scale=(), zero_point=())
    _rejects(add, _op("ADD", [a, b], [out_float], fused_activation_function="NONE"), "float32", "int8")
    per_channel = _tensor(1, (1, 4), scale=(0.1, 0.2, 0.3, 0.4), zero_point=(0, 0, 0, 0))
    _rejects(
        mul,
        _op("MUL", [a, per_channel], [_tensor(2, (1, 4))], fused_activation_function="NONE"),
        "4 per-channel scales",
        "per-tensor",
    )


def test_add_rejects_unknown_activation_and_bad_broadcast():
    a, out = _tensor(0, (1, 2, 2, 3)), _tensor(2, (1, 2, 2, 3))
    _rejects(
        add,
        _op("ADD", [a, _tensor(1, (1, 2, 2, 3))], [out], fused_activation_function="TANH"),
        "fused activation TANH",
        "RELU6",
    )
    _rejects(
        add,
        _op("ADD", [a, _tensor(1, (1, 2, 1, 2))], [out], fused_activation_function="NONE"),
        "do not broadcast",
    )
    five_d = _tensor(1, (1, 1, 1, 1, 3))
    _rejects(
        mul,
        _op(
            "MUL",
            [_tensor(0, (2, 1, 2, 2, 3)), five_d],
            [_tensor(2, (2, 1, 2, 2, 3))],
            fused_activation_function="NONE",
        ),
        "4 dimensions",
    )


def test_broadcast_geometry_repeats_size_one_dimensions():
    a, b, out = _tensor(0, (1, 2, 3, 4)), _tensor(1, (4,)), _tensor(2, (1, 2, 3, 4))
    op = _op("ADD", [a, b], [out], fused_activation_function="NONE")
    geometry = _common.broadcast_geometry(op, a, b, out)
    assert geometry.tolist() == [1, 2, 3, 4, 0, 12, 4, 1, 0, 0, 0, 1]
    assert _common.broadcast_geometry(op, a, _tensor(1, (1, 2, 3, 4)), out) is None


def test_pool_rejects_bad_rank_and_padding():
    src, dst = _tensor(0, (1, 4, 4, 2)), _tensor(1, (1, 2, 2, 2))
    options = dict(filter_height=2, filter_width=2, stride_h=2, stride_w=2, fused_activation_function="NONE")
    _rejects(
        pool,
        _op("MAX_POOL_2D", [_tensor(0, (4, 4, 2))], [_tensor(1, (2, 2, 2))], padding="VALID", **options),
        "4-D",
    )
    _rejects(
        pool, _op("AVERAGE_POOL_2D", [src], [dst], padding="REFLECT", **options), "REFLECT", "SAME, VALID"
    )
    options["stride_w"] = 0
    _rejects(pool, _op("AVERAGE_POOL_2D", [src], [dst], padding="SAME", **options), "stride_w")


def test_pool_geometry_pads_same_like_tflite():
    src, dst = _tensor(0, (1, 7, 6, 3)), _tensor(1, (1, 4, 3, 3))
    op = _op(
        "AVERAGE_POOL_2D",
        [src],
        [dst],
        padding="SAME",
        filter_height=3,
        filter_width=3,
        stride_h=2,
        stride_w=2,
        fused_activation_function="NONE",
    )
    # total padding (4-1)*2+3-7 = 2 -> 1 on top; (3-1)*2+3-6 = 1 -> 0 on the left (the odd cell goes after)
    g = pool.pool_geometry(op)
    sizes = ("batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c")
    assert [g[k] for k in sizes] == [1, 7, 6, 3, 4, 3, 3]
    assert [g[k] for k in ("k_h", "k_w", "stride_h", "stride_w", "dil_h", "dil_w")] == [3, 3, 2, 2, 1, 1]
    assert (g["pad_top"], g["pad_left"]) == (1, 0)


def test_mean_rejects_non_contiguous_and_dynamic_axes():
    src = _tensor(0, (1, 4, 4, 8))
    axes = _tensor(1, (2,), dtype="int32", scale=(), zero_point=(), data=np.array([1, 3], np.int32))
    _rejects(mean, _op("MEAN", [src, axes], [_tensor(2, (1, 4))], keep_dims=False), "[1, 3]", "contiguous")
    dynamic = _tensor(1, (2,), dtype="int32", scale=(), zero_point=())
    _rejects(mean, _op("MEAN", [src, dynamic], [_tensor(2, (1, 8))], keep_dims=False), "non-constant axis")
    out_of_range = _tensor(1, (1,), dtype="int32", scale=(), zero_point=(), data=np.array([4], np.int32))
    _rejects(
        mean, _op("MEAN", [src, out_of_range], [_tensor(2, (1, 4, 4))], keep_dims=False), "within the rank"
    )


def test_mean_layout_and_negative_axes():
    src = _tensor(0, (2, 5, 3, 8))
    axes = _tensor(1, (2,), dtype="int32", scale=(), zero_point=(), data=np.array([-2, 1, 1], np.int32))
    op = _op("MEAN", [src, axes], [_tensor(2, (2, 8))], keep_dims=False)
    assert mean.reduced_axes(op) == [1, 2]
    assert mean.mean_layout(op) == (2, 15, 8)


def test_mean_params_fold_the_count_into_the_multiplier():
    zero_sum, multiplier, shift, output_zp = mean.mean_params(0.02, -3, 0.01, 5, 25).tolist()
    assert zero_sum == -75 and output_zp == 5
    assert multiplier * 2.0 ** (shift - 31) == pytest.approx(2.0 / 25, rel=1e-8)


def test_softmax_rejects_wrong_output_quantization_and_huge_depth():
    src = _tensor(0, (1, 10), scale=(0.1,))
    _rejects(
        softmax,
        _op("SOFTMAX", [src], [_tensor(1, (1, 10), scale=(1 / 128,), zero_point=(0,))], beta=1.0),
        "1/256",
        "-128",
    )
    big = _tensor(0, (1, 1000), scale=(0.1,))
    _rejects(
        softmax,
        _op("SOFTMAX", [big], [_tensor(1, (1, 1000), scale=(1 / 256,), zero_point=(-128,))], beta=1.0),
        "depth 1000",
        "511",
    )


def test_logistic_rejects_output_zero_point():
    _rejects(
        logistic,
        _op("LOGISTIC", [_tensor(0, (1, 8))], [_tensor(1, (1, 8), scale=(1 / 256,))]),
        "zero point 0",
        "-128",
    )


def test_concatenation_rejects_activation_and_mismatched_shapes():
    a, b = _tensor(0, (1, 2, 3)), _tensor(1, (1, 2, 5))
    out = _tensor(2, (1, 2, 8))
    _rejects(
        concatenation,
        _op("CONCATENATION", [a, b], [out], axis=-1, fused_activation_function="RELU"),
        "fused activation RELU",
    )
    _rejects(
        concatenation,
        _op("CONCATENATION", [a, _tensor(1, (1, 3, 5))], [out], axis=2, fused_activation_function="NONE"),
        "does not match",
    )
    _rejects(
        concatenation, _op("CONCATENATION", [a, b], [out], axis=3, fused_activation_function="NONE"), "axis 3"
    )


def test_pad_rejects_dynamic_paddings_and_wrong_output():
    src = _tensor(0, (1, 4, 4, 3))
    dynamic = _tensor(1, (4, 2), dtype="int32", scale=(), zero_point=())
    _rejects(pad, _op("PAD", [src, dynamic], [_tensor(2, (1, 6, 6, 3))]), "non-constant paddings")
    pads = _tensor(
        1,
        (4, 2),
        dtype="int32",
        scale=(),
        zero_point=(),
        data=np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
    )
    _rejects(pad, _op("PAD", [src, pads], [_tensor(2, (1, 6, 5, 3))]), "int8[1,6,5,3]", "[[0, 0], [1, 1]")
    pad.check(_op("PAD", [src, pads], [_tensor(2, (1, 6, 6, 3))]))


def test_lowering_emits_named_tables_and_calls():
    ctx = LoweringContext()
    src = _tensor(0, (1, 16), scale=(0.03,), zero_point=(4,))
    call = tanh.lower(_op("TANH", [src], [_tensor(1, (1, 16), scale=(1 / 128,))], index=3), ctx)
    assert call.source == "tr_lookup.c" and call.function == "tr_lookup_int8"
    assert call.args == ["T0", "T1"] and call.call_args == [f"&{call.params.name}", "T0", "T1"]
    assert call.params.ctype == "tr_lookup_params" and call.params.fields["size"] == 16
    table = next(c for c in ctx.constants if c.name == call.params.fields["table"])
    assert table.values.dtype == np.int8 and table.values.size == 256
    assert np.all(np.diff(table.values.astype(int)) >= 0)  # tanh is monotonic
    assert "TANH" in call.comment
    relu6 = relu.lower(_op("RELU6", [src], [_tensor(1, (1, 16), scale=(0.5,), zero_point=(-100,))]), ctx)
    # TFLM's RELU6 clamps on the input's quantization: [zp, zp + round(6 / scale)]
    assert relu6.function == "tr_relu_int8" and relu6.params.fields == {"size": 16, "lo": 4, "hi": 127}


def test_constant_names_are_whole_and_unique():
    ctx = LoweringContext(prefix="kws")
    long_hint = "sequential_1/dense_1_2/MatMul_right_shift_and_rounding_pairs"
    name = ctx.constant(long_hint, np.zeros(2, np.int32), "int32_t")
    assert name == "kws_sequential_1_dense_1_2_matmul_right_shift_and_rounding_pairs"  # never cut
    # names that differ only in punctuation, or one hint used twice, get a short hash suffix
    a = ctx.constant("conv/w", np.zeros(1, np.int8), "int8_t")
    b = ctx.constant("conv_w", np.zeros(1, np.int8), "int8_t")
    c = ctx.constant("conv_w", np.zeros(1, np.int8), "int8_t")
    assert a == "kws_conv_w" and len({a, b, c}) == 3
    assert all(re.fullmatch(r"kws_conv_w_[0-9a-f]{6}", n) for n in (b, c))
    assert ctx.unique_name("kws_invoke") != "kws_invoke"  # the model's C API keeps its names
    with pytest.raises(ValueError, match="not reserved"):
        ctx.params("tr_relu_params", "relu_1", {})


def test_params_struct_renders_as_a_named_static_const():
    ctx = LoweringContext()
    name = ctx.unique_name("fc_dense_1")
    requant = {"multiplier": "tr_m", "shift": "NULL", "doubled": "tr_d", "output_offset": -128}
    params = ctx.params(
        "tr_fc_params", name, {"batches": 1, "input_depth": 64, "filter": "tr_w", "requant": requant}
    )
    lines = render.struct_lines(params)
    assert lines[0] == "    static const tr_fc_params fc_dense_1 = {" and lines[-1] == "    };"
    text = "\n".join(lines)
    assert ".batches = 1, .input_depth = 64," in text and ".filter = tr_w," in text
    assert ".requant = { .multiplier = tr_m, .shift = NULL, .doubled = tr_d, .output_offset = -128 }," in text
    assert render.comment_lines("a */ b") == ["    /* a * / b */"]
    wrapped = render.comment_lines("word " * 60)
    assert (
        wrapped[0].startswith("    /* ") and wrapped[-1] == "     */" and all(len(x) <= 110 for x in wrapped)
    )


def test_logistic_table_is_monotonic_and_centred():
    table = logistic.logistic_table(0.05, 0).astype(int)
    assert np.all(np.diff(table) >= 0)
    assert table[128] == 0  # logistic(0) = 0.5 -> 0.5 * 256 - 128
    assert table[0] < -120 and table[255] > 120


def _compile(cc: str, flags: list[str], source: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            cc,
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            *flags,
            f"-I{KERNELS}",
            "-c",
            str(source),
            "-o",
            str(tmp_path / (source.stem + ".o")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{cc} {' '.join(flags)} {source.name}:\n{result.stderr}"


@pytest.mark.parametrize("cpu", ["host", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7"])
def test_kernels_compile_without_warnings(tmp_path, cpu):
    if cpu == "host":
        cc, flags = shutil.which("gcc"), []
    else:
        cc, flags = shutil.which("arm-none-eabi-gcc"), [f"-mcpu={cpu}", "-mthumb"]
    assert cc, "compiler missing"
    for source in sorted(KERNELS.glob("*.c")):
        _compile(cc, flags, source, tmp_path)


@pytest.fixture(scope="module")
def reciprocal_driver(tmp_path_factory) -> Path:
    """A host program printing tr_fixedpoint.h's 1/(1+x) (SOFTMAX's reciprocal) for each x read on stdin."""
    return build_driver(
        '#include <stdio.h>\n#include "tr_fixedpoint.h"\n'
        'int main(void) { long v; while (scanf("%ld", &v) == 1) '
        'printf("%ld\\n", (long)tr_fp_one_over_one_plus_x((int32_t)v)); return 0; }\n',
        tmp_path_factory.mktemp("fixedpoint"),
    )


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=200))
def test_c_reciprocal_matches_python_port(reciprocal_driver, values):
    ours = [int(v) for v in run_driver(reciprocal_driver, ([v] for v in values))]
    assert ours == [fixedpoint.one_over_one_plus_x_for_x_in_0_1(v) for v in values]
    for x, r in zip(values, ours, strict=True):  # and it is 1 / (1 + x) in Q0.31
        assert abs(r / 2**31 - 1 / (1 + x / 2**31)) < 1e-6


def test_pad_merges_unpadded_inner_dimensions():
    # NHWC padded on H and W: each W*C row is one copy
    dims, pads = pad.collapsed((1, 8, 8, 3), np.array([[0, 0], [1, 1], [2, 0], [0, 0]]))
    assert dims == [1, 8, 24] and pads == [[0, 0], [1, 1], [6, 0]]
    # nothing padded: one flat copy
    assert pad.collapsed((2, 3), np.zeros((2, 2), int)) == ([6], [[0, 0]])
    # channels padded: nothing to merge
    assert pad.collapsed((1, 2, 3), np.array([[0, 0], [0, 0], [1, 2]]))[0] == [1, 2, 3]


def test_add_tables_rescale_each_input_to_the_common_scale():
    a = _tensor(0, (1, 4), scale=(0.02,), zero_point=(3,))
    b = _tensor(1, (1, 4), scale=(0.05,), zero_point=(-7,))
    out = _tensor(2, (1, 4), scale=(0.06,), zero_point=(1,))
    tables, params = add.add_params(a, b, out, "RELU")
    assert tables.shape == (512,)
    # input b has the larger scale: (v - zp) * 2^20 / 2, exactly
    assert tables[256 + 128 + 10] == (10 + 7) * 2**19
    assert tables[128 + 3] == 0 and tables[256 + 128 - 7] == 0
    assert tables[128 + 13] == pytest.approx(10 * 2**19 * 0.02 / 0.05, abs=1)
    assert params[2] == 1 and params[3] == 1 and params[4] == 127  # zero point, RELU range


# --- shared helpers: fixed point, the op registry, kernel headers ------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**15), 2**15 - 1), st.integers(-(2**15), 2**15 - 1))
def test_int16_fixed_point_is_the_int32_one_at_16_bits(a, b):
    """HARD_SWISH's int16 SaturatingRoundingDoublingHighMul is the int32 one on a * 2^16 (bar saturation)."""
    if a == b == -(2**15):
        assert fixedpoint.srdhm(a, b, bits=16) == 2**15 - 1
        return
    assert fixedpoint.srdhm(a, b, bits=16) == fixedpoint.srdhm(a * 2**16, b)
    truncated = fixedpoint.sdhm(a, b)
    assert truncated == int(a * b / 2**15) and abs(truncated - fixedpoint.srdhm(a, b, bits=16)) <= 1


def test_registry_skips_private_modules_and_records_broken_ops(tmp_path, monkeypatch):
    from toolchain.codegen import ops

    (tmp_path / "_helpers.py").write_text("raise RuntimeError('a helper is never imported as an op')\n")
    (tmp_path / "zz_broken_op.py").write_text("OPCODES = ('ZZ',)\nraise ImportError('no such thing')\n")
    monkeypatch.setattr(ops, "__path__", [*ops.__path__, str(tmp_path)])
    monkeypatch.setattr(ops, "BROKEN", {})
    ops.registry.cache_clear()
    try:
        table = ops.registry()
        assert "ADD" in table and "ZZ" not in table
        assert set(ops.BROKEN) == {"zz_broken_op"} and "no such thing" in ops.BROKEN["zz_broken_op"]
        assert all(not module.__name__.rsplit(".", 1)[-1].startswith("_") for module in table.values())
        with pytest.raises(UnsupportedError) as info:
            ops.module_for(_op("ZZ", [], []))
        message = str(info.value)
        assert message.startswith("op 7 (ZZ): not supported") and "ADD" in message, message
        assert "'zz_broken_op' failed to load (ImportError: no such thing)" in message, message
    finally:
        ops.registry.cache_clear()


def test_kernel_headers_are_found_through_includes():
    family = ["tr_params.h", "tr_platform.h"]
    arithmetic = ["tr_requantize.h", *family]
    assert render.kernel_headers(["tr_add.c"]) == sorted(["tr_add.h", "tr_elementwise.h", *arithmetic])
    assert render.kernel_headers(["tr_mul.c", "tr_softmax.c", "tr_lookup.c"]) == sorted(
        ["tr_mul.h", "tr_softmax.h", "tr_lookup.h", "tr_elementwise.h", "tr_fixedpoint.h", *arithmetic]
    )
    assert render.kernel_headers(["tr_lookup.c"]) == ["tr_lookup.h", *family]
    # an MLP's kernels need the matmul loops but neither the dense loops nor the convolution core
    fc = render.kernel_headers(["tr_fully_connected.c"])
    assert "tr_matmul.h" in fc and "tr_dot.h" in fc
    assert "tr_conv_core.h" not in fc


def test_kernel_headers_follow_nested_includes_and_name_missing_ones(tmp_path, monkeypatch):
    (tmp_path / "tr_a.c").write_text(
        '#include <string.h>\n#include "tr_outer.h"\n// #include "tr_commented.h"\n'
    )
    (tmp_path / "tr_outer.h").write_text('  #  include "tr_inner.h"\n#include "tr_outer.h"\n')
    (tmp_path / "tr_inner.h").write_text("/* no includes */\n")
    (tmp_path / "tr_b.c").write_text('#include "tr_missing.h"\n')
    monkeypatch.setattr(render, "KERNELS", tmp_path)
    assert render.kernel_headers(["tr_a.c"]) == ["tr_inner.h", "tr_outer.h"]
    with pytest.raises(TinyrankError, match=r"tr_missing\.h: not found"):
        render.kernel_headers(["tr_b.c"])


def test_every_unsupported_op_and_tensor_type_is_listed_at_once(tmp_path) -> None:
    """A model from elsewhere (int16 input, several unknown ops) gets one error naming every problem."""
    from test_codegen_random_graphs import GraphBuilder

    from toolchain.codegen import generate

    b = GraphBuilder()
    s, ops = b.schema, b.schema.BuiltinOperator
    q = b.me.Quantization(scales=[0.01], zero_points=[0])
    x = b.graph.add_tensor(shape=(1, 16), dtype=s.TensorType.INT16, quantization=q, name="audio")
    h = b.activation((1, 16), 0.02, 0, "h")
    y = b.activation((1, 16), 0.02, 0, "y")
    z = b.activation((1, 16), 0.02, 0, "z")
    b.op(ops.QUANTIZE, [x], [h])
    b.op(ops.SQUARE, [h], [y])
    b.op(ops.RSQRT, [y], [z])
    path = b.build([x], [z], tmp_path / "frontend.tflite")
    out = tmp_path / "gen"
    with pytest.raises(UnsupportedError) as info:
        generate(path, out)
    message = str(info.value)
    assert "problems:" in message and message.count("\n") == 0
    assert "model input 'audio' (tensor 0) is int16" in message
    assert "op 0 (QUANTIZE): tensor 'audio' is int16" in message
    assert "op 1 (SQUARE): not supported by codegen" in message
    assert "op 2 (RSQRT): not supported by codegen" in message
    assert "supported ops:" in message
    assert not out.exists()
