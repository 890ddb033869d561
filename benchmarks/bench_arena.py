"""Arena benchmark: the static plan with and without in-place row kernels, against TFLite Micro.

For the five MLPerf-like models of benchmarks/mlperf_tiny.py (random weights, as bench_codegen
builds them) the generator's arena is planned twice, once with the depthwise 3x3 and matmul
kernels kept out of place (the plan before issue 13) and once as `generate` plans by default
(in place where `inplace.in_place_shift` allows, the smaller arena kept); TFLite Micro's arena
comes from its `tflite_micro` interpreter's recording allocator (`oracle.arena_usage`). Only
generation and planning run here: no compiler, no emulator (bench_codegen measures the rest).

`python -m benchmarks.bench_arena --out build/bench/bench_arena`
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolchain.codegen.generator import LoweredModel
    from toolchain.codegen.graph import Op

MODELS = ("ds_cnn", "resnet8", "mobilenet_v1_025", "fc_autoencoder", "mlp")


def shares_buffer(model: LoweredModel, op: Op) -> bool:
    """Whether the op's output overlaps its input in the arena (both are alive at the op: in place)."""
    inp, out = op.input(0), op.outputs[0]
    if inp.index not in model.offsets or out.index not in model.offsets:
        return False
    start_in, start_out = model.offsets[inp.index], model.offsets[out.index]
    return start_in < start_out + out.nbytes and start_out < start_in + inp.nbytes


def measure(name: str, work: Path) -> dict[str, Any]:
    """Arena bytes of one model: out of place, in place (the default plan), TFLite Micro's."""
    from benchmarks.mlperf_tiny import build_tflite
    from toolchain.codegen.generator import lower_graph
    from toolchain.codegen.graph import parse
    from toolchain.oracle import arena_usage

    data, _ = build_tflite(name, samples=16)
    tflite = work / f"{name}.tflite"
    tflite.write_bytes(data)
    graph = parse(tflite)
    before = lower_graph(graph, in_place=False).arena_bytes
    model = lower_graph(graph)
    in_place = [
        item.call.function for item in model.ops if item.call is not None and shares_buffer(model, item.op)
    ]
    return {
        "arena_before": before,
        "arena_after": model.arena_bytes,
        "tflm_arena": arena_usage(tflite).total,
        "calls_in_place": len(in_place),
    }


def run(out: Path) -> dict[str, Any]:
    from toolchain.fileio import atomic_write_text, to_json

    with tempfile.TemporaryDirectory(prefix="tinyrank-arena-") as tmp:
        results = {name: measure(name, Path(tmp)) for name in MODELS}
    print("| model | arena before (B) | arena after (B) | TFLM arena (B) | calls in place |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['arena_before']:,} | {r['arena_after']:,} | {r['tflm_arena']:,} "
            f"| {r['calls_in_place']} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bench_arena.json", to_json(results))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_arena", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_arena"))
    run(parser.parse_args().out)


if __name__ == "__main__":
    main()
