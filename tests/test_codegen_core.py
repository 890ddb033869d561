"""Codegen core: FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D / RESHAPE generated C, bit-exact
with TFLite Micro on the host (plain and ASan/UBSan builds), generated files and API, errors.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cdriver import build_driver, run_driver

from toolchain.codegen import generate
from toolchain.codegen.verify import build_host, run_host, verify
from toolchain.errors import ModelError, TinyrankError, UnsupportedError


def _convert_keras(model, x, per_channel_dense=True) -> bytes:
    from benchmarks.mlperf_tiny import convert

    return convert(model, x, per_channel_dense=per_channel_dense)


def _convert_function(fn, input_shape, x) -> bytes:
    """Convert a tf.function (raw TF ops give native dilation, which Keras turns into SPACE_TO_BATCH)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[np.newaxis]] for s in x)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def _build_models(folder: Path) -> dict[str, Path]:
    import keras
    import tensorflow as tf

    L = keras.layers
    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)
    paths: dict[str, Path] = {}

    def save(name: str, data: bytes) -> None:
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(data)

    x = rng.normal(size=(48, 20)).astype(np.float32)
    mlp = keras.Sequential(
        [keras.Input((20,)), L.Dense(16, activation="relu"), L.Dense(12, activation="relu6"), L.Dense(5)]
    )
    save("fc_per_channel", _convert_keras(mlp, x))
    save("fc_per_tensor", _convert_keras(mlp, x, per_channel_dense=False))
    converter = tf.lite.TFLiteConverter.from_keras_model(
        mlp
    )  # float input and output: QUANTIZE/DEQUANTIZE edges
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    save("float_edges", converter.convert())

    x = rng.normal(size=(48, 9, 12, 3)).astype(np.float32)
    cnn = keras.Sequential(
        [
            keras.Input((9, 12, 3)),
            L.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
            L.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
            L.Conv2D(6, 1),
            L.DepthwiseConv2D((2, 3), strides=(1, 2), padding="valid", activation="relu6"),
            L.Conv2D(5, (2, 1), padding="valid"),
            L.Flatten(),
            L.Dense(4),
        ]
    )
    save("cnn", _convert_keras(cnn, x))

    w_dw = tf.constant(rng.normal(size=(3, 3, 4, 2)).astype(np.float32) * 0.3)
    w_conv = tf.constant(rng.normal(size=(2, 3, 8, 5)).astype(np.float32) * 0.3)

    @tf.function(input_signature=[tf.TensorSpec((1, 11, 10, 4), tf.float32)])
    def dilated(t):
        t = tf.nn.relu(
            tf.nn.depthwise_conv2d(t, w_dw, strides=[1, 1, 1, 1], padding="SAME", dilations=[2, 2])
        )
        return tf.nn.conv2d(t, w_conv, strides=[1, 2, 1, 1], padding="SAME", dilations=[3, 2])

    save(
        "dilated",
        _convert_function(dilated, (11, 10, 4), rng.normal(size=(48, 11, 10, 4)).astype(np.float32)),
    )

    w_dw3 = tf.constant(rng.normal(size=(3, 3, 8, 1)).astype(np.float32) * 0.3)
    w_dw5 = tf.constant(rng.normal(size=(5, 3, 8, 1)).astype(np.float32) * 0.3)

    @tf.function(input_signature=[tf.TensorSpec((1, 12, 11, 8), tf.float32)])
    def depthwise_fast(t):  # depth multiplier 1, channels a multiple of 4: the doubled-requantization kernel
        t = tf.nn.relu(
            tf.nn.depthwise_conv2d(t, w_dw3, strides=[1, 1, 1, 1], padding="SAME", dilations=[2, 2])
        )
        return tf.nn.depthwise_conv2d(t, w_dw5, strides=[1, 2, 2, 1], padding="VALID")  # 15 taps: the loop

    save(
        "depthwise_fast",
        _convert_function(depthwise_fast, (12, 11, 8), rng.normal(size=(48, 12, 11, 8)).astype(np.float32)),
    )
    return paths


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _build_models(tmp_path_factory.mktemp("codegen_core"))


def _samples(path: Path, n: int, seed: int = 3) -> np.ndarray:
    """int8 samples over the whole range (saturating requantization is exercised too)."""
    from toolchain.codegen.graph import parse

    shape = parse(path).inputs[0].shape[1:]
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape), dtype=np.int8)


@pytest.mark.parametrize("name", ["fc_per_channel", "fc_per_tensor", "cnn", "dilated", "depthwise_fast"])
def test_bit_exact_with_tflm(models: dict[str, Path], name: str) -> None:
    report = verify(models[name], _samples(models[name], 200))
    assert report["samples"] == 200
    assert report["mismatches"] == 0, report["first_mismatch"]
    assert report["bit_exact"]


@pytest.mark.parametrize("name", ["fc_per_channel", "cnn", "dilated"])
def test_bit_exact_under_address_and_ub_sanitizers(models: dict[str, Path], name: str) -> None:
    report = verify(models[name], _samples(models[name], 20, seed=5), sanitize=True)
    assert report["bit_exact"], report["first_mismatch"]


def test_float_edges_run_on_their_int8_tensors(models: dict[str, Path], tmp_path: Path) -> None:
    from toolchain.codegen.graph import parse

    graph = parse(models["float_edges"])
    assert [graph.ops[0].opcode, graph.ops[-1].opcode] == ["QUANTIZE", "DEQUANTIZE"]
    info = generate(models["float_edges"], tmp_path / "gen")
    assert info["inputs"][0]["dtype"] == "int8" and info["inputs"][0]["tflite_dtype"] == "float32"
    assert [op["opcode"] for op in info["ops"]] == ["FULLY_CONNECTED"] * 3
    x = np.random.default_rng(2).normal(size=(100, 20)).astype(np.float32) * 3
    report = verify(models["float_edges"], x)  # float outputs compared exactly after TFLM's dequantization
    assert report["bit_exact"], report["first_mismatch"]


def test_float_samples_are_quantized_like_the_oracle(models: dict[str, Path]) -> None:
    x = np.random.default_rng(0).normal(size=(30, 20)).astype(np.float32)
    assert verify(models["fc_per_channel"], x)["bit_exact"]


def test_files_api_and_model_info(models: dict[str, Path], tmp_path: Path) -> None:
    path = models["cnn"]
    info = generate(path, tmp_path / "gen", prefix="kws")
    gen = tmp_path / "gen"
    names = {p.name for p in gen.iterdir()}
    assert {
        "model.h",
        "model.c",
        "model_weights.c",
        "model_info.json",
        "tr_platform.h",
        "tr_conv.h",
        "tr_conv.c",
        "tr_depthwise_conv.c",
        "tr_fully_connected.c",
    } <= names
    assert json.loads((gen / "model_info.json").read_text()) == json.loads(json.dumps(info))
    header = (gen / "model.h").read_text()
    for macro in (
        "KWS_NUM_INPUTS 1",
        "KWS_NUM_OUTPUTS 1",
        "KWS_INPUT0_SIZE 324",
        "KWS_OUTPUT0_SIZE 4",
        f"KWS_ARENA_SIZE {info['arena_bytes']}",
        f"KWS_MODEL_HASH 0x{info['model_hash32']:08x}u",
        f"KWS_NUM_OPS {len(info['ops'])}",
    ):
        assert f"#define {macro}" in header
    assert "int kws_invoke(void);" in header and "const int8_t *kws_output(int i);" in header
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["model_sha256"] == digest and info["model_hash32"] == int(digest[:8], 16)
    assert info["inputs"][0]["shape"] == [1, 9, 12, 3] and info["inputs"][0]["dtype"] == "int8"
    assert [op["opcode"] for op in info["ops"]] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "CONV_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
    ]
    assert info["ops"][2]["kernel"] == "tr_fully_connected_int8"  # 1x1 conv runs as FC over pixels
    assert info["ops"][0]["macs"] == 5 * 6 * 8 * 3 * 3 * 3
    assert 0 < info["arena_bytes"] <= info["tflm_arena_bytes"]
    model_c = (gen / "model.c").read_text()
    assert model_c.count("TR_OP_BEGIN(") == len(info["ops"]) and "CONV_2D int8[1,9,12,3]" in model_c


def test_model_info_locates_every_tensor_and_constant(models: dict[str, Path], tmp_path: Path) -> None:
    """model_info.json alone tells where every byte lives: the budget and bench read nothing else."""
    from toolchain.codegen.graph import parse

    path = models["cnn"]
    info = generate(path, tmp_path / "gen", prefix="kws", tflm_arena=False)
    graph = parse(path)
    assert [t["index"] for t in info["tensors"]] == [t.index for t in graph.tensors]
    for entry, t in zip(info["tensors"], graph.tensors, strict=True):
        assert (entry["name"], entry["shape"], entry["dtype"]) == (t.name, list(t.shape), t.dtype)
        assert entry["bytes"] == t.nbytes
        if entry["storage"] == "arena":
            assert 0 <= entry["arena_offset"] and entry["arena_offset"] + t.nbytes <= info["arena_bytes"]
        else:
            assert entry["arena_offset"] is None
        if t.scale.size:
            assert entry["quantization"]["scale"] == pytest.approx(t.scale.tolist())
            assert entry["quantization"]["zero_point"] == t.zero_point.tolist()
    by_index = {t["index"]: t for t in info["tensors"]}
    for edge, t in [(info["inputs"][0], graph.inputs[0]), (info["outputs"][0], graph.outputs[0])]:
        assert by_index[t.index]["storage"] == "arena" and by_index[t.index]["c_name"] == f"T{t.index}"
        assert edge["size"] == t.size
    # Flatten's SHAPE -> STRIDED_SLICE -> PACK are pruned as dead: their tensors live nowhere.
    assert {t["storage"] for t in info["tensors"]} == {"arena", "constant", "none"}
    assert all(t["c_name"] is None for t in info["tensors"] if t["storage"] == "none")
    assert sum(c["bytes"] for c in info["constants"]) == info["weights_bytes"]
    weights_c = (tmp_path / "gen" / "model_weights.c").read_text()
    sizes = {"int8_t": 1, "int32_t": 4}
    for c in info["constants"]:
        assert c["c_name"].startswith("kws_") and f" {c['c_name']}[{c['count']}]" in weights_c
        assert c["bytes"] == c["count"] * sizes[c["c_type"]]


def test_host_build_is_warning_free_and_profiling_hooks_called(
    models: dict[str, Path], tmp_path: Path
) -> None:
    info = generate(models["cnn"], tmp_path / "gen")
    main = tmp_path / "main.c"
    main.write_text(r"""
#include <stdio.h>
#include "model.h"
static int begun, ended;
void tr_profile_op_begin(int op) { begun += op + 1; }
void tr_profile_op_end(int op) { ended += op + 1; }
int main(void) { tr_invoke(); printf("%d %d\n", begun, ended); return 0; }
""")
    sources = [str(p) for p in (tmp_path / "gen").glob("*.c")]
    out = tmp_path / "prof"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-DTR_PROFILE",
            f"-I{tmp_path / 'gen'}",
            *sources,
            str(main),
            "-o",
            str(out),
        ],
        check=True,
        timeout=120,
    )
    n = len(info["ops"])
    assert (
        subprocess.run([str(out)], capture_output=True, text=True, timeout=30).stdout.split()
        == [str(n * (n + 1) // 2)] * 2
    )


def test_two_models_with_different_prefixes_link_into_one_program(
    models: dict[str, Path], tmp_path: Path
) -> None:
    a = generate(models["cnn"], tmp_path / "a", prefix="first")
    b = generate(models["fc_per_channel"], tmp_path / "b", prefix="second")
    xa, xb = _samples(models["cnn"], 1), _samples(models["fc_per_channel"], 1)
    main = tmp_path / "main.c"
    main.write_text(f"""
#include <stdio.h>
#include <string.h>
#include "{tmp_path / "a" / "model.h"}"
#include "{tmp_path / "b" / "model.h"}"
static const int8_t xa[] = {{ {", ".join(map(str, xa.reshape(-1)))} }};
static const int8_t xb[] = {{ {", ".join(map(str, xb.reshape(-1)))} }};
int main(void)
{{
    memcpy(first_input(0), xa, FIRST_INPUT0_SIZE);
    memcpy(second_input(0), xb, SECOND_INPUT0_SIZE);
    if (first_invoke() || second_invoke()) return 1;
    fwrite(first_output(0), 1, FIRST_OUTPUT0_SIZE, stdout);
    fwrite(second_output(0), 1, SECOND_OUTPUT0_SIZE, stdout);
    return 0;
}}
""")
    objects = []
    for folder in ("a", "b"):  # each model compiled in its own folder, as two libraries would be
        for src in sorted((tmp_path / folder).glob("*.c")):
            obj = tmp_path / f"{folder}_{src.stem}.o"
            subprocess.run(
                [
                    "gcc",
                    "-std=c99",
                    "-O2",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    f"-I{tmp_path / folder}",
                    "-c",
                    str(src),
                    "-o",
                    str(obj),
                ],
                check=True,
                timeout=120,
            )
            objects.append(str(obj))
    exe = tmp_path / "both"
    subprocess.run(
        ["gcc", f"-I{tmp_path / 'a'}", str(main), *objects, "-o", str(exe)], check=True, timeout=120
    )
    out = np.frombuffer(
        subprocess.run([str(exe)], capture_output=True, timeout=30, check=True).stdout, np.int8
    )
    from toolchain import oracle

    expected = np.concatenate(
        [oracle.run(models["cnn"], xa)[0][0], oracle.run(models["fc_per_channel"], xb)[0][0]]
    )
    assert a["outputs"][0]["size"] + b["outputs"][0]["size"] == out.size
    np.testing.assert_array_equal(out, expected)


def test_host_harness_runs_many_samples_in_one_process(models: dict[str, Path], tmp_path: Path) -> None:
    info = generate(models["fc_per_tensor"], tmp_path / "gen")
    exe = build_host(tmp_path / "gen", info, tmp_path / "exe")
    x = _samples(models["fc_per_tensor"], 7)
    out = run_host(exe, x, info)
    assert out[0].shape == (7, 5)
    assert not np.array_equal(out[0][0], out[0][1])  # outputs depend on the input


def _float_model(folder: Path) -> Path:
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = folder / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_float_model_is_rejected_before_anything_is_written(tmp_path: Path) -> None:
    path = _float_model(tmp_path)
    out = tmp_path / "gen"
    with pytest.raises(UnsupportedError, match=r"model input .*float32.*supported: int8"):
        generate(path, out)
    assert not out.exists()


def test_unsupported_op_names_op_index_and_supported_list(models: dict[str, Path], tmp_path: Path) -> None:
    from toolchain.codegen import ops
    from toolchain.codegen.generator import lower_graph
    from toolchain.codegen.graph import parse

    graph = parse(models["cnn"])
    graph.ops[1].opcode = "SPACE_TO_BATCH_ND"
    with pytest.raises(UnsupportedError) as err:
        lower_graph(graph)
    message = str(err.value)
    assert message.startswith("op 1 (SPACE_TO_BATCH_ND): not supported")
    assert "FULLY_CONNECTED" in message and "CONV_2D" in message
    assert "FULLY_CONNECTED" in ops.supported_opcodes()


def test_unsupported_option_is_a_clear_error(models: dict[str, Path]) -> None:
    from toolchain.codegen.generator import lower_graph
    from toolchain.codegen.graph import parse

    graph = parse(models["cnn"])
    graph.ops[0].options["fused_activation_function"] = "SIGN_BIT"
    with pytest.raises(
        UnsupportedError,
        match=r"^op 0 \(CONV_2D\): fused activation SIGN_BIT is not supported; supported: NONE",
    ):
        lower_graph(graph)


def test_corrupt_or_missing_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="bad.tflite: not a TFLite flatbuffer"):
        generate(bad, tmp_path / "gen")
    with pytest.raises(ModelError, match="no such file"):
        generate(tmp_path / "missing.tflite", tmp_path / "gen")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 40)
    with pytest.raises(ModelError, match="truncated.tflite"):
        generate(truncated, tmp_path / "gen")
    assert not (tmp_path / "gen").exists()


def test_bad_prefix_is_rejected(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TinyrankError, match=r"--prefix 'My-Model'"):
        generate(models["fc_per_channel"], tmp_path / "gen", prefix="My-Model")


def test_every_kernel_family_header_declares_its_kernels() -> None:
    """tr_<family>.c includes tr_<family>.h first, which declares each of its TR_KERNEL functions
    and their tr_*_params types (model.c includes only the headers)."""
    from toolchain.codegen.ops.fully_connected import THIN_DEEP_SOURCE
    from toolchain.codegen.render import KERNELS

    for source in sorted(KERNELS.glob("tr_*.c")):
        if source.name == THIN_DEEP_SOURCE:  # no kernel: the thin loop's deep forms (tr_thin.h)
            continue
        header = source.with_suffix(".h")
        text, declared = source.read_text(), header.read_text()
        assert re.search(r'^#include "([^"]+)"', text, re.M).group(1) == header.name, source.name
        kernels = re.findall(r"^TR_KERNEL void (\w+)\(const (tr_\w+_params) \*params", text, re.M)
        assert kernels, f"{source.name}: no kernel in the tr_<family>_params convention"
        for function, params in kernels:
            assert re.search(rf"^void {function}\(const {params} \*params,", declared, re.M), function
            # a struct of its own, or another family's under its name (tr_conv_first_params)
            assert re.search(rf"(}}|^typedef tr_\w+_params) {params};", declared, re.M), params


def test_depthwise_fast_path_is_chosen_where_exact(models: dict[str, Path], tmp_path: Path) -> None:
    info = generate(models["depthwise_fast"], tmp_path / "gen", tflm_arena=False)
    assert [op["kernel"] for op in info["ops"]] == ["tr_depthwise_conv_dm1_doubled_int8"] * 2
    weights = (tmp_path / "gen" / "model_weights.c").read_text()
    assert "int16_t" in weights and "_filter_x2" in weights and "_doubled" in weights


DOUBLED_MAIN = r"""
#include <stdio.h>
#include "tr_requantize.h"
int main(void)
{
    long long acc, m, s, zp, lo, hi, right, round;
    while (scanf("%lld %lld %lld %lld %lld %lld %lld %lld",
                 &acc, &m, &s, &zp, &lo, &hi, &right, &round) == 8) {
        int32_t mult = (int32_t)m, shift = (int32_t)s, doubled[2] = { (int32_t)right, (int32_t)round };
        int32_t a = (int32_t)acc, z = (int32_t)zp, l = (int32_t)lo, h = (int32_t)hi;
        printf("%d %d\n", (int)tr_requantize_channel(a, &mult, &shift, NULL, 0, z, l, h),
               (int)tr_requantize_channel(a, &mult, NULL, doubled, 0, z, l, h));
    }
    return 0;
}
"""


def test_doubled_requantization_equals_tflm_form_where_the_generator_allows_it(tmp_path: Path) -> None:
    """tr_requantize_channel's doubled form (SMMULR-shaped, ~10 instructions) against the general
    tr_requantize for accumulators below 2**30 and right shifts 1..22, ties included."""
    from toolchain.codegen.ops.fully_connected import doubled_requant
    from toolchain.codegen.quant import quantize_multiplier

    exe = build_driver(DOUBLED_MAIN, tmp_path, "doubled")
    rng = np.random.default_rng(5)
    cases = []
    for i in range(6000):
        m, s = quantize_multiplier(float(np.exp(rng.uniform(np.log(3e-7), np.log(0.49)))))
        if i % 7 == 0:
            m = 1 << 30  # power-of-two scales: the multiplier TFLite gives exactly 2**30
        right = -s
        if i % 3 == 0:  # an exact tie of the second rounding, either sign
            high = (int(rng.integers(-(2 ** (29 - right)), 2 ** (29 - right))) << right) + (1 << (right - 1))
            acc = (high << 31) // m  # near a tie; the neighbours below cover the exact one
        else:
            acc = (
                int(rng.integers(-(2**30) + 1, 2**30))
                if rng.random() < 0.3
                else int(rng.integers(-(2**20), 2**20))
            )
        zp = int(rng.integers(-128, 128))
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
        for a in (acc - 1, acc, acc + 1):
            params = doubled_requant(np.array([a]), np.zeros(1), np.array([m]), np.array([s]), zp)
            if params is not None:
                cases.append((a, m, s, zp, lo, hi, int(params[0][0]), int(params[1][0])))
    assert len(cases) > 15000
    for case, line in zip(cases, run_driver(exe, cases), strict=True):
        general, doubled = line.split()
        assert general == doubled, case
