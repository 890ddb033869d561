"""Fuzzing the `.tflite` reader and the codegen checks: a hostile model gets a clean error, never a crash.

A seeded mutation loop (tests/helpers/tflite_fuzz.py) edits the small models of
tests/fuzz/seeds/ field by field and byte by byte. Every mutant must either be refused
with a TinyrankError or compile to C that runs clean under AddressSanitizer and
UndefinedBehaviorSanitizer. tests/fuzz/corpus/ keeps the mutants that once crashed, so
they are replayed on every run whatever the loop draws.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import tflite_fuzz
from toolchain.errors import TinyrankError

FUZZ_SEED = 20261205
FUZZ_MUTANTS = 3000
FUZZ_SECONDS = 12.0  # the loop stops at whichever comes first
SANITIZED_MODELS = 3


def _seeds() -> list[bytes]:
    seeds = [p.read_bytes() for p in sorted(tflite_fuzz.SEEDS.glob("*.tflite"))]
    assert len(seeds) >= 4, "tests/fuzz/seeds/ lost its models"
    return seeds


@pytest.mark.parametrize("path", sorted(tflite_fuzz.CORPUS.glob("*.tflite")), ids=lambda p: p.stem)
def test_saved_reproducers_are_refused_cleanly(path: Path):
    assert tflite_fuzz.outcome(path.read_bytes()) == "refused"


def test_seeds_are_accepted():
    assert [tflite_fuzz.outcome(seed) for seed in _seeds()] == ["accepted"] * len(_seeds())


def test_mutated_models_never_crash(tmp_path: Path):
    rng = random.Random(FUZZ_SEED)
    seeds = _seeds()
    tally = {"accepted": 0, "refused": 0}
    deadline = time.monotonic() + FUZZ_SECONDS
    for number in range(FUZZ_MUTANTS):
        if time.monotonic() > deadline:
            break
        data = tflite_fuzz.mutant(rng.choice(seeds), rng)
        result = tflite_fuzz.outcome(data)
        if result.startswith("crash"):
            reproducer = tmp_path / f"crash-{number}.tflite"
            reproducer.write_bytes(data)
            pytest.fail(f"mutant {number} (seed {FUZZ_SEED}): {result}; saved as {reproducer}")
        tally[result] += 1
    assert tally["refused"] > 100 and tally["accepted"] > 100, tally  # the mutations reach both sides


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_accepted_mutants_run_clean_under_sanitizers(tmp_path: Path):
    """The first accepted mutants whose C differs from their seed's, compiled with ASan and UBSan."""
    rng = random.Random(FUZZ_SEED + 1)
    seeds = _seeds()
    originals = {tflite_fuzz.compile_model(seed)[1]["model_weights.c"] for seed in seeds}
    checked = 0
    for number in range(2000):
        data = tflite_fuzz.mutant(rng.choice(seeds), rng)
        try:
            model, files = tflite_fuzz.compile_model(data)
        except TinyrankError:
            continue
        if files["model_weights.c"] in originals:
            continue
        try:
            tflite_fuzz.run_sanitized(model, files, tmp_path / str(number))
        except TinyrankError as exc:
            (tmp_path / f"sanitizer-{number}.tflite").write_bytes(data)
            pytest.fail(f"mutant {number}: {exc}")
        checked += 1
        if checked == SANITIZED_MODELS:
            return
    pytest.fail(f"only {checked} accepted mutants differed from their seeds")


ATTACKS = (b"*/ #error injected /*", b"\n#error x\n", b'??/\n"', b"\\\n*/")


def test_hostile_tensor_names_stay_inside_comments(tmp_path: Path):
    """Names planted in every tensor compile as plain comments: no injected line reaches the compiler."""
    data = bytearray((tflite_fuzz.SEEDS / "mlp.tflite").read_bytes())
    _, sub = tflite_fuzz._model(data)
    for i in range(sub.TensorsLength()):
        tensor, attack = sub.Tensors(i), ATTACKS[i % len(ATTACKS)]
        offset = tensor._tab.Offset(10)
        start, length = tensor._tab.Vector(offset), tensor._tab.VectorLen(offset)
        data[start : start + length] = (attack * (length // len(attack) + 1))[:length]
    model, files = tflite_fuzz.compile_model(bytes(data))
    code = "".join(line.split("/*")[0] for text in files.values() for line in text.splitlines())
    assert "#error" not in code
    if shutil.which("gcc") is not None:
        tflite_fuzz.run_sanitized(model, files, tmp_path, rows=1)


def test_tflm_crash_while_sizing_the_arena_is_a_clean_error():
    """TFLite Micro segfaults on this mutant; sizing runs in a child, so tinyrank reports it and lives on."""
    from toolchain.errors import ModelError
    from toolchain.oracle import arena_usage

    crasher = tflite_fuzz.CORPUS.parent / "tflm_crash" / "segv-arena-sizing.tflite"
    with pytest.raises(ModelError, match=r"TFLite Micro crashed \(SIGSEGV\)"):
        arena_usage(crasher.read_bytes())
    assert arena_usage((tflite_fuzz.SEEDS / "mlp.tflite").read_bytes()).total > 0
