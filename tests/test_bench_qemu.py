"""The benchmark end to end in QEMU: a real trained model, converted, generated, built for
qemu_m4, run through the serial protocol, and checked against TFLite Micro on the host."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from tests.helpers.waiting import running, wait_until
from toolchain.errors import DeviceError

pytestmark = pytest.mark.qemu
BOARD = "qemu_m4"


@pytest.fixture(scope="module")
def built_model(tmp_path_factory: pytest.TempPathFactory, digits_mlp: Path, digits_npz: Path) -> Path:
    """digits MLP -> int8 .tflite -> C -> firmware for qemu_m4; returns the codegen folder."""
    from toolchain import codegen
    from toolchain.convert import convert_model
    from toolchain.data import load_dataset
    from toolchain.models import load_keras_model

    out = tmp_path_factory.mktemp("bench_qemu")
    dataset = load_dataset(digits_npz)
    (out / "model.tflite").write_bytes(convert_model(load_keras_model(digits_mlp), dataset.x_train))
    codegen.generate(out / "model.tflite", out / "gen")
    build_checked(out / "gen", BOARD)
    return out / "gen"


@pytest.fixture(scope="module")
def report(built_model: Path, digits_npz: Path) -> dict:
    from toolchain.bench.measure import run_benchmark

    return run_benchmark(built_model, BOARD, runs=12, dataset=digits_npz, per_op=True)


def test_every_sample_matches_tflite_micro(report: dict, built_model: Path, digits_npz: Path) -> None:
    from toolchain import oracle
    from toolchain.data import load_dataset

    dataset = load_dataset(digits_npz)
    assert report["samples"] == len(dataset.x_test) > 100
    assert report["matches"] == report["samples"] and report["mismatches"] == []
    # Byte-identical outputs give exactly the host reference's accuracy.
    host = oracle.run(built_model.parent / "model.tflite", dataset.x_test)[0]
    assert report["accuracy"] == round(float(np.mean(host.argmax(1) == dataset.y_test)), 4)
    assert report["accuracy"] > 0.8


def test_latency_is_instructions_and_plausible(report: dict, built_model: Path) -> None:
    latency = report["latency"]
    info = json.loads((built_model / "model_info.json").read_text())
    assert latency["unit"] == "instructions" and "microseconds" not in latency
    assert latency["runs"] == len(latency["counts"]) == 12
    assert 0 < latency["min"] <= latency["median"] <= latency["max"]
    # Under -icount the counts repeat to within one SysTick tick (40 instructions).
    assert latency["max"] - latency["min"] <= 40
    # A MAC costs a few instructions; anything outside 1..50 per MAC means a broken counter.
    assert info["macs"] <= latency["median"] <= 50 * info["macs"]


def test_per_op_accounts_for_the_whole_inference(report: dict, built_model: Path) -> None:
    info = json.loads((built_model / "model_info.json").read_text())
    rows = report["per_op"]
    assert [r["opcode"] for r in rows] == [op["opcode"] for op in info["ops"]]
    assert all(r["count"] > 0 for r in rows)
    total = sum(r["count"] for r in rows)
    # The op brackets leave out only the call overhead between ops.
    assert 0.8 * report["latency"]["median"] <= total <= report["latency"]["median"] + 40 * len(rows)
    biggest = max(rows, key=lambda r: r["macs"])
    assert biggest["count"] == max(r["count"] for r in rows)


def test_cycle_estimate_replays_the_measured_inference(report: dict) -> None:
    estimate, median = report["cycle_estimate"], report["latency"]["median"]
    # The traced run is the measured inference: the same instructions, counted another way.
    assert abs(estimate["traced_instructions"] - median) <= 0.02 * median
    # Loads and taken branches cost more than a cycle; nothing costs less.
    assert 1.0 < estimate["cycles_per_instruction"] < 3.0
    assert (
        estimate["estimated_cycles"] == round(median * estimate["cycles_per_instruction"])
        or abs(estimate["estimated_cycles"] - median * estimate["cycles_per_instruction"]) <= 0.001 * median
    )
    assert estimate["kernel_cpi"]  # the fully connected kernel ran and was traced
    assert all(row["estimated_cycles"] >= row["count"] for row in report["per_op"])


def test_ram_and_flash_come_from_the_elf_and_the_stack(report: dict) -> None:
    from toolchain.firmware import elf_sizes

    sizes = elf_sizes(report["elf"])
    assert report["flash_bytes"] == sizes["flash_bytes"]
    assert report["static_ram_bytes"] == sizes["static_ram_bytes"] == report["device"]["static_ram_bytes"]
    assert 0 < report["stack_high_water_bytes"] < report["device"]["stack_bytes"]
    assert report["ram_bytes"] == report["static_ram_bytes"] + report["stack_high_water_bytes"]
    assert (report["link"]["bad_frames"], report["link"]["resets"]) == (0, 0)  # a clean link


def test_cli_prints_table_writes_report_and_plot(
    built_model: Path, digits_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from toolchain.cli import main

    status = main(
        [
            "bench",
            str(built_model),
            "--board",
            BOARD,
            "--runs",
            "3",
            "--data",
            str(digits_npz),
            "--max-samples",
            "20",
            "--plot",
            str(tmp_path / "ops.png"),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "20/20" in out and "instructions" in out and "FULLY_CONNECTED" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["matches"] == saved["samples"] == 20
    assert (tmp_path / "ops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_firmware_for_another_model_is_refused(built_model: Path, tmp_path: Path) -> None:
    from toolchain.bench.measure import run_benchmark

    copy = tmp_path / "gen"
    shutil.copytree(built_model, copy, ignore=shutil.ignore_patterns(".platformio"))
    shutil.copy(built_model.parent / "model.tflite", tmp_path / "model.tflite")
    info = json.loads((copy / "model_info.json").read_text())
    info["model_hash32"] ^= 0x1
    (copy / "model_info.json").write_text(json.dumps(info))
    with pytest.raises(DeviceError, match="the firmware runs model .* but the host model is"):
        run_benchmark(copy, BOARD, runs=1)


def test_ctrl_c_stops_qemu_and_closes_the_port(built_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toolchain.firmware.emulators
    from toolchain.bench import measure
    from toolchain.bench.client import BenchClient

    sessions, clients = [], []

    class RecordingSession(toolchain.firmware.emulators.QemuSession):
        def __enter__(self):
            sessions.append(self)
            return super().__enter__()

    def interrupted(client: BenchClient, *args, **kwargs):
        clients.append(client)
        client.hello()
        raise KeyboardInterrupt

    monkeypatch.setattr(toolchain.firmware.emulators, "QemuSession", RecordingSession)
    monkeypatch.setattr(measure, "measure_session", interrupted)
    with pytest.raises(KeyboardInterrupt):
        measure.run_benchmark(built_model, BOARD, runs=1)
    assert sessions and sessions[0].process.poll() is not None
    assert clients and not clients[0].link.is_open


def test_flaky_link_to_qemu_still_gives_exact_outputs(built_model: Path, digits_npz: Path) -> None:
    from tests.helpers.faulty_link import FaultyLink
    from toolchain import oracle
    from toolchain.bench.client import BenchClient, open_link
    from toolchain.bench.measure import check_samples, quantized_samples
    from toolchain.data import load_dataset
    from toolchain.firmware import elf_path, read_model_info
    from toolchain.firmware.emulators import QemuSession

    info = read_model_info(built_model)
    x = load_dataset(digits_npz).x_test[:40]
    samples = quantized_samples(x, info["inputs"][0])
    reference = oracle.run(built_model.parent / "model.tflite", x)
    elf = elf_path(built_model / f"firmware_{BOARD}", BOARD)
    with QemuSession(BOARD, elf) as qemu:
        link = FaultyLink(open_link(qemu.url), seed=5, drop_rate=0.03, flip_rate=0.03, garbage_rate=0.03)
        with BenchClient(
            link,
            name=qemu.url,
            timeout=0.2,
            retries=10,
            invoke_timeout=0.05,
            expected_hash=info["model_hash32"],
        ) as client:
            checked = check_samples(client, samples, reference, [], None)
    assert checked["matches"] == checked["samples"] == 40
    assert link.faults_applied >= 5 and client.retries_used >= 1


def test_the_benchmark_apps_own_ram_is_reported(report: dict) -> None:
    # Its buffers: two frames and two packets (~1.1 KB), 64 run counts, the saved inputs (64 B).
    assert 1200 < report["bench_app_ram_bytes"] < report["static_ram_bytes"]


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        ("bench", "SIGTERM"),
        ("bench", "SIGHUP"),
        ("bench", "SIGKILL"),
        ("flash", "SIGTERM"),
        ("flash", "SIGKILL"),
    ],
)
def test_signal_to_the_tinyrank_command_leaves_no_qemu_or_pio(built_model: Path, command: str, sig: str):
    """The real `tinyrank bench` / `tinyrank flash`, signalled while QEMU (and `pio run`) run."""
    import signal
    import subprocess
    import sys

    from toolchain.processes import stop_group

    marker = str(built_model / f"firmware_{BOARD}")
    children = (f"qemu-system-arm.*{marker}", f"platformio.*{marker}")
    argv = [sys.executable, "-m", "toolchain.cli", command, str(built_model), "--board", BOARD]
    if command == "bench":
        argv += ["--runs", "65535", "--timeout", "30"]
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        assert wait_until(lambda: running(children[0]), 90), "QEMU never started"
        process.send_signal(getattr(signal, sig))
        status = process.wait(timeout=30)
        assert status != 0
        for pattern in children:
            assert wait_until(lambda p=pattern: not running(p), 10), f"{pattern} left running after {sig}"
        if sig != "SIGKILL":
            assert "Traceback" not in process.stderr.read().decode()
    finally:
        stop_group(process, 1.0)
        subprocess.run(["pkill", "-KILL", "-f", f"qemu-system-arm.*{marker}"], timeout=10)
