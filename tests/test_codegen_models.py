"""Whole MLPerf Tiny architectures (random weights, BatchNorm settled) through codegen:
bit-exact with TFLite Micro on the host, on an emulated Cortex-M4 (DSP path) and Cortex-M3
(generic path) through the real firmware (`tinyrank build` + the benchmark harness),
warning-free for every Cortex-M, and arena never above TFLite Micro's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from toolchain import oracle
from toolchain.codegen import generate
from toolchain.codegen.verify import verify
from toolchain.firmware import ARM_PREFIX

MODELS = {
    "ds_cnn": {},
    "resnet8": {},
    "mobilenet_v1_025": {"size": 32},
    "fc_autoencoder": {},
    "fc_autoencoder_factored": {"rank": 16},
    "conv_block": {},
    "conv_block_tucker": {"rank": 8},
}


@pytest.fixture(scope="module")
def tflites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from benchmarks.mlperf_tiny import build_tflite

    folder = tmp_path_factory.mktemp("mlperf")
    paths = {}
    for name, options in MODELS.items():
        builder = "conv_block" if name.startswith("conv_block") else name
        data, _ = build_tflite(builder, samples=16, **options)
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


def _samples(path: Path, n: int, seed: int = 0) -> np.ndarray:
    from toolchain.codegen.graph import parse

    shape = parse(path).inputs[0].shape
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape[1:]), dtype=np.int8)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_is_bit_exact_on_the_host(tflites: dict[str, Path], name: str) -> None:
    report = verify(tflites[name], _samples(tflites[name], 6))
    assert report["bit_exact"], report["first_mismatch"]
    assert report["arena_bytes"] <= report["tflm_arena_bytes"]


def test_ds_cnn_arena_is_at_least_30_percent_below_tflm(tflites: dict[str, Path], tmp_path: Path) -> None:
    info = generate(tflites["ds_cnn"], tmp_path / "gen")
    assert info["arena_bytes"] <= 0.7 * info["tflm_arena_bytes"]


@pytest.mark.parametrize(
    "original, factored", [("fc_autoencoder", "fc_autoencoder_factored"), ("conv_block", "conv_block_tucker")]
)
def test_factored_model_needs_no_more_arena_than_the_original(
    tflites: dict[str, Path], tmp_path: Path, original: str, factored: str
) -> None:
    a = generate(tflites[original], tmp_path / "a", tflm_arena=False)
    b = generate(tflites[factored], tmp_path / "b", tflm_arena=False)
    assert b["arena_bytes"] <= a["arena_bytes"]
    assert b["macs"] < a["macs"]


def test_fused_factored_pair_is_bit_exact(tflites: dict[str, Path]) -> None:
    fused = verify(
        tflites["fc_autoencoder_factored"],
        _samples(tflites["fc_autoencoder_factored"], 4),
        fuse=True,
        tflm_arena=False,
    )
    assert fused["bit_exact"] and any(k.startswith("tr_fully_connected_factored") for k in fused["kernels"])


@pytest.mark.parametrize(
    "cpu",
    [
        "cortex-m0plus",
        "cortex-m3",
        "cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard",
        "cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard",
    ],
)
def test_every_kernel_and_a_model_cross_compile_warning_free(
    tflites: dict[str, Path], tmp_path: Path, cpu: str
) -> None:
    from toolchain.codegen.render import KERNELS

    gen = tmp_path / "gen"
    generate(tflites["ds_cnn"], gen, tflm_arena=False)
    sources = [gen / "model.c", gen / "model_weights.c", *sorted(KERNELS.glob("*.c"))]
    subprocess.run(
        [
            f"{ARM_PREFIX}gcc",
            "-std=c99",
            "-O2",
            "-mthumb",
            *f"-mcpu={cpu}".split(),
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{gen}",
            "-c",
            *map(str, sources),
        ],
        check=True,
        timeout=300,
        capture_output=True,
        cwd=tmp_path,
    )


def _run_in_firmware(gen: Path, board: str, x: np.ndarray, expected: np.ndarray) -> dict:
    """`tinyrank build` for `board`, then every sample through the benchmark harness in QEMU."""
    from toolchain.bench.measure import run_samples

    build_checked(gen, board)
    return run_samples(gen, board, x, reference=[expected], per_op=True)


@pytest.mark.qemu
@pytest.mark.parametrize("name", ["ds_cnn", "mobilenet_v1_025", "fc_autoencoder_factored"])
def test_dsp_and_generic_paths_are_bit_exact_in_qemu(
    tflites: dict[str, Path], tmp_path: Path, name: str, pio_build_cache: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    x = _samples(tflites[name], 2, seed=1)
    expected = oracle.run(tflites[name], x)[0]
    gen = tmp_path / "gen"
    info = generate(tflites[name], gen, tflm_arena=False, fuse=True)
    with ThreadPoolExecutor(
        max_workers=2
    ) as pool:  # builds and QEMU runs are subprocesses: both boards at once
        runs = {
            board: pool.submit(_run_in_firmware, gen, board, x, expected) for board in ("qemu_m4", "qemu_m3")
        }
    for board, future in runs.items():  # qemu_m4: DSP path; qemu_m3: generic path
        run = future.result()
        np.testing.assert_array_equal(run["outputs"][0], expected, err_msg=f"{name} on {board}")
        assert run["matches"] == len(x) and run["mismatches"] == []
        assert run["unit"] == "instructions"
        assert all(n > info["macs"] for n in run["counts"])  # at least one instruction per MAC
        for total, ops in zip(run["counts"], run["op_counts"], strict=True):
            # the ops account for the whole inference: only the hooks' calls and model.c's glue are left
            assert len(ops) == len(info["ops"]) and 0 <= total - sum(ops) <= 20 * len(ops)


def test_run_samples_refuses_bad_samples_before_starting_qemu(tmp_path: Path) -> None:
    import json

    from toolchain.bench.measure import run_samples
    from toolchain.errors import DataError, TinyrankError

    info = {
        "model_hash32": 1,
        "arena_bytes": 16,
        "weights_bytes": 0,
        "ops": [],
        "inputs": [{"name": "x", "shape": [1, 16], "size": 16, "scale": 0.1, "zero_point": 0}],
        "outputs": [{"name": "y", "shape": [1, 4], "size": 4, "scale": 0.1, "zero_point": 0}],
    }
    (tmp_path / "model_info.json").write_text(json.dumps(info))
    x = np.zeros((3, 16), np.int8)
    with pytest.raises(DataError, match=r"input 0 'x' are float32; run_samples takes int8"):
        run_samples(tmp_path, "qemu_m4", x.astype(np.float32))
    with pytest.raises(
        DataError, match=r"samples of shape \(15,\) do not fit input 0 'x' of shape \[1, 16\]"
    ):
        run_samples(tmp_path, "qemu_m4", x[:, :15])
    with pytest.raises(DataError, match=r"reference has \[2\] samples per output; the samples are 3"):
        run_samples(tmp_path, "qemu_m4", x, reference=[np.zeros((2, 4), np.int8)])
    with pytest.raises(TinyrankError, match="runs=0: must be at least 1"):
        run_samples(tmp_path, "qemu_m4", x, runs=0)
    with pytest.raises(TinyrankError, match=r"no firmware for qemu_m3; run `tinyrank build"):
        run_samples(tmp_path, "qemu_m3", x)
