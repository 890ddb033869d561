"""One benchmark: latency, RAM, flash, correctness against the host reference, accuracy.

`run_benchmark` starts QEMU itself for emulated boards (and always stops it), or talks to
a real board on `port`. Latency is the board's counter over N runs of one sample after a
warm-up: CPU cycles (and microseconds) on DWT boards, instructions under QEMU's
`-icount`, never presented as time. RAM is the ELF's static RAM plus the stack
high-water mark the firmware measures. Correctness sends every evaluation sample and
compares the outputs byte for byte with TFLite Micro on the host.

`run_samples` is the same path for callers that hold int8 tensors already (codegen's
tests and benchmark run the DSP kernels on qemu_m4 and the generic ones on qemu_m3): it
sends the samples as they are and returns what the device computed and counted.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.bench.client import BenchClient, DeviceInfo
from toolchain.data import class_labels
from toolchain.errors import DataError, DeviceError, TinyrankError

MISMATCHES_KEPT = 10  # mismatching samples listed in the report


def _find_tflite(model_dir: Path, info: dict) -> Path:
    """The .tflite the C came from: where codegen read it, else beside the generated folder."""
    name = info.get("tflite", "model.tflite")
    candidates = [Path(info["tflite_path"])] if info.get("tflite_path") else []
    for candidate in (*candidates, model_dir / name, model_dir.parent / name):
        if candidate.is_file() and _sha256(candidate) == info.get("model_sha256", _sha256(candidate)):
            return candidate
    raise TinyrankError(
        f"{model_dir}: cannot find {name} (looked in {model_dir} and {model_dir.parent}); "
        "the host reference needs the .tflite the C was generated from"
    )


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def quantized_samples(x: np.ndarray, edge: dict, index: int = 0) -> np.ndarray:
    """Samples as the int8 bytes the device takes: (N, input size)."""
    from toolchain.oracle import quantize_input

    x = np.asarray(x)
    size = _check_fits(x, edge, index)
    q = quantize_input(x, float(edge["scale"]), int(edge["zero_point"]))
    return q.reshape(len(q), size)


def _check_fits(samples: np.ndarray, edge: dict, index: int) -> int:
    """The input's size in values, once each sample is known to hold exactly that many."""
    size = int(edge["size"])
    if samples.ndim < 2 or int(np.prod(samples.shape[1:])) != size:
        raise DataError(
            f"samples of shape {samples.shape[1:]} do not fit input {index} '{edge.get('name', '?')}' "
            f"of shape {edge.get('shape')} ({size} values)"
        )
    return size


def latency_stats(counts: list[int], unit: str, clock_hz: int) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "unit": unit,
        "runs": len(counts),
        "min": min(counts),
        "median": int(statistics.median(counts)),
        "max": max(counts),
        "mean": round(statistics.fmean(counts), 1),
        "counts": counts,
    }
    if unit == "cycles" and clock_hz:
        stats["microseconds"] = {k: round(stats[k] * 1e6 / clock_hz, 2) for k in ("min", "median", "max")}
    return stats


def _firmware(model_dir: Path, board: Any) -> tuple[Path | None, dict | None]:
    """The ELF `tinyrank build` made for this board, and its sizes; (None, None) if there is none."""
    from toolchain.firmware import elf_path, elf_sizes

    elf = elf_path(model_dir / f"firmware_{board.id}", board)
    if not elf.is_file():
        return None, None
    return elf, elf_sizes(elf)


def _require_firmware(model_dir: Path, board: Any, port: str | None) -> tuple[Path | None, dict | None]:
    """`_firmware`, refusing what cannot be measured: a QEMU board without its ELF, a real board without a port."""
    elf, sizes = _firmware(model_dir, board)
    if board.is_emulated and elf is None:
        raise TinyrankError(
            f"{model_dir}: no firmware for {board.id}; run `tinyrank build {model_dir} --board {board.id}`"
        )
    if not board.is_emulated and port is None:
        raise TinyrankError(
            f"board '{board.id}' is a real board: give its serial port, e.g. --port /dev/ttyACM0"
        )
    return elf, sizes


@contextmanager
def device_url(board: Any, elf: Path | None, port: str | None) -> Iterator[str]:
    """The pyserial URL of the device: `port` if given, else QEMU running `elf` (always stopped on exit)."""
    if port is not None:
        yield port
        return
    from toolchain.firmware.emulators import QemuSession

    with QemuSession(board, elf) as qemu:
        yield qemu.url


def _open_client(url: str, board: Any, info: dict, timeout_s: float) -> BenchClient:
    return BenchClient.open(
        url, baudrate=board.baud, timeout=timeout_s, expected_hash=int(info["model_hash32"])
    )


def bench_app_ram_bytes(elf: Path) -> int | None:
    """RAM the benchmark app itself takes (its statics are all named bench_*), so a reader can
    subtract it to get what the model needs in a deployment without the harness."""
    import subprocess

    from toolchain.firmware import ARM_PREFIX

    try:
        result = subprocess.run(
            [f"{ARM_PREFIX}nm", "-S", "--defined-only", str(elf)], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    total = 0
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdD" and parts[3].startswith("bench_"):
            total += int(parts[1], 16)
    return total


def _check_device(device: DeviceInfo, info: dict, board: Any) -> None:
    sizes = tuple(int(e["size"]) for e in info["inputs"]), tuple(int(e["size"]) for e in info["outputs"])
    if (device.input_sizes, device.output_sizes) != sizes:
        raise DeviceError(
            f"firmware tensors in {device.input_sizes} out {device.output_sizes} differ from "
            f"model_info.json in {sizes[0]} out {sizes[1]}; rebuild the firmware"
        )
    if device.counter_unit != board.counter_unit:
        raise DeviceError(
            f"firmware counts {device.counter_unit} but board '{board.id}' should count "
            f"{board.counter_unit}; was it built for another board?"
        )


def measure_session(
    client: BenchClient,
    info: dict,
    board: Any,
    *,
    samples: np.ndarray | None,
    labels: np.ndarray | None,
    reference: list[np.ndarray] | None,
    runs: int,
    warmup: int,
    per_op: bool,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Everything measured over one open link (the part shared by boards and QEMU)."""
    device = client.hello()
    _check_device(device, info, board)
    if samples is not None and len(samples):
        timing_input = samples[0].tobytes()
    else:  # no data: time the model on an all-zero-point input
        timing_input = np.full(device.input_sizes[0], info["inputs"][0]["zero_point"], np.int8).tobytes()
    extra_inputs = [bytes(size) for size in device.input_sizes[1:]]

    timed = client.run([timing_input, *extra_inputs], runs=runs, warmup=warmup)
    if timed.status != 0:
        raise DeviceError(f"{client.name}: tr_invoke returned {timed.status} on the device")
    report: dict[str, Any] = {
        "latency": latency_stats(timed.counts, device.counter_unit, device.clock_hz),
        "stack_high_water_bytes": timed.stack_used_bytes,
    }
    if per_op:
        profiled = client.run([timing_input, *extra_inputs], runs=max(1, min(runs, 5)), per_op=True)
        report["per_op"] = per_op_rows(profiled.op_counts, info)
        report["cost_model"] = add_predictions(report["per_op"], info, board)
        report["stack_high_water_bytes"] = max(report["stack_high_water_bytes"], profiled.stack_used_bytes)

    checked = check_samples(client, samples, reference, extra_inputs, progress)
    report["stack_high_water_bytes"] = max(
        report["stack_high_water_bytes"], checked.pop("stack_high_water_bytes")
    )
    predictions = checked.pop("predictions")
    report.update(checked, accuracy=None)
    if labels is not None and predictions and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        report["accuracy"] = round(float(np.mean(np.asarray(predictions) == labels[: len(predictions)])), 4)
    report["device"] = {
        "board_id": device.board_id,
        "protocol_version": device.protocol_version,
        "model_hash": f"{device.model_hash:08x}",
        "clock_hz": device.clock_hz,
        "static_ram_bytes": device.static_ram_bytes,
        "stack_bytes": device.stack_bytes,
        "arena_bytes": device.arena_bytes,
    }
    report["link"] = {
        "url": client.name,
        "retries": client.retries_used,
        "bad_frames": client.bad_frames,
        "resets": client.resets_seen,
    }
    return report


def check_samples(
    client: BenchClient,
    samples: np.ndarray | None,
    reference: list[np.ndarray] | None,
    extra_inputs: list[bytes],
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    """Run every sample on the device and compare all its outputs byte for byte with the reference."""
    total = 0 if samples is None else len(samples)
    matches, mismatches, predictions, stack = 0, [], [], 0
    for i in range(total):
        result = client.run([samples[i].tobytes(), *extra_inputs], runs=1, timed=False)
        got = [np.frombuffer(o, np.int8) for o in result.outputs]
        diff = _max_abs_diff(got, [r[i] for r in reference])
        if diff == 0:
            matches += 1
        elif len(mismatches) < MISMATCHES_KEPT:
            mismatches.append({"index": i, "max_abs_diff": diff})
        predictions.append(int(np.argmax(got[0])))
        stack = max(stack, result.stack_used_bytes)
        if progress is not None:
            progress(i + 1, total)
    return {
        "samples": total,
        "matches": matches,
        "mismatches": mismatches,
        "predictions": predictions,
        "stack_high_water_bytes": stack,
    }


def _max_abs_diff(got: list[np.ndarray], expected: list[np.ndarray]) -> int:
    """Largest difference between the device's outputs and the reference's (0: bit-exact)."""
    return max(
        int(np.max(np.abs(g.astype(np.int32) - e.reshape(-1).astype(np.int32)), initial=0))
        for g, e in zip(got, expected, strict=True)
    )


def per_op_rows(op_counts: list[int], info: dict) -> list[dict[str, Any]]:
    """One row per op of model_info.json with its count and share of the total."""
    ops = info.get("ops", [])
    total = sum(op_counts) or 1
    rows = []
    for i, count in enumerate(op_counts):
        op = ops[i] if i < len(ops) else {}
        rows.append(
            {
                "index": i,
                "opcode": op.get("opcode", "?"),
                "kernel": op.get("kernel"),
                "macs": op.get("macs", 0),
                "count": count,
                "share": round(count / total, 4),
            }
        )
    return rows


def add_predictions(rows: list[dict[str, Any]], info: dict, board: Any) -> dict[str, Any] | None:
    """Put the cost model's prediction beside each op's measured count; returns the model's
    totals (None when this board's core has no cost model or the C predates op shapes)."""
    from toolchain.firmware.costmodel import load_cost_model

    try:
        model = load_cost_model(board)
        predicted = model.predict_ops(info)
    except TinyrankError:
        return None
    for row, value in zip(rows, predicted, strict=False):
        row["predicted"] = int(round(value))
        row["prediction_error"] = round((value - row["count"]) / row["count"], 4) if row["count"] else None
    measured = sum(row["count"] for row in rows)
    total = int(round(sum(predicted)))
    return {
        "core": model.core,
        "borrowed_from": model.borrowed_from,
        "predicted": total,
        "measured": measured,
        "error": round((total - measured) / measured, 4) if measured else None,
    }


def run_benchmark(
    model_dir: str | os.PathLike,
    board: Any,
    *,
    port: str | None = None,
    runs: int = 20,
    dataset: Any = None,
    per_op: bool = False,
    warmup: int = 2,
    max_samples: int | None = None,
    timeout_s: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    estimate_cycles: bool = True,
) -> dict[str, Any]:
    """Benchmark the firmware `tinyrank build` made from `model_dir` for `board`; returns the report.

    `dataset` is a `toolchain.data.Dataset` or the path of an `.npz`; its `x_test` (else
    `x_train`) samples are checked against TFLite Micro, and `y_test` gives the accuracy.
    On QEMU boards, `estimate_cycles` adds estimated Cortex-M4 cycles (`toolchain.bench.cycles`).
    """
    from toolchain.data import load_dataset
    from toolchain.firmware import read_model_info
    from toolchain.firmware.boards import load_board

    started = time.monotonic()
    board = load_board(board)
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    if runs < 1:
        raise TinyrankError(f"--runs {runs}: must be at least 1")
    if dataset is not None and not hasattr(dataset, "eval_x"):
        dataset = load_dataset(dataset)
    elf, sizes = _require_firmware(model_dir, board, port)

    samples = labels = reference = None
    if dataset is not None:
        from toolchain import oracle

        x = dataset.eval_x if max_samples is None else dataset.eval_x[:max_samples]
        samples = quantized_samples(x, info["inputs"][0])
        labels = class_labels(dataset.eval_y)
        reference = oracle.run(_find_tflite(model_dir, info), samples.reshape((len(samples), *x.shape[1:])))

    with device_url(board, elf, port) as url, _open_client(url, board, info, timeout_s) as client:
        report = measure_session(
            client,
            info,
            board,
            samples=samples,
            labels=labels,
            reference=reference,
            runs=runs,
            warmup=warmup,
            per_op=per_op,
            progress=progress,
        )

    if estimate_cycles and board.is_emulated and elf is not None:
        add_cycle_estimate(report, board, elf, info, samples)
    static_ram = sizes["static_ram_bytes"] if sizes else report["device"]["static_ram_bytes"]
    report.update(
        {
            "stage": "bench",
            "board": board.id,
            "board_name": board.name,
            "emulated": board.is_emulated,
            "model_dir": str(model_dir),
            "elf": str(elf) if elf else None,
            "flash_bytes": sizes["flash_bytes"] if sizes else None,
            "static_ram_bytes": static_ram,
            "bench_app_ram_bytes": bench_app_ram_bytes(elf) if elf else None,
            "heap_bytes": 0,  # neither the app nor the generated kernels allocate
            "ram_bytes": static_ram + report["stack_high_water_bytes"],
            "seconds": round(time.monotonic() - started, 2),
        }
    )
    return report


def add_cycle_estimate(
    report: dict[str, Any], board: Any, elf: Path, info: dict, samples: np.ndarray | None
) -> None:
    """Trace one inference in QEMU and add estimated cycles to the report and to its per-op rows."""
    from toolchain.bench import cycles

    if samples is not None and len(samples):
        first = samples[0].tobytes()
    else:
        first = np.full(int(info["inputs"][0]["size"]), info["inputs"][0]["zero_point"], np.int8).tobytes()
    inputs = [first] + [bytes(int(edge["size"])) for edge in info["inputs"][1:]]
    functions = cycles.model_functions(elf)
    estimate = cycles.trace_one_inference(board, elf, inputs)
    section = cycles.summary(estimate, report["latency"]["median"], functions)
    report["cycle_estimate"] = section
    kernel_of = {name: stem for stem, names in functions.items() for name in names}
    for row in report.get("per_op", []):
        cpi = section["kernel_cpi"].get(kernel_of.get(str(row.get("kernel")), ""), estimate.cpi)
        row["estimated_cycles"] = int(round(row["count"] * cpi))


def device_samples(samples: np.ndarray, edge: dict, index: int = 0) -> np.ndarray:
    """int8 samples of any shape (N, ...) as the rows of bytes the device takes: (N, input size)."""
    samples = np.asarray(samples)
    if samples.dtype != np.int8:
        raise DataError(
            f"samples for input {index} '{edge.get('name', '?')}' are {samples.dtype}; run_samples "
            "takes int8 tensors (quantize floats with quantized_samples)"
        )
    size = _check_fits(samples, edge, index)
    return np.ascontiguousarray(samples).reshape(len(samples), size)


def run_samples(
    model_dir: str | os.PathLike,
    board: Any,
    samples: np.ndarray,
    *,
    reference: list[np.ndarray] | None = None,
    runs: int = 1,
    per_op: bool = False,
    port: str | None = None,
    timeout_s: float = 1.0,
) -> dict[str, Any]:
    """Run int8 samples as they are on the firmware `tinyrank build` made, one QEMU session for all.

    For callers that hold int8 tensors already and want the device's raw results, not a
    report: every sample is run `runs` times (`counts` keeps the least count of each) and,
    with `per_op`, once more with the op hooks (`op_counts`, one list per sample). Returns
    `outputs` (one (N, size) int8 array per model output), `counts`, `latency`,
    `stack_high_water_bytes`, and with `reference` (the host's outputs, one array per
    model output) `matches` and `mismatches` as `run_benchmark` counts them.
    """
    from toolchain.firmware import read_model_info
    from toolchain.firmware.boards import load_board

    board = load_board(board)
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    if runs < 1:
        raise TinyrankError(f"runs={runs}: must be at least 1")
    rows = device_samples(samples, info["inputs"][0])
    if reference is not None and any(len(r) != len(rows) for r in reference):
        raise DataError(
            f"reference has {[len(r) for r in reference]} samples per output; the samples are {len(rows)}"
        )
    elf, _sizes = _require_firmware(model_dir, board, port)
    with device_url(board, elf, port) as url, _open_client(url, board, info, timeout_s) as client:
        device = client.hello()
        _check_device(device, info, board)
        result = _run_each_sample(client, rows, runs, per_op)
    if reference is not None:
        diffs = [
            _max_abs_diff([o[i] for o in result["outputs"]], [r[i] for r in reference])
            for i in range(len(rows))
        ]
        result["matches"] = sum(d == 0 for d in diffs)
        result["mismatches"] = [{"index": i, "max_abs_diff": d} for i, d in enumerate(diffs) if d][
            :MISMATCHES_KEPT
        ]
    result.update(
        board=board.id,
        elf=str(elf) if elf else None,
        samples=len(rows),
        latency=latency_stats(result["counts"], device.counter_unit, device.clock_hz) if len(rows) else None,
    )
    return result


def _run_each_sample(client: BenchClient, rows: np.ndarray, runs: int, per_op: bool) -> dict[str, Any]:
    """Outputs, least count, and per-op counts of each sample; zeros go to any further inputs."""
    info = client.info
    extra_inputs = [bytes(size) for size in info.input_sizes[1:]]
    outputs = [np.zeros((len(rows), size), np.int8) for size in info.output_sizes]
    counts, op_counts, stack = [], [], 0
    for i, row in enumerate(rows):
        inputs = [row.tobytes(), *extra_inputs]
        timed = client.run(inputs, runs=runs)
        if timed.status != 0:
            raise DeviceError(f"{client.name}: tr_invoke returned {timed.status} on sample {i}")
        for k, data in enumerate(timed.outputs):
            outputs[k][i] = np.frombuffer(data, np.int8)
        counts.append(min(timed.counts))
        stack = max(stack, timed.stack_used_bytes)
        if per_op:
            profiled = client.run(inputs, runs=1, per_op=True, timed=False)
            op_counts.append(profiled.op_counts)
            stack = max(stack, profiled.stack_used_bytes)
    result: dict[str, Any] = {
        "outputs": outputs,
        "counts": counts,
        "unit": info.counter_unit,
        "stack_high_water_bytes": stack,
    }
    if per_op:
        result["op_counts"] = op_counts
    return result
