"""Measure the grid in QEMU and fit the cost model: `make costmodel`.

Each grid model is converted to full int8, generated once, built for every measured core
(qemu_m4: Cortex-M4 DSP path, qemu_m3: Cortex-M3 plain C, qemu_m33: Cortex-M33) and run
once with the per-op hooks. Each kernel's coefficients are the non-negative least-squares
fit of its terms (`costmodel.call_terms`) to the counts, weighted so that relative errors
count (a small op matters as much as a big one). A fifth of the calls is held back first to
report how well the fit predicts calls it did not see; the saved fit uses all of them.

`python -m toolchain.firmware.costfit [--out toolchain/firmware/costmodel.json] [--jobs 2]`
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from toolchain import argtypes
from toolchain.firmware.costmodel import (
    DATA_PATH,
    GENERIC,
    GENERIC_TERMS,
    call_terms,
    core_has_dsp,
    generic_terms,
    kernel_key,
    signature,
    term_names,
)

BOARDS = {"m4": "qemu_m4", "m3": "qemu_m3", "m33": "qemu_m33"}
VALIDATION_SHARE = 5  # every 5th call is held back for the reported validation error


def generate_model(model: Any, work: Path, name: str, dsp: bool = True) -> Path:
    """Convert to full int8 and generate C into work/name; returns the generated folder. `dsp`
    False (a core without DSP) keeps the plain layouts (one-row FULLY_CONNECTED layers run
    tr_fully_connected_int8), into work/name_plain."""
    from toolchain.codegen import generate
    from toolchain.convert import convert_model

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    x = np.random.default_rng(0).normal(size=(32, *shape)).astype(np.float32)
    tflite = work / f"{name}.tflite"
    tflite.write_bytes(convert_model(model, x, samples=32))
    gen = work / (name if dsp else f"{name}_plain")
    generate(tflite, gen, tflm_arena=False, fuse=True, dsp=dsp)
    return gen


def measure_calls(gen: Path, board: str) -> list[dict[str, Any]]:
    """Build `gen` for `board`, run one input with the per-op hooks; one row per kernel call."""
    from toolchain.bench.measure import run_samples
    from toolchain.firmware import build, read_model_info

    info = read_model_info(gen)
    build(gen, board)
    edge = info["inputs"][0]
    x = np.random.default_rng(1).integers(-128, 128, size=(1, int(edge["size"])), dtype=np.int8)
    counts = run_samples(gen, board, x, per_op=True)["op_counts"][0]
    return [
        {"kernel": op["kernel"], "shapes": op["shapes"], "count": int(count)}
        for op, count in zip(info["ops"], counts, strict=True)
        if op["kernel"] is not None
    ]


def _nnls(terms: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimizing the relative error of each call."""
    from scipy.optimize import nnls

    weighted = terms / counts[:, None]
    scale = np.abs(weighted).max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(weighted / scale, np.ones(len(counts)), maxiter=50 * terms.shape[1])
    return solution / scale


def _relative_errors(coefficients: np.ndarray, terms: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.abs(terms @ coefficients - counts) / counts


def fit_core(rows: list[dict[str, Any]], dsp: bool = True) -> dict[str, Any]:
    """Coefficients per kernel (and the generic fallback) from one core's measured calls (`dsp`:
    the core runs the DSP path, `costmodel.core_has_dsp`)."""
    rows = [r for r in rows if r["count"] > 0]
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_key[kernel_key(row["kernel"], row["shapes"])].append(row)
    kernels: dict[str, Any] = {}
    for key, group in sorted(by_key.items()):
        terms = np.array([call_terms(r["shapes"], r["kernel"], dsp) for r in group])
        counts = np.array([r["count"] for r in group], dtype=float)
        kernels[key] = _entry(terms, counts, term_names(len(group[0]["shapes"]), group[0]["kernel"]))
    terms = np.array([generic_terms(r["shapes"]) for r in rows])
    counts = np.array([r["count"] for r in rows], dtype=float)
    kernels[GENERIC] = _entry(terms, counts, ["1", *GENERIC_TERMS])
    seen: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        seen[signature(row["shapes"])][row["kernel"]] += 1
    fusions = {sig: kernels_seen.most_common(1)[0][0] for sig, kernels_seen in sorted(seen.items())}
    return {"kernels": kernels, "fusions": fusions}


def _entry(terms: np.ndarray, counts: np.ndarray, names: list[str]) -> dict[str, Any]:
    coefficients = _nnls(terms, counts)
    errors = _relative_errors(coefficients, terms, counts)
    entry: dict[str, Any] = {
        "terms": names,
        "coefficients": [round(float(c), 6) for c in coefficients],
        "calls": len(counts),
        "fit_max_rel_error": round(float(errors.max()), 4),
        "fit_mean_rel_error": round(float(errors.mean()), 4),
    }
    train = np.arange(len(counts)) % VALIDATION_SHARE != VALIDATION_SHARE - 1
    if (~train).any() and train.sum() >= len(names):
        held = _relative_errors(_nnls(terms[train], counts[train]), terms[~train], counts[~train])
        entry["validation_max_rel_error"] = round(float(held.max()), 4)
    return entry


def measure_grid(builders, work: Path, cores=tuple(BOARDS), jobs: int = 2, log=print) -> dict[str, list]:
    """Every grid model generated, then built and measured for every core (`jobs` at a time)."""
    from toolchain.firmware.boards import load_board

    has_dsp = {core: load_board(BOARDS[core]).has_dsp for core in cores}
    gens = []
    for builder in builders:
        started = time.monotonic()
        model = builder()
        gens.append({dsp: generate_model(model, work, model.name, dsp) for dsp in set(has_dsp.values())})
        log(f"generated {model.name} ({len(model.layers)} layers) in {time.monotonic() - started:.1f} s")
    tasks = [(gen[has_dsp[core]], core) for gen in gens for core in cores]  # each core on its own C
    rows: dict[str, list] = {core: [] for core in cores}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(lambda task: measure_calls(task[0], BOARDS[task[1]]), tasks)
        for (gen, core), calls in zip(tasks, results, strict=True):
            rows[core].extend(calls)
            log(f"measured {gen.name} on {BOARDS[core]}: {len(calls)} calls")
    return rows


def main(argv: list[str] | None = None) -> int:
    from toolchain.fileio import atomic_write_text, to_json
    from toolchain.firmware.costgrid import fitting_grid

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_PATH)
    parser.add_argument(
        "--jobs", type=argtypes.positive_int, default=2, help="builds and QEMU runs at once (default 2)"
    )
    parser.add_argument("--work", type=Path, default=None, help="keep the grid's files (and raw counts) here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tinyrank-costgrid-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = measure_grid(fitting_grid(), work, jobs=args.jobs)
        if args.work:
            atomic_write_text(work / "measurements.json", to_json(rows))
    data: dict[str, Any] = {
        "about": "instructions per kernel call, fitted by `make costmodel` (toolchain/firmware/costfit.py); "
        "do not edit",
        "boards": BOARDS,
        "cores": {core: fit_core(core_rows, core_has_dsp(core)) for core, core_rows in rows.items()},
        "calls_measured": {core: len(core_rows) for core, core_rows in rows.items()},
        "seconds": round(time.monotonic() - started, 1),
    }
    atomic_write_text(args.out, to_json(data))
    for core, fitted in data["cores"].items():
        for key, entry in fitted["kernels"].items():
            print(
                f"{core:4} {key:48} calls {entry['calls']:4}  fit max {entry['fit_max_rel_error']:.1%}  "
                f"validation max {entry.get('validation_max_rel_error', float('nan')):.1%}"
            )
    print(f"wrote {args.out} in {data['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
