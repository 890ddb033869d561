"""Factored-layer benchmark: does a low-rank layer cost no more per MAC on the chip than a dense one?

For every shape below, one model holds both the dense layer and its factored form (the ops
`tinyrank compress` writes: a bias-free linear first factor, then the layer's own activation),
side by side on one input. It is generated with fused factored kernels, built for each QEMU
core (qemu_m4: Cortex-M4 DSP path, qemu_m3: Cortex-M3 generic path, qemu_m33: Cortex-M33),
and the per-op instruction counts of the benchmark firmware (`-icount shift=0`, SysTick,
exact to +-4 instructions) give instructions per MAC for each. Every output is checked
against TFLite Micro on the host.

Also measured: FULLY_CONNECTED 16x16 (target <= 3 instructions per MAC), FULLY_CONNECTED and
pointwise CONV_2D at 64x64 and above (target <= 1.3), and the demo's digits MLP compressed to
30% of its parameters against the original (target on qemu_m4: compressed instructions <= 28,600;
also shown: against 1.05 x the MAC ratio x the original's instructions).

`python -m benchmarks.bench_factored --out build/bench/bench_factored [--quick] [--shape TEXT ...]`
(`--shape`: only the shapes whose name contains one of the texts, e.g. `--shape "fc 256" --quick`.)
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BOARDS = ("qemu_m4", "qemu_m3", "qemu_m33")
FACTORED_TARGET = 1.05  # factored instructions/MAC <= this x dense instructions/MAC
SMALL_FC_TARGET = 3.0  # FULLY_CONNECTED 16x16
LARGE_TARGET = 1.3  # FULLY_CONNECTED and pointwise CONV_2D at 64x64 and above
MLP_TARGET = 1.05  # compressed instructions <= this x MAC ratio x original instructions (shown)
MLP_TARGET_INSTRUCTIONS = {"qemu_m4": 28_600}  # the compressed demo MLP per inference


@dataclass(frozen=True)
class Shape:
    """One benchmark layer: `kind` fc (Dense), pw (1x1 Conv2D), spatial (k x k Conv2D against
    k x 1 then 1 x k) or tucker (k x k Conv2D against 1x1, k x k and 1x1 through `rank` channels);
    `pixels` (H, W) for convolutions; `rank` 0 benchmarks the dense layer alone."""

    name: str
    kind: str
    depth_in: int
    depth_out: int
    rank: int = 0
    pixels: tuple[int, int] = (1, 1)
    kernel: int = 1

    @property
    def dense_macs(self) -> int:
        return self.pixels[0] * self.pixels[1] * self.depth_in * self.depth_out * self.kernel**2

    @property
    def large(self) -> bool:
        return self.kind in ("fc", "pw") and min(self.depth_in, self.depth_out) >= 64


SHAPES = (
    Shape("fc 16x16", "fc", 16, 16),
    Shape("fc 64x64", "fc", 64, 64),
    Shape("fc 256x128", "fc", 256, 128),
    Shape("fc 64-16-256 (demo layer 1)", "fc", 64, 256, 16),
    Shape("fc 256-24-128 (demo layer 2)", "fc", 256, 128, 24),
    Shape("fc 64-8-64", "fc", 64, 64, 8),
    Shape("fc 128-32-128", "fc", 128, 128, 32),
    Shape("fc 256-48-256", "fc", 256, 256, 48),
    Shape("pw 64-16-64 @25x5 (DS-CNN)", "pw", 64, 64, 16, (25, 5)),
    Shape("pw 32-8-64 @8x8", "pw", 32, 64, 8, (8, 8)),
    Shape("pw 96-24-96 @6x6", "pw", 96, 96, 24, (6, 6)),
    Shape("spatial 3x3 16-8-16 @10x10", "spatial", 16, 16, 8, (10, 10), 3),
    Shape("tucker 3x3 32-8:8-32 @12x12", "tucker", 32, 32, 8, (12, 12), 3),
)
QUICK_SHAPES = ("fc 16x16", "fc 64x64", "fc 64-16-256 (demo layer 1)", "pw 64-16-64 @25x5 (DS-CNN)")


def layer_model(shape: Shape) -> Any:
    """Keras model: input -> dense layer (output 0) and, with a rank, input -> factored layer (output 1)."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(7)
    if shape.kind == "fc":
        inp = keras.Input((shape.depth_in,))
        outputs = [L.Dense(shape.depth_out, activation="relu")(inp)]
        if shape.rank:
            narrow = L.Dense(shape.rank, use_bias=False)(inp)
            outputs.append(L.Dense(shape.depth_out, activation="relu")(narrow))
        return keras.Model(inp, outputs)
    inp = keras.Input((*shape.pixels, shape.depth_in))
    k = shape.kernel
    outputs = [L.Conv2D(shape.depth_out, k, padding="same", activation="relu")(inp)]
    if shape.kind == "tucker":
        narrow = L.Conv2D(shape.rank, 1, use_bias=False)(inp)
        narrow = L.Conv2D(shape.rank, k, padding="same", use_bias=False)(narrow)
        outputs.append(L.Conv2D(shape.depth_out, 1, activation="relu")(narrow))
    elif shape.rank:
        first = (k, 1) if shape.kind == "spatial" else 1
        last = (1, k) if shape.kind == "spatial" else 1
        narrow = L.Conv2D(shape.rank, first, padding="same", use_bias=False)(inp)
        outputs.append(L.Conv2D(shape.depth_out, last, padding="same", activation="relu")(narrow))
    return keras.Model(inp, outputs)


def _tflite(shape: Shape, path: Path) -> Path:
    from toolchain.convert import convert_model

    model = layer_model(shape)
    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 1.0, size=(64, *model.inputs[0].shape[1:])).astype(np.float32)
    path.write_bytes(convert_model(model, x, samples=64))
    return path


def has_dsp(board: str) -> bool:
    """Whether codegen targets the board's DSP path (a Cortex-M0/M3 is generated with dsp=False)."""
    from toolchain.firmware import load_board

    return bool(load_board(board).has_dsp)


def split_counts(op_counts: list[int], info: dict, dense_macs: int) -> dict[str, dict[str, int]]:
    """Instructions and MACs of the dense op (the one op with the dense layer's MACs) and of the
    rest (the factored ops, fused or not)."""
    parts = {"dense": {"instructions": 0, "macs": 0}, "factored": {"instructions": 0, "macs": 0}}
    dense_seen = False
    for op, count in zip(info["ops"], op_counts, strict=True):
        is_dense = not dense_seen and op.get("macs") == dense_macs
        dense_seen |= is_dense
        part = parts["dense" if is_dense else "factored"]
        part["instructions"] += count
        part["macs"] += op.get("macs", 0)
    return parts


def measure_shape(shape: Shape, work: Path, boards: tuple[str, ...], samples: int) -> dict[str, Any]:
    """Per board: instructions and instructions/MAC of the dense and the factored layer, and bit-exactness."""
    from toolchain import oracle
    from toolchain.bench.measure import run_samples
    from toolchain.codegen import generate
    from toolchain.codegen.graph import parse
    from toolchain.firmware import build

    tflite = _tflite(shape, work / "model.tflite")
    info = generate(tflite, work / "gen", tflm_arena=False, fuse=True)
    if any(not has_dsp(board) for board in boards):  # the plain layouts a core without DSP is given
        generate(tflite, work / "gen_plain", tflm_arena=False, fuse=True, dsp=False)
    in_shape = parse(tflite).inputs[0].shape
    x = np.random.default_rng(0).integers(-128, 128, size=(samples, *in_shape[1:]), dtype=np.int8)
    expected = oracle.run(tflite, x)
    result: dict[str, Any] = {
        "kind": shape.kind,
        "rank": shape.rank,
        "kernels": [op.get("kernel") for op in info["ops"]],
        "arena_bytes": info["arena_bytes"],
    }
    for board in boards:
        gen = work / ("gen" if has_dsp(board) else "gen_plain")
        build(gen, board)
        run = run_samples(gen, board, x, reference=expected, per_op=True)
        parts = split_counts(run["op_counts"][0], info, shape.dense_macs)
        row: dict[str, Any] = {"bit_exact": run["matches"] == samples}
        for name, part in parts.items():
            if part["macs"]:
                row[f"{name}_instructions"] = part["instructions"]
                row[f"{name}_macs"] = part["macs"]
                row[f"{name}_per_mac"] = round(part["instructions"] / part["macs"], 3)
        if "factored_per_mac" in row:
            row["factored_vs_dense"] = round(row["factored_per_mac"] / row["dense_per_mac"], 3)
            row["meets_factored_target"] = row["factored_vs_dense"] <= FACTORED_TARGET
        if shape.name == "fc 16x16":
            row["meets_small_target"] = row["dense_per_mac"] <= SMALL_FC_TARGET
        if shape.large:
            row["meets_large_target"] = row["dense_per_mac"] <= LARGE_TARGET
        result[board] = row
    return result


def measure_mlp(work: Path, boards: tuple[str, ...], samples: int, epochs: int) -> dict[str, Any]:
    """The demo's digits MLP, original and compressed as `make demo` compresses it, per board."""
    from toolchain import oracle
    from toolchain.bench.measure import run_samples
    from toolchain.codegen import generate
    from toolchain.compress import compress
    from toolchain.convert import convert_model
    from toolchain.data import load_dataset
    from toolchain.deploy.demo import DEMO_COMPRESSION, prepare
    from toolchain.firmware import build
    from toolchain.models import load_keras_model

    model_path, data_path = prepare(work / "demo", epochs=epochs)
    dataset = load_dataset(data_path)
    original = load_keras_model(model_path)
    compressed, _ = compress(original, dataset, **DEMO_COMPRESSION)
    x = dataset.x_test[:samples]
    result: dict[str, Any] = {}
    for name, model in (("original", original), ("compressed", compressed)):
        tflite = work / f"mlp_{name}.tflite"
        tflite.write_bytes(convert_model(model, dataset.x_train))
        info = generate(tflite, work / f"mlp_{name}", tflm_arena=False)
        if any(not has_dsp(board) for board in boards):
            generate(tflite, work / f"mlp_{name}_plain", tflm_arena=False, dsp=False)
        from toolchain.convert.convert import Int8Model

        xq = Int8Model(tflite.read_bytes()).quantize(x)
        expected = oracle.run(tflite, xq)
        result[name] = {"macs": info["macs"], "kernels": [op.get("kernel") for op in info["ops"]]}
        for board in boards:
            gen = work / (f"mlp_{name}" if has_dsp(board) else f"mlp_{name}_plain")
            build(gen, board)
            run = run_samples(gen, board, xq, reference=expected)
            result[name][board] = {
                "instructions": int(np.median(run["counts"])),
                "bit_exact": run["matches"] == len(xq),
            }
    ratio = result["compressed"]["macs"] / result["original"]["macs"]
    result["mac_ratio"] = round(ratio, 4)
    for board in boards:
        limit = MLP_TARGET * ratio * result["original"][board]["instructions"]
        got = result["compressed"][board]["instructions"]
        result[board] = {
            "mac_ratio_target_instructions": int(limit),
            "meets_mac_ratio_target": got <= limit,
            "compressed_instructions": got,
            "instruction_ratio": round(got / result["original"][board]["instructions"], 4),
        }
        if board in MLP_TARGET_INSTRUCTIONS:
            result[board]["target_instructions"] = MLP_TARGET_INSTRUCTIONS[board]
            result[board]["meets_target"] = got <= MLP_TARGET_INSTRUCTIONS[board]
    return result


def _print(results: dict[str, Any], boards: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # logs and CI: do not squeeze the tables into 80 columns
        console.width = 160
    for board in boards:
        table = Table(title=f"factored vs dense layers on {board}: instructions per MAC")
        for title in (
            "layer",
            "dense MACs",
            "dense instr/MAC",
            "factored MACs",
            "factored instr/MAC",
            "ratio",
            "<= 1.05",
            "exact",
        ):
            table.add_column(title, justify="left" if title == "layer" else "right")
        for name, r in results["shapes"].items():
            row = r.get(board, {})

            def fmt(key: str, row: dict = row) -> str:
                return f"{row[key]:,}" if key in row else "-"

            table.add_row(
                name,
                fmt("dense_macs"),
                fmt("dense_per_mac"),
                fmt("factored_macs"),
                fmt("factored_per_mac"),
                fmt("factored_vs_dense"),
                {True: "yes", False: "NO"}.get(row.get("meets_factored_target"), "-"),
                "yes" if row.get("bit_exact") else "NO",
            )
        console.print(table)
    mlp = results.get("mlp")
    if mlp:
        table = Table(title="demo MLP (64-256-128-10, 30% of parameters): instructions per inference")
        for title in (
            "board",
            "original",
            "compressed",
            "MAC ratio",
            "instr ratio",
            f"{MLP_TARGET} x MAC ratio",
            "target",
            "met",
            "exact",
        ):
            table.add_column(title, justify="left" if title == "board" else "right")
        for board in boards:
            b = mlp[board]
            exact = mlp["original"][board]["bit_exact"] and mlp["compressed"][board]["bit_exact"]
            table.add_row(
                board,
                f"{mlp['original'][board]['instructions']:,}",
                f"{b['compressed_instructions']:,}",
                f"{mlp['mac_ratio']:.3f}",
                f"{b['instruction_ratio']:.3f}",
                f"{b['mac_ratio_target_instructions']:,}",
                f"<= {b['target_instructions']:,}" if "target_instructions" in b else "-",
                {True: "yes", False: "NO"}.get(b.get("meets_target"), "-"),
                "yes" if exact else "NO",
            )
        console.print(table)


def run(out_dir: str | Path, quick: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    """Every shape on every QEMU core (`quick`: four shapes, the M4 only, no MLP; `only`: the
    shapes whose name contains one of these texts instead of the four); writes
    `out_dir/bench_factored.json` and returns the same dict."""
    from toolchain.fileio import write_json_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    boards = BOARDS[:1] if quick else BOARDS
    if only:
        shapes = [s for s in SHAPES if any(text in s.name for text in only)]
    else:
        shapes = [s for s in SHAPES if not quick or s.name in QUICK_SHAPES]
    results: dict[str, Any] = {
        "method": "per-op instructions of the benchmark firmware (`tinyrank build`, QEMU -icount shift=0, "
        "SysTick exact to +-4), fused factored kernels; outputs checked against TFLite Micro",
        "targets": {
            "factored_vs_dense": FACTORED_TARGET,
            "fc_16x16_per_mac": SMALL_FC_TARGET,
            "fc_pointwise_64_per_mac": LARGE_TARGET,
            "mlp": {"instructions": MLP_TARGET_INSTRUCTIONS, "shown": f"{MLP_TARGET} x MAC ratio x original"},
        },
        "shapes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-factored-") as tmp:
        for i, shape in enumerate(shapes):
            work = Path(tmp) / f"shape{i}"
            work.mkdir()
            results["shapes"][shape.name] = measure_shape(shape, work, boards, samples=2)
        if not quick and not only:
            results["mlp"] = measure_mlp(out / "mlp", boards, samples=20, epochs=40)
    write_json_report(out / "bench_factored.json", results)
    _print(results, boards)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_factored", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_factored"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shape", action="append", help="only shapes whose name contains this (repeatable)")
    args = parser.parse_args()
    run(args.out, quick=args.quick, only=args.shape)


if __name__ == "__main__":
    main()
