"""Measurement and reporting without QEMU: the host build of the benchmark app (see
test_bench_device.py) stands in for a board that counts cycles at 1 MHz."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.host_device import HostDevice, build_host_device
from toolchain.bench import measure
from toolchain.bench.client import BenchClient
from toolchain.bench.report import plot_per_op, print_report, summary_rows
from toolchain.errors import DataError, DeviceError, TinyrankError
from toolchain.firmware.boards import load_board

FIXTURE = Path(__file__).parent / "fixtures" / "bench_host"
# model_info.json of the fixture model (a 2-op "model", 16 int8 in, 4 int8 out).
INFO = {
    "model_hash32": 0x12345678,
    "inputs": [{"name": "x", "shape": [1, 16], "dtype": "int8", "scale": 0.5, "zero_point": 0, "size": 16}],
    "outputs": [{"name": "y", "shape": [1, 4], "dtype": "int8", "scale": 1.0, "zero_point": 0, "size": 4}],
    "ops": [
        {"index": 0, "opcode": "ADD", "kernel": "sum4", "macs": 16},
        {"index": 1, "opcode": "MUL", "kernel": "halve", "macs": 4},
    ],
}


def reference(q: np.ndarray) -> np.ndarray:
    return np.clip(q.astype(np.int32).reshape(len(q), 4, 4).sum(2) >> 1, -128, 127).astype(np.int8)


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory):
    exe = build_host_device(
        FIXTURE, FIXTURE / "port_host.c", tmp_path_factory.mktemp("bench_measure") / "dev"
    )
    with HostDevice(exe) as dev:
        yield dev


def measure_host(device: HostDevice, samples: np.ndarray, ref: np.ndarray, labels: np.ndarray | None) -> dict:
    board = load_board("nano33")  # a cycle-counting board, like the host build
    with BenchClient.open(device.url, timeout=2.0, expected_hash=INFO["model_hash32"]) as client:
        return measure.measure_session(
            client,
            INFO,
            board,
            samples=samples,
            labels=labels,
            reference=[ref],
            runs=7,
            warmup=1,
            per_op=True,
        )


def test_session_measures_latency_per_op_and_correctness(device: HostDevice) -> None:
    rng = np.random.default_rng(0)
    samples = rng.integers(-128, 128, (30, 16), dtype=np.int8)
    ref = reference(samples)
    labels = ref.argmax(1)
    labels[:6] = (labels[:6] + 1) % 4  # six wrong labels: accuracy 24/30
    report = measure_host(device, samples, ref, labels)
    assert report["latency"]["counts"] == [300] * 7
    assert report["latency"]["microseconds"] == {"min": 300.0, "median": 300.0, "max": 300.0}  # 1 MHz clock
    assert [(r["opcode"], r["count"], r["share"]) for r in report["per_op"]] == [
        ("ADD", 100, 0.3333),
        ("MUL", 200, 0.6667),
    ]
    assert (report["samples"], report["matches"], report["mismatches"]) == (30, 30, [])
    assert report["accuracy"] == 0.8
    assert report["stack_high_water_bytes"] == 200


def test_mismatches_are_counted_and_located(device: HostDevice) -> None:
    samples = np.zeros((5, 16), np.int8)
    ref = reference(samples)
    ref[[1, 3], 2] = 5  # the "reference" disagrees with the device on samples 1 and 3
    report = measure_host(device, samples, ref, None)
    assert report["matches"] == 3
    assert report["mismatches"] == [{"index": 1, "max_abs_diff": 5}, {"index": 3, "max_abs_diff": 5}]
    assert report["accuracy"] is None


def test_firmware_with_other_tensor_sizes_is_refused(device: HostDevice) -> None:
    info = json.loads(json.dumps(INFO))
    info["outputs"][0]["size"] = 10
    with BenchClient.open(device.url, timeout=2.0) as client:
        with pytest.raises(DeviceError, match=r"differ from model_info.json"):
            measure.measure_session(
                client,
                info,
                load_board("nano33"),
                samples=None,
                labels=None,
                reference=None,
                runs=1,
                warmup=0,
                per_op=False,
            )


def test_a_counter_unit_that_does_not_fit_the_board_is_refused(device: HostDevice) -> None:
    with BenchClient.open(device.url, timeout=2.0) as client:
        with pytest.raises(
            DeviceError, match="firmware counts cycles but board 'qemu_m4' should count instructions"
        ):
            measure.measure_session(
                client,
                INFO,
                load_board("qemu_m4"),
                samples=None,
                labels=None,
                reference=None,
                runs=1,
                warmup=0,
                per_op=False,
            )


def test_report_table_and_plot(device: HostDevice, tmp_path: Path) -> None:
    from rich.console import Console

    report = measure_host(device, np.zeros((2, 16), np.int8), reference(np.zeros((2, 16), np.int8)), None)
    report.update(
        board="nano33",
        board_name="Arduino Nano 33 BLE",
        flash_bytes=12345,
        static_ram_bytes=4096,
        ram_bytes=4296,
    )
    rows = dict(summary_rows(report))
    assert rows["latency per inference"].startswith("300 cycles (min 300, max 300, 7 runs) = 300.0 µs")
    assert rows["RAM"] == "4,296 B = static 4,096 + stack high-water 200"
    assert rows["outputs match the host reference"] == "2/2"
    console = Console(record=True, width=140)
    print_report(report, console)
    assert "MUL" in console.export_text()
    png = plot_per_op(report, tmp_path / "ops.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TinyrankError, match="--per-op"):
        plot_per_op({**report, "per_op": None}, tmp_path / "none.png")


def test_latency_stats_median_and_units() -> None:
    stats = measure.latency_stats([50, 10, 30, 20], "instructions", 25_000_000)
    assert (stats["min"], stats["median"], stats["max"], stats["runs"]) == (10, 25, 50, 4)
    assert "microseconds" not in stats  # instructions are never turned into time
    assert measure.latency_stats([64], "cycles", 64_000_000)["microseconds"]["median"] == 1.0


def test_samples_of_the_wrong_size_are_a_data_error() -> None:
    with pytest.raises(DataError, match=r"do not fit input 0 'x' of shape \[1, 16\] \(16 values\)"):
        measure.quantized_samples(np.zeros((3, 15)), INFO["inputs"][0])
    q = measure.quantized_samples(np.array([[1.0] * 16, [-100.0] * 16]), INFO["inputs"][0])
    assert q.dtype == np.int8 and q.tolist() == [[2] * 16, [-128] * 16]


def test_run_benchmark_refuses_missing_pieces(tmp_path: Path) -> None:
    with pytest.raises(TinyrankError, match="model_info.json: no such file"):
        measure.run_benchmark(tmp_path, "qemu_m4")
    (tmp_path / "model_info.json").write_text(json.dumps({**INFO, "arena_bytes": 16, "weights_bytes": 0}))
    with pytest.raises(TinyrankError, match=r"no firmware for qemu_m4; run `tinyrank build"):
        measure.run_benchmark(tmp_path, "qemu_m4")
    with pytest.raises(TinyrankError, match="real board: give its serial port"):
        measure.run_benchmark(tmp_path, "nano33")
    with pytest.raises(TinyrankError, match="--runs 0"):
        measure.run_benchmark(tmp_path, "qemu_m4", runs=0)


def test_real_board_on_a_missing_port_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "model_info.json").write_text(json.dumps({**INFO, "arena_bytes": 16, "weights_bytes": 0}))
    with pytest.raises(DeviceError, match="port /dev/ttyACM97: no such device"):
        measure.run_benchmark(tmp_path, "nano33", port="/dev/ttyACM97")


def test_cli_fails_on_mismatch_but_keeps_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from toolchain.cli import main

    fake = {
        "board": "qemu_m4",
        "board_name": "QEMU",
        "latency": measure.latency_stats([5], "instructions", 1),
        "static_ram_bytes": 1,
        "stack_high_water_bytes": 2,
        "ram_bytes": 3,
        "flash_bytes": 4,
        "samples": 3,
        "matches": 2,
        "mismatches": [{"index": 1, "max_abs_diff": 1}],
        "accuracy": None,
        "link": {},
    }
    monkeypatch.setattr(measure, "run_benchmark", lambda *a, **k: fake)
    status = main(["bench", str(tmp_path), "--board", "qemu_m4", "--report", str(tmp_path / "r.json")])
    assert status == 2
    assert "1 of 3 outputs differ from the host reference (first: sample 1)" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["matches"] == 2
