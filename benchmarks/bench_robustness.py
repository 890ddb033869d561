"""Reliability probe: every hostile input class of the hardening work, each outcome counted.

Four parts, each counted by outcome class (the targets are 0 in every class but `clean`):
- the CLI on bad command lines, bad data, hostile model files and edited model_info.json
  (tests/helpers/bad_inputs.py plus Keras cases), each in a child process on a fresh copy of
  a workspace: traceback, segfault, hang, input modified, partial output, wrong success,
  misleading message (not the one expected), leaked process;
- the `.tflite` reader and codegen on seeded mutants (tests/helpers/tflite_fuzz.py) in a child
  process: crashes by kind, segfaults; TFLite Micro's arena sizing on accepted mutants; the C of
  accepted mutants compiled under ASan/UBSan and run: sanitizer findings;
- the serial client against a scripted lying device: hangs, tracebacks, unclear messages;
- `tinyrank bench` and `tinyrank flash` (real CLI, QEMU board) sent SIGTERM, SIGHUP, SIGINT,
  SIGKILL, and run under `timeout --foreground`: QEMU or PlatformIO left running.

`python -m benchmarks.bench_robustness --out build/bench/bench_robustness [--quick]`
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.robustness_links import kill_group, probe_serial, probe_signals
from tests.helpers import bad_inputs, tflite_fuzz
from tests.helpers.waiting import running as leaked
from toolchain.fileio import write_json_report

FUZZ_SEED = 20261205
CASE_TIMEOUT_S = 240.0
TARGETS = (
    "traceback",
    "segfault",
    "hang",
    "input modified",
    "partial output",
    "wrong success",
    "misleading message",
    "leaked process",
)

# Cases that need real Keras models (made by `bad_inputs.keras_inputs`): argv, pattern of the error line.
KERAS_CASES: dict[str, tuple[list[str], str]] = {
    "NaN weights": (
        ["convert", "nan.keras", "--data", "flat.npz", "--out", "x.tflite"],
        "holds 1 NaN or Inf values",
    ),
    "LSTM with a fixed batch": (
        ["convert", "lstm.keras", "--data", "seq.npz", "--out", "x.tflite"],
        "fixed batch size of 1",
    ),
    "labels above the classes": (
        ["convert", "ok.keras", "--data", "flat.npz", "--out", "x.tflite"],
        "holds class 7",
    ),
    "labels above the classes, compress": (
        ["compress", "ok.keras", "--data", "flat.npz", "--out", "s.keras"],
        "holds class 7",
    ),
    "image data for a flat model": (
        ["convert", "ok.keras", "--data", "image4.npz", "--out", "x.tflite"],
        "expects \\(4,\\)",
    ),
}


def classify_cli_case(root: Path, argv: list[str], expected: str) -> list[str]:
    """Run one case in a child process in `root`; the outcome classes it falls in (['clean'] if none)."""
    import re

    before = bad_inputs.snapshot(root)
    env = dict(os.environ, TINYRANK_BOARDS_DIR=str(root / "boards"), COLUMNS="200")
    process = subprocess.Popen(
        [sys.executable, "-m", "toolchain.cli", *argv],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = process.communicate(timeout=CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(process)
        return ["hang"]
    found = []
    if process.returncode < 0:
        found.append("segfault" if process.returncode == -signal.SIGSEGV else "killed")
    if "Traceback" in err:
        found.append("traceback")
    if process.returncode == 0:
        found.append("wrong success")
    after = bad_inputs.snapshot(root)
    if any(after.get(path) != digest for path, digest in before.items()):
        found.append("input modified")
    if set(after) - set(before):
        found.append("partial output")
    lines = err.strip().splitlines()
    one_line = bool(lines) and (not lines[-1].startswith("tinyrank: error:") or len(lines) == 1)
    if process.returncode == 2 and not (one_line and re.search(expected, lines[-1])):
        found.append("misleading message")
    if leaked(str(root)):
        found.append("leaked process")
    return found or ["clean"]


def probe_cli(work: Path, keras: bool = True) -> dict[str, Any]:
    (work / "template").mkdir(parents=True)
    template = bad_inputs.make_workspace(work / "template")
    cases = dict(bad_inputs.CASES)
    if keras:
        bad_inputs.keras_inputs(template)
        cases.update(KERAS_CASES)
    outcomes: dict[str, list[str]] = {}
    for number, (name, (argv, expected)) in enumerate(cases.items()):
        root = Path(shutil.copytree(template, work / f"case{number}"))
        outcomes[name] = classify_cli_case(root, argv, expected)
        shutil.rmtree(root, ignore_errors=True)
    counts = Counter(kind for kinds in outcomes.values() for kind in kinds)
    failing = {name: kinds for name, kinds in outcomes.items() if kinds != ["clean"]}
    return {"cases": len(cases), "counts": dict(counts), "failing": failing}


def fuzz_worker(seed: int, mutants: int, seconds: float) -> dict[str, Any]:
    """The mutation loop (run in a child by `probe_fuzz`, so a segfault is counted, not fatal)."""
    rng = random.Random(seed)
    seeds = [p.read_bytes() for p in sorted(tflite_fuzz.SEEDS.glob("*.tflite"))]
    tally: Counter = Counter()
    crashes: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    for _ in range(mutants):
        if time.monotonic() > deadline:
            break
        result = tflite_fuzz.outcome(tflite_fuzz.mutant(rng.choice(seeds), rng))
        if result.startswith("crash"):  # "crash: ExceptionType: message"
            kind = result.split(":")[1].strip()
            crashes[kind] = crashes.get(kind, 0) + 1
            result = "crash"
        tally[result] += 1
    return {"tried": sum(tally.values()), **dict(tally), "crash_kinds": crashes}


def probe_fuzz(mutants: int, seconds: float) -> dict[str, Any]:
    code = (
        "import json, sys; from benchmarks.bench_robustness import fuzz_worker; "
        f"print(json.dumps(fuzz_worker({FUZZ_SEED}, {mutants}, {seconds})))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 300
    )
    if process.returncode != 0:
        died = "segfault" if process.returncode == -signal.SIGSEGV else f"exit {process.returncode}"
        return {"seed": FUZZ_SEED, "worker": died, "segfaults": int(died == "segfault")}
    result = json.loads(process.stdout.strip().splitlines()[-1])
    return {"seed": FUZZ_SEED, "segfaults": 0, **result}


def _accepted_mutants(count: int, seed: int) -> list[bytes]:
    """The first `count` accepted mutants whose weights file differs from every seed's."""
    rng = random.Random(seed)
    seeds = [p.read_bytes() for p in sorted(tflite_fuzz.SEEDS.glob("*.tflite"))]
    originals = {tflite_fuzz.compile_model(s)[1]["model_weights.c"] for s in seeds}
    found: list[bytes] = []
    for _ in range(20 * count + 200):
        data = tflite_fuzz.mutant(rng.choice(seeds), rng)
        if tflite_fuzz.outcome(data) == "accepted":
            if tflite_fuzz.compile_model(data)[1]["model_weights.c"] not in originals:
                found.append(data)
        if len(found) == count:
            break
    return found


def probe_accepted(count: int, work: Path) -> dict[str, Any]:
    """TFLite Micro's arena sizing and the sanitized C, on accepted mutants."""
    from toolchain.errors import TinyrankError
    from toolchain.oracle import arena_usage

    mutants = _accepted_mutants(count, FUZZ_SEED + 1)
    arena: Counter = Counter()
    findings: list[str] = []
    for number, data in enumerate(mutants):
        try:
            arena_usage(data)
            arena["sized"] += 1
        except TinyrankError:
            arena["clean error"] += 1
        except Exception as exc:  # noqa: BLE001 - counted, not fatal
            arena[f"crash: {type(exc).__name__}"] += 1
        model, files = tflite_fuzz.compile_model(data)
        try:
            tflite_fuzz.run_sanitized(model, files, work / f"sanitized{number}")
        except TinyrankError as exc:
            findings.append(str(exc).splitlines()[0][:200])
    return {"models": len(mutants), "arena_sizing": dict(arena), "sanitizer_findings": findings}


def totals(results: dict[str, Any]) -> dict[str, int]:
    """Each target class summed over the parts (all should be 0)."""
    total = dict.fromkeys(TARGETS, 0)
    for part in ("cli", "serial", "signals"):
        for kind, n in (results.get(part) or {}).get("counts", {}).items():
            if kind in total:
                total[kind] += n
    fuzz = results.get("fuzz") or {}
    total["traceback"] += fuzz.get("crash", 0)
    total["segfault"] += fuzz.get("segfaults", 0)
    accepted = results.get("accepted") or {}
    total["segfault"] += sum(n for k, n in accepted.get("arena_sizing", {}).items() if k.startswith("crash"))
    total["sanitizer finding"] = len(accepted.get("sanitizer_findings", []))
    return total


def _print(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="reliability probe: cases per outcome (target 0 in every class but clean)")
    table.add_column("part")
    table.add_column("cases", justify="right")
    table.add_column("outcomes")
    for part in ("cli", "serial", "signals"):
        if part in results:
            r = results[part]
            table.add_row(
                part, str(r["cases"]), ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
            )
    if "fuzz" in results:
        f = results["fuzz"]
        kinds = ", ".join(f"{k} {v}" for k, v in f.get("crash_kinds", {}).items()) or "no crash"
        table.add_row(
            "fuzz",
            str(f.get("tried", "-")),
            f"accepted {f.get('accepted', 0)}, refused {f.get('refused', 0)}, {kinds}",
        )
    if "accepted" in results:
        a = results["accepted"]
        arena = ", ".join(f"{k} {v}" for k, v in a["arena_sizing"].items())
        table.add_row(
            "accepted mutants",
            str(a["models"]),
            f"{arena}; sanitizer findings {len(a['sanitizer_findings'])}",
        )
    table.add_row("TOTAL", "", ", ".join(f"{k} {v}" for k, v in results["totals"].items()))
    Console().print(table)


def run(out_dir: str | Path, quick: bool = False, signals: bool = True) -> dict[str, Any]:
    """The whole probe (`quick`: no Keras cases, fewer mutants); writes `out_dir/bench_robustness.json`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
        work = Path(tmp)
        results["cli"] = probe_cli(work / "cli", keras=not quick)
        results["fuzz"] = probe_fuzz(mutants=1000 if quick else 6000, seconds=60 if quick else 300)
        results["accepted"] = probe_accepted(3 if quick else 12, work / "accepted")
        results["serial"] = probe_serial()
        if signals and shutil.which("qemu-system-arm"):
            results["signals"] = probe_signals(work / "signals")
    results["totals"] = totals(results)
    write_json_report(out / "bench_robustness.json", results)
    _print(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_robustness", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_robustness"))
    parser.add_argument("--quick", action="store_true", help="no Keras cases, 1000 mutants")
    parser.add_argument("--no-signals", action="store_true", help="skip the QEMU signal cases")
    args = parser.parse_args()
    os.environ.setdefault("COLUMNS", "200")
    run(args.out, quick=args.quick, signals=not args.no_signals)


if __name__ == "__main__":
    main()
