"""LSTM benchmark: instructions per MAC of UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state) in QEMU.

Keras LSTMs (tf_keras, converted to full int8 here: tests/helpers/lstm_models.py) of a few sizes
are generated, built for each QEMU core (qemu_m4: DSP path, qemu_m3: generic path) and run on
held-out sequences; every output is checked against TFLite Micro on the host, and the per-op
instruction counts (`-icount`, exact to +-4) give instructions per MAC of each LSTM op. No
target: the kernel is TFLM's arithmetic in plain loops; the table shows where it stands (at a
few inputs per gate row the per-element int16 work outweighs the MACs).

`python -m benchmarks.bench_lstm --out build/bench/bench_lstm [--quick]`
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

BOARDS = ("qemu_m4", "qemu_m3")
MODELS = {  # name: (stacked, time steps, features, units)
    "stacked 8x6 -> 12 -> 8": (True, 8, 6, (12, 8)),
    "16x32 -> 32": (False, 16, 32, (32, 32)),
    "16x64 -> 64": (False, 16, 64, (64, 64)),
}
LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"


def measure(name: str, work: Path, boards: tuple[str, ...], samples: int) -> dict[str, Any]:
    """One model on every board: bit-exactness, whole-inference and per-LSTM-op counts."""
    from tests.helpers.lstm_models import converted, sequences
    from toolchain import codegen, oracle
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build

    stacked, steps, features, units = MODELS[name]
    folder = work / name.replace(" ", "_").replace(">", "")
    folder.mkdir(parents=True, exist_ok=True)
    tflite = folder / "model.tflite"
    tflite.write_bytes(converted(stacked, time_steps=steps, features=features, units=units))
    info = codegen.generate(tflite, folder / "gen")
    x = sequences(samples, 99, time_steps=steps, features=features)
    reference = oracle.run(tflite, x)
    x_int8 = oracle.quantize_input(x, info["inputs"][0]["scale"], info["inputs"][0]["zero_point"])
    positions = [k for k, op in enumerate(info["ops"]) if op["opcode"] == LSTM]  # op_counts order
    lstm_ops = [info["ops"][k] for k in positions]
    result: dict[str, Any] = {
        "macs": info["macs"],
        "lstm_macs": [op["macs"] for op in lstm_ops],
        "boards": {},
    }
    for board in boards:
        build(folder / "gen", board)
        run = run_samples(folder / "gen", board, x_int8, reference=reference, per_op=True)
        counts = [min(c[k] for c in run["op_counts"]) for k in positions]
        result["boards"][board] = {
            "matches": run["matches"],
            "samples": samples,
            "instructions": int(run["latency"]["median"]),
            "lstm_instructions": counts,
            "lstm_per_mac": [round(c / op["macs"], 2) for c, op in zip(counts, lstm_ops, strict=True)],
        }
    return result


def _print(results: dict[str, Any], boards: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 160
    table = Table(title="UNIDIRECTIONAL_SEQUENCE_LSTM int8 (instructions per MAC of each LSTM op)")
    for column in [
        "model",
        "MACs",
        *(f"{b} instr" for b in boards),
        *(f"{b} LSTM/MAC" for b in boards),
        "exact",
    ]:
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, r in results.items():
        cells = [name, f"{r['macs']:,}"]
        cells += [f"{r['boards'][b]['instructions']:,}" for b in boards]
        cells += [", ".join(f"{v:.2f}" for v in r["boards"][b]["lstm_per_mac"]) for b in boards]
        cells.append(" ".join(f"{r['boards'][b]['matches']}/{r['boards'][b]['samples']}" for b in boards))
        table.add_row(*cells)
    console.print(table)


def run(out_dir: str | Path, quick: bool = False) -> dict[str, Any]:
    from toolchain.fileio import write_json_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(MODELS)[:1] if quick else list(MODELS)
    samples = 4 if quick else 10
    with tempfile.TemporaryDirectory(prefix="bench_lstm_") as tmp:
        results = {name: measure(name, Path(tmp), BOARDS, samples) for name in names}
    _print(results, BOARDS)
    report = {"boards": list(BOARDS), "models": results}
    write_json_report(out / "bench_lstm.json", report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_lstm", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_lstm"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
