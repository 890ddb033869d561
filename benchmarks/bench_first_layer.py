"""The first-layer convolutions (1-3 input channels) of the benchmark models on the Cortex-M4.

A lighter run than `bench_codegen` for work on one kernel class: per model, generate the C,
build the qemu_m4 firmware, check a few random samples against TFLite Micro, count each op's
instructions and estimate its cycles from one traced inference, and print the ops of the class
"conv, first layer (1-3 input channels)" with their sum (instructions and estimated cycles per MAC).

`python -m benchmarks.bench_first_layer [--models ds_cnn resnet8 mobilenet_v1_025] [--out DIR]`
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.kernel_classes import add_up

FIRST_LAYER = "conv, first layer (1-3 input channels)"
MODELS = ("ds_cnn", "resnet8", "mobilenet_v1_025")


def first_layer_rows(name: str, work: Path, samples: int = 4) -> list[dict[str, Any]]:
    """The model's ops of the first-layer class (instructions, estimated cycles, MACs), after
    checking `samples` random inputs bit for bit against TFLite Micro on qemu_m4."""
    from benchmarks.bench_codegen import estimate_cycles
    from benchmarks.mlperf_tiny import build_tflite
    from toolchain import oracle
    from toolchain.bench.measure import run_samples
    from toolchain.codegen import generate
    from toolchain.codegen.graph import parse
    from toolchain.firmware import build

    data, _ = build_tflite(name, samples=16)
    tflite = work / f"{name}.tflite"
    tflite.write_bytes(data)
    gen = work / name
    info = generate(tflite, gen)
    shape = parse(tflite).inputs[0].shape
    x = np.random.default_rng(0).integers(-128, 128, size=(samples, *shape[1:]), dtype=np.int8)
    built = build(gen, "qemu_m4")
    run = run_samples(gen, "qemu_m4", x, reference=oracle.run(tflite, x), per_op=True)
    if run["matches"] != samples:
        raise SystemExit(f"{name}: {samples - run['matches']} of {samples} samples differ from TFLite Micro")
    measured = {"instructions_m4": int(np.median(run["counts"])), "op_counts_m4": list(run["op_counts"][0])}
    ops = estimate_cycles(tflite, gen, info, x[0], measured)["ops_m4"]
    rows = [dict(row, model=name, flash=built["flash_bytes"], arena=info["arena_bytes"]) for row in ops]
    return [row for row in rows if row["class"] == FIRST_LAYER]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=None, help="keep the generated C and firmware here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [row for name in args.models for row in first_layer_rows(name, work)]
    for row in rows:
        instructions, cycles = row["instructions"] / row["macs"], row["estimated_cycles"] / row["macs"]
        print(
            f"{row['model']:18s} {row['macs']:>10,} MACs {row['instructions']:>10,} instr "
            f"{instructions:.3f}/MAC  est. cycles {cycles:.3f}/MAC"
            f"  (arena {row['arena']:,} B, firmware flash {row['flash']:,} B)"
        )
    total = add_up(rows)[FIRST_LAYER]
    print(
        f"class: {total['instructions_per_mac']} instructions/MAC, {total['estimated_cycles_per_mac']} "
        f"estimated cycles/MAC (target {total['target_instructions_per_mac']})"
    )


if __name__ == "__main__":
    main()
