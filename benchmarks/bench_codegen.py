"""Codegen benchmark: per MLPerf Tiny architecture, what the generated C costs.

For each model (random weights, BatchNorm settled): generated code bytes (kernels and
model.c, without weights) and weight bytes for a Cortex-M4 at -O2, our arena next to
TFLite Micro's (its recording allocator, same model), and instructions per inference in
the benchmark firmware (`tinyrank build` for qemu_m4, QEMU mps2-an386, and qemu_m3,
mps2-an385; `-icount shift=0`, SysTick counts exact to +-4 instructions), with the
instructions per MAC of each kernel on the M4, against TFLite Micro + CMSIS-NN counted
the same way (TFLite Micro's own figures on the same QEMU machine), and estimated Cortex-M4
cycles from a traced inference (`toolchain.bench.cycles`). Kernel classes (depthwise, pointwise,
first-layer convolution ...) are set against their per-MAC targets (`kernel_classes.py`).
Each build's flash and RAM, as the budget predicted them against the ELF, show how far the
one budget model is off (target: 5%).

`python -m benchmarks.bench_codegen --out build/bench/codegen [--quick]`
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.mlperf_tiny import build_tflite
from toolchain.fileio import write_json_report

# TFLite Micro + CMSIS-NN, -O2, mps2-an386 under icount: instructions, arena bytes.
TFLM_CMSIS_NN = {
    "ds_cnn": {"instructions": 7.70e6, "arena_bytes": 23.2e3},
    "resnet8": {"instructions": 29.9e6, "arena_bytes": 55.4e3},
    "mobilenet_v1_025": {"instructions": 24.4e6, "arena_bytes": 100.6e3},
    "fc_autoencoder": {"instructions": 0.60e6, "arena_bytes": 16.0e3},
    "mlp": {"instructions": 1.55e6, "arena_bytes": 10.7e3},
    "micro_speech": {"instructions": 1_495_560, "arena_bytes": None},
}
# Instructions against TFLite Micro + CMSIS-NN that every model must reach (and the aim).
TARGET_VS_TFLM = 0.6
AIM_VS_TFLM = 0.5
QUICK_MODELS = ("fc_autoencoder", "micro_speech")
M4_FLAGS = ["-mthumb", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]


def _section_bytes(objects: list[Path]) -> dict[str, int]:
    """text/data/bss of object files (arm-none-eabi-size, Berkeley format)."""
    out = subprocess.run(
        ["arm-none-eabi-size", *map(str, objects)], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()[1:]
    totals = {"text": 0, "data": 0, "bss": 0}
    for line in out:
        text, data, bss = (int(v) for v in line.split()[:3])
        totals["text"] += text
        totals["data"] += data
        totals["bss"] += bss
    return totals


def code_sizes(gen: Path, work: Path) -> dict[str, int]:
    """Flash bytes of the generated code (kernels + model.c) and of model_weights.c, built -O2 for the M4."""
    objects = {}
    for source in sorted(gen.glob("*.c")):
        obj = work / f"{source.stem}.o"
        subprocess.run(
            [
                "arm-none-eabi-gcc",
                "-std=c99",
                "-O2",
                "-ffunction-sections",
                "-fdata-sections",
                *M4_FLAGS,
                f"-I{gen}",
                "-c",
                str(source),
                "-o",
                str(obj),
            ],
            check=True,
            timeout=300,
        )
        objects[source.name] = obj
    weights = _section_bytes([objects.pop("model_weights.c")])
    code = _section_bytes(list(objects.values()))
    return {
        "code_bytes": code["text"] + code["data"],
        "weights_flash_bytes": weights["text"] + weights["data"],
        "static_ram_bytes": code["bss"] + code["data"],
    }


def bench_model(name: str, work: Path, samples: int) -> dict[str, Any]:
    from toolchain.codegen import generate

    start = time.perf_counter()
    data, _ = build_tflite(name, samples=16)
    tflite = work / f"{name}.tflite"
    tflite.write_bytes(data)
    info = generate(tflite, work / name)
    result: dict[str, Any] = {
        "macs": info["macs"],
        "ops": len(info["ops"]),
        "arena_bytes": info["arena_bytes"],
        "tflm_arena_bytes": info["tflm_arena_bytes"],
        "weights_bytes": info["weights_bytes"],
        "tflite_bytes": len(data),
        **code_sizes(work / name, work),
    }
    if info["tflm_arena_bytes"]:
        result["arena_vs_tflm"] = round(info["arena_bytes"] / info["tflm_arena_bytes"], 3)
    result.update(host_verify(tflite, samples=16))
    if qemu_available():
        result.update(count_instructions(tflite, work / name, info, samples))
    reference = TFLM_CMSIS_NN.get(name)
    if reference and "instructions_m4" in result:
        result["tflm_cmsis_nn_instructions"] = int(reference["instructions"])
        ratio = result["instructions_m4"] / reference["instructions"]
        result["instructions_vs_tflm_cmsis_nn"] = round(ratio, 2)
        result["meets_target_vs_tflm"] = ratio <= TARGET_VS_TFLM
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def host_verify(tflite: Path, samples: int) -> dict[str, Any]:
    """`tinyrank verify` on the host: the generated C compiled natively on random int8 samples,
    every output byte compared with the tflite_micro interpreter."""
    from toolchain.codegen.graph import parse
    from toolchain.codegen.verify import verify

    shape = parse(tflite).inputs[0].shape
    x = np.random.default_rng(1).integers(-128, 128, size=(samples, *shape[1:]), dtype=np.int8)
    report = verify(tflite, x)
    return {
        "bit_exact_host": bool(report["bit_exact"]),
        "host_mismatched_samples": report["mismatched_samples"],
    }


def bit_exact_count(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How many models are bit-exact with TFLite Micro everywhere they ran (host verify, QEMU M4, QEMU M3)."""
    keys = ("bit_exact_host", "bit_exact_m4", "bit_exact_m3")
    exact = [name for name, r in models.items() if all(r.get(key, True) for key in keys)]
    return {"models": len(models), "bit_exact": len(exact), "not_exact": sorted(set(models) - set(exact))}


def qemu_available() -> bool:
    from toolchain.firmware.emulators import QEMU

    return shutil.which(QEMU) is not None


def plain_generation(tflite: Path, gen: Path) -> Path:
    """The model generated for a core without DSP (Cortex-M3: the plain layouts), beside `gen`."""
    from toolchain.codegen import generate

    plain = gen.with_name(f"{gen.name}_plain")
    generate(tflite, plain, tflm_arena=False, dsp=False)
    return plain


def count_instructions(tflite: Path, gen: Path, info: dict[str, Any], samples: int) -> dict[str, Any]:
    """Build the benchmark firmware for qemu_m4 (DSP kernels) and qemu_m3 (generic C), run random
    int8 samples through it, and check every output against TFLite Micro on the host."""
    from toolchain import oracle
    from toolchain.bench.measure import run_samples
    from toolchain.codegen.graph import parse
    from toolchain.firmware import build

    shape = parse(tflite).inputs[0].shape
    x = np.random.default_rng(0).integers(-128, 128, size=(samples, *shape[1:]), dtype=np.int8)
    expected = oracle.run(tflite, x)
    result: dict[str, Any] = {}
    for board in ("qemu_m4", "qemu_m3"):
        target = gen if board == "qemu_m4" else plain_generation(tflite, gen)
        built = build(target, board)
        run = run_samples(target, board, x, reference=expected, per_op=board == "qemu_m4")
        key = board.removeprefix("qemu_")
        # The budget's prediction against the ELF, (predicted - actual) / actual: held within 5%.
        result[f"flash_prediction_error_{key}"] = built["flash_prediction_error"]
        result[f"firmware_flash_bytes_{key}"] = built["flash_bytes"]  # the linked ELF: one copy of each loop
        result[f"ram_prediction_error_{key}"] = built["static_ram_prediction_error"]
        median = float(np.median(run["counts"]))
        result[f"instructions_{key}"] = int(median)
        result[f"instructions_per_mac_{key}"] = round(median / info["macs"], 2)
        result[f"bit_exact_{key}"] = run["matches"] == samples
        if "op_counts" in run:
            result[f"kernels_{key}"] = kernel_costs(run["op_counts"][0], info)
            result[f"op_counts_{key}"] = list(run["op_counts"][0])
    result.update(estimate_cycles(tflite, gen, info, x[0], result))
    return result


def estimate_cycles(
    tflite: Path, gen: Path, info: dict[str, Any], sample: np.ndarray, measured: dict[str, Any]
) -> dict[str, Any]:
    """Estimated Cortex-M4 cycles of the qemu_m4 firmware (a traced inference, `toolchain.bench.cycles`),
    for the whole model and for each op, with each op's kernel class."""
    from benchmarks.kernel_classes import op_class
    from toolchain.bench import cycles
    from toolchain.codegen.graph import parse
    from toolchain.firmware import elf_path, load_board

    board = load_board("qemu_m4")
    elf = elf_path(gen / f"firmware_{board.id}", board)
    functions = cycles.model_functions(elf)
    estimate = cycles.trace_one_inference(board, elf, [sample.astype(np.int8).tobytes()])
    kernel_cpi = cycles.kernel_cpi(estimate, functions)
    stem_of = {name: stem for stem, names in functions.items() for name in names}
    graph_ops = parse(tflite).ops
    rows = []
    for op, count in zip(info["ops"], measured.get("op_counts_m4", []), strict=False):
        cpi = kernel_cpi.get(stem_of.get(str(op.get("kernel")), ""), estimate.cpi)
        members = [graph_ops[i] for i in op.get("graph_ops", [op["index"]])]
        rows.append(
            {
                "class": op_class(op["opcode"], members),
                "opcode": op["opcode"],
                "macs": op.get("macs", 0),
                "instructions": count,
                "estimated_cycles": int(round(count * cpi)),
            }
        )
    return {
        "cycles_per_instruction_m4": round(estimate.cpi, 3),
        "estimated_cycles_m4": int(round(measured["instructions_m4"] * estimate.cpi)),
        "ops_m4": rows,
    }


def kernel_costs(op_counts: list[int], info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Instructions and MACs per kernel over one inference: where the time goes."""
    kernels: dict[str, dict[str, Any]] = {}
    for op, count in zip(info["ops"], op_counts, strict=True):
        kernel = op.get("kernel") or f"{op['opcode']} (alias, no kernel)"
        entry = kernels.setdefault(kernel, {"ops": 0, "instructions": 0, "macs": 0})
        entry["ops"] += 1
        entry["instructions"] += count
        entry["macs"] += op.get("macs", 0)
    for entry in kernels.values():
        entry["instructions_per_mac"] = (
            round(entry["instructions"] / entry["macs"], 2) if entry["macs"] else None
        )
    return kernels


def _cell(key: str, value: Any) -> str:
    if "prediction_error" in key and isinstance(value, float):
        return f"{value:+.2%}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _print(results: dict[str, Any]) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    table = Table(title="codegen: generated C per MLPerf Tiny model (Cortex-M4, -O2)")
    columns = [
        ("model", None),
        ("MACs", "macs"),
        ("code B", "code_bytes"),
        ("weights B", "weights_flash_bytes"),
        ("arena B", "arena_bytes"),
        ("TFLM arena B", "tflm_arena_bytes"),
        ("M4 instr", "instructions_m4"),
        ("instr/MAC", "instructions_per_mac_m4"),
        ("est. M4 cycles", "estimated_cycles_m4"),
        ("vs TFLM+CMSIS", "instructions_vs_tflm_cmsis_nn"),
        (f"<= {TARGET_VS_TFLM}x", "meets_target_vs_tflm"),
        ("exact host", "bit_exact_host"),
        ("exact M4", "bit_exact_m4"),
        ("exact M3", "bit_exact_m3"),
        ("flash pred err", "flash_prediction_error_m4"),
        ("RAM pred err", "ram_prediction_error_m4"),
    ]
    for title, _ in columns:
        table.add_column(title, justify="left" if title == "model" else "right")
    for name, r in results["models"].items():
        cells = [name] + [_cell(key, r.get(key, "-")) for _, key in columns[1:]]
        table.add_row(*cells)
    make_console().print(table)
    count = results.get("bit_exact")
    if count:
        make_console().print(
            f"bit-exact with TFLite Micro (host verify, QEMU M4 and M3): {count['bit_exact']} of "
            f"{count['models']} models"
            + (f"; not exact: {', '.join(count['not_exact'])}" if count["not_exact"] else "")
        )
    classes = results.get("kernel_classes")
    if classes:
        by_class = Table(
            title="kernel classes on the Cortex-M4 (all models): instructions and estimated cycles per MAC"
        )
        for title in ("class", "ops", "MACs", "instr/MAC", "est. cycles/MAC", "target instr/MAC", "met"):
            by_class.add_column(title, justify="left" if title == "class" else "right")
        for name, c in sorted(classes.items()):
            by_class.add_row(
                name,
                str(c["ops"]),
                f"{c['macs']:,}",
                str(c["instructions_per_mac"] or "-"),
                str(c["estimated_cycles_per_mac"] or "-"),
                str(c["target_instructions_per_mac"] or "-"),
                "-" if c["met"] is None else ("yes" if c["met"] else "NO"),
            )
        make_console().print(by_class)


def run(out_dir: str | Path, quick: bool = False) -> dict[str, Any]:
    """Benchmark every MLPerf Tiny model (`quick`: the two smallest, fewer samples); writes
    `out_dir/bench_codegen.json` and returns the same dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = QUICK_MODELS if quick else tuple(TFLM_CMSIS_NN)
    results: dict[str, Any] = {
        "models": {},
        "reference": TFLM_CMSIS_NN,
        "method": "benchmark firmware of `tinyrank build` for qemu_m4 / qemu_m3 (QEMU mps2-an386 / "
        "an385, -icount shift=0): SysTick, exact to +-4 instructions",
    }
    with tempfile.TemporaryDirectory(prefix="bench-codegen-") as tmp:
        for name in names:
            work = Path(tmp) / name
            work.mkdir()
            results["models"][name] = bench_model(name, work, samples=2 if quick else 3)
    from benchmarks.kernel_classes import add_up

    rows = [row for r in results["models"].values() for row in r.get("ops_m4", [])]
    results["kernel_classes"] = add_up(rows)
    results["cycle_model"] = "estimated Cortex-M4 cycles: toolchain/bench/cycles.py (zero wait states)"
    results["bit_exact"] = bit_exact_count(results["models"])
    write_json_report(out / "bench_codegen.json", results)
    _print(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_codegen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench/codegen"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
