"""The walking skeleton: a Dense model through every real stage, ending in QEMU.

compress (SVD) -> convert (int8) -> codegen (C) -> build (PlatformIO, offline) -> bench
(qemu-system-arm mps2-an386 over the serial link) -> outputs compared with TFLite Micro.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers.budget import assert_prediction_close, build_checked
from toolchain.cli import main

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, digits_mlp: Path, digits_npz: Path
) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("deploy")
    before = hashlib.sha256(digits_mlp.read_bytes()).hexdigest()
    code = main(
        [
            "deploy",
            str(digits_mlp),
            "--data",
            str(digits_npz),
            "--board",
            "qemu_m4",
            "--out",
            str(out),
            "--target-params",
            "0.5",
            "--finetune-epochs",
            "3",
            "--runs",
            "3",
            "--report",
            str(out / "cli.json"),
        ]
    )
    assert code == 0
    return out, json.loads((out / "report.json").read_text()), before


def test_every_stage_left_its_file(deployed: tuple[Path, dict, str]) -> None:
    out, _, _ = deployed
    for name in (
        "compressed.keras",
        "model.tflite",
        "gen/model.c",
        "gen/model_weights.c",
        "gen/model_info.json",
        "gen/firmware_qemu_m4/platformio.ini",
        "report.json",
        "cli.json",
    ):
        assert (out / name).is_file(), name


def test_input_model_untouched(deployed: tuple[Path, dict, str], digits_mlp: Path) -> None:
    assert hashlib.sha256(digits_mlp.read_bytes()).hexdigest() == deployed[2]


def test_compression_shrank_the_dense_layers(deployed: tuple[Path, dict, str]) -> None:
    report = deployed[1]["compress"]
    assert report["params"]["after"] < 0.75 * report["params"]["before"]
    assert any(layer["status"] == "factored" for layer in report["layers"])


def test_device_outputs_match_tflite_micro(deployed: tuple[Path, dict, str]) -> None:
    bench = deployed[1]["bench"]
    assert bench["samples"] == 360
    assert bench["matches"] == bench["samples"]


def test_device_accuracy_is_the_int8_accuracy(deployed: tuple[Path, dict, str]) -> None:
    report = deployed[1]
    assert report["bench"]["accuracy"] > 0.85
    assert abs(report["bench"]["accuracy"] - report["convert"]["int8"]["accuracy"]) <= 0.01


def test_costs_are_measured(deployed: tuple[Path, dict, str]) -> None:
    report = deployed[1]
    latency = report["bench"]["latency"]
    assert latency["unit"] == "instructions" and latency["min"] > 1000
    assert latency["max"] - latency["min"] <= 0.01 * latency["min"]  # icount makes QEMU deterministic
    assert 0 < report["build"]["flash_bytes"] < 1024 * 1024
    assert_prediction_close(report["build"])  # deploy builds through the one budget
    assert report["bench"]["ram_bytes"] > report["codegen"]["arena_bytes"]


def test_benchmark_firmware_accepts_another_prefix(
    deployed: tuple[Path, dict, str], digits_npz: Path, tmp_path: Path
) -> None:
    """`--prefix` renames the model's C API; the one benchmark app must still drive it."""
    from toolchain.bench.measure import run_benchmark
    from toolchain.codegen import generate

    out = deployed[0]
    info = generate(out / "model.tflite", tmp_path / "gen", prefix="digits")
    assert "int digits_invoke(void);" in (tmp_path / "gen" / "model.h").read_text()
    build_checked(tmp_path / "gen", "qemu_m4")
    report = run_benchmark(tmp_path / "gen", "qemu_m4", runs=2, dataset=digits_npz, max_samples=20)
    assert report["matches"] == report["samples"] == 20
    assert report["device"]["model_hash"] == f"{info['model_hash32']:08x}"
