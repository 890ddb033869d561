"""Bad command lines and the workspace they run in: the cases of the CLI bad-input suite.

Shared by tests/test_cli_bad_inputs.py (in process, every case must fail cleanly) and
benchmarks/bench_robustness.py (each case in a child process, outcomes counted by class).
Each case is `name: (argv, pattern the error line must match)`; argv paths are relative to
the workspace `make_workspace` fills, and `boards/` there is the user boards folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from tests.helpers import tflite_fuzz
from toolchain.codegen import generate

# name: (argv, what the error line must say)
CASES: dict[str, tuple[list[str], str]] = {
    # outputs naming an input
    "report over the model": (
        ["codegen", "mlp.tflite", "--out", "gen2", "--report", "mlp.tflite"],
        "--report mlp.tflite: is an input",
    ),
    "plot over the data": (
        ["compress", "m.keras", "--data", "d.npz", "--out", "s.keras", "--pareto", "--plot", "d.npz"],
        "--plot d.npz: is an input",
    ),
    "report over model_info": (
        ["build", "gen", "--board", "qemu_m4", "--project-only", "--report", "gen/model_info.json"],
        "--report gen/model_info.json: is an input",
    ),
    "convert out over the data": (
        ["convert", "m.keras", "--data", "d.npz", "--out", "d.npz"],
        "--out d.npz: is an input",
    ),
    "bench plot over a source": (
        ["bench", "gen", "--board", "qemu_m4", "--plot", "gen/model.c"],
        "--plot gen/model.c: is an input",
    ),
    "two outputs on one path": (
        ["compress", "m.keras", "--data", "d.npz", "--out", "s.keras", "--pareto", "--plot", "s.keras"],
        "also given as",
    ),
    # outputs that cannot be written
    "file as parent of --out": (["codegen", "mlp.tflite", "--out", "d.npz/gen"], "d.npz is a file"),
    "file as parent of --report": (
        ["codegen", "mlp.tflite", "--out", "gen2", "--report", "mlp.tflite/r.json"],
        "mlp.tflite is a file",
    ),
    "folder as --report": (
        ["codegen", "mlp.tflite", "--out", "gen2", "--report", "gen"],
        "is a folder; expected a file name",
    ),
    "file as --out folder": (["codegen", "mlp.tflite", "--out", "d.npz"], "is a file; expected a folder"),
    # numbers
    "negative seed": (
        ["convert", "m.keras", "--data", "d.npz", "--out", "x.tflite", "--seed", "-1"],
        "--seed: -1 must be at least 0",
    ),
    "negative samples": (
        ["convert", "m.keras", "--data", "d.npz", "--out", "x.tflite", "--samples", "-5"],
        "--samples: -5 must be at least 1",
    ),
    "verify samples -1": (
        ["verify", "mlp.tflite", "--data", "d.npz", "--samples", "-1"],
        "--samples: -1 must be at least 0",
    ),
    "negative timeout": (
        ["bench", "gen", "--board", "qemu_m4", "--timeout", "-1"],
        "--timeout: -1 must be above 0",
    ),
    "nan timeout": (["bench", "gen", "--board", "qemu_m4", "--timeout", "nan"], "not a finite number"),
    "zero runs": (["bench", "gen", "--board", "qemu_m4", "--runs", "0"], "--runs: 0 must be at least 1"),
    "energy above 1": (
        ["compress", "m.keras", "--data", "d.npz", "--out", "s.keras", "--energy", "1.5"],
        "--energy: 1.5 must be at most 1",
    ),
    "target-params above 1": (
        ["compress", "m.keras", "--data", "d.npz", "--out", "s.keras", "--target-params", "1.5"],
        "--target-params: 1.5 must be at most 1",
    ),
    "negative epochs": (
        ["compress", "m.keras", "--data", "d.npz", "--out", "s.keras", "--finetune-epochs", "-1"],
        "--finetune-epochs: -1 must be at least 0",
    ),
    "deploy target 0": (
        ["deploy", "m.keras", "--data", "d.npz", "--out", "dep", "--target-params", "0"],
        "--target-params: 0 must be above 0",
    ),
    # data
    "empty x_test": (["verify", "mlp.tflite", "--data", "empty_test.npz"], "'x_test' is empty"),
    "0-d x_train": (["verify", "mlp.tflite", "--data", "scalar.npz"], "single number"),
    "non-npy member": (
        ["verify", "mlp.tflite", "--data", "text_member.npz"],
        "'notes.txt' is not a .npy array",
    ),
    ".npy named .npz": (["verify", "mlp.tflite", "--data", "array.npz"], "not a readable .npz archive"),
    "complex x_train": (["verify", "mlp.tflite", "--data", "complex.npz"], "expected real numbers"),
    "4x4x1 for 16 inputs": (
        ["verify", "mlp.tflite", "--data", "image.npz"],
        "shape \\(4, 4, 1\\); the model mlp.tflite expects \\(16,\\)",
    ),
    "data is a folder": (["verify", "mlp.tflite", "--data", "gen"], "is a folder; expected an .npz file"),
    # model files
    "folder to codegen": (["codegen", "gen", "--out", "gen2"], "is a folder; expected a .tflite file"),
    "empty keras": (["compress", "empty.keras", "--data", "d.npz", "--out", "s.keras"], "is empty"),
    "random keras": (
        ["compress", "random.keras", "--data", "d.npz", "--out", "s.keras"],
        "not a .keras archive",
    ),
    "hostile model": (["codegen", "hostile.tflite", "--out", "gen2"], "hostile.tflite: tensor 0 .*scale"),
    # model_info.json edited by hand
    "arena is text": (
        ["build", "edited_arena", "--board", "qemu_m4", "--project-only", "--out", "fw"],
        "'arena_bytes' is 'lots'",
    ),
    "negative shape": (
        ["build", "edited_shape", "--board", "qemu_m4", "--project-only", "--out", "fw"],
        "'inputs\\[0\\].shape'",
    ),
    "prefix injection": (
        ["build", "edited_prefix", "--board", "qemu_m4", "--project-only", "--out", "fw"],
        "key 'prefix'",
    ),
    # boards and names
    "board as a path": (
        ["build", "gen", "--board", "../../../tmp/x", "--project-only"],
        "is not a name such as qemu_m4",
    ),
    "unknown board": (["bench", "gen", "--board", "nope"], "unknown board 'nope'"),
    "non-UTF-8 board": (
        ["build", "gen", "--board", "latin1", "--project-only", "--out", "fw"],
        "not UTF-8 text",
    ),
    "prefix with newline": (
        ["codegen", "mlp.tflite", "--out", "gen2", "--prefix", "kws\n"],
        "--prefix: must be a lower-case C identifier",
    ),
    "prefix upper case": (
        ["codegen", "mlp.tflite", "--out", "gen2", "--prefix", "KWS"],
        "--prefix: must be a lower-case C identifier",
    ),
    # deploy checks every option before the first stage
    "deploy bad method": (
        ["deploy", "m.keras", "--data", "d.npz", "--out", "dep", "--method", "magic"],
        "invalid choice: 'magic'",
    ),
    "deploy bad prefix": (
        ["deploy", "m.keras", "--data", "d.npz", "--out", "dep", "--prefix", "9x"],
        "--prefix: must be a lower-case C identifier",
    ),
    "deploy bad board": (
        ["deploy", "m.keras", "--data", "d.npz", "--out", "dep", "--board", "../boards/x"],
        "is not a name such as qemu_m4",
    ),
    "deploy bad data": (
        ["deploy", "m.keras", "--data", "complex.npz", "--out", "dep"],
        "expected real numbers",
    ),
    "deploy empty model": (["deploy", "empty.keras", "--data", "d.npz", "--out", "dep"], "is empty"),
    "deploy out over input": (
        ["deploy", "dep_in/model.tflite", "--data", "d.npz", "--out", "dep_in"],
        "dep_in/model.tflite: is an input",
    ),
}


def make_workspace(root: Path) -> Path:
    """The inputs every case works on: a model, data sets good and bad, generated C, edited copies."""
    shutil.copy(tflite_fuzz.SEEDS / "mlp.tflite", root / "mlp.tflite")
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    np.savez(root / "d.npz", x_train=x, y_train=np.arange(8) % 4)
    np.savez(
        root / "empty_test.npz", x_train=x, y_train=np.zeros(8, int), x_test=x[:0], y_test=np.zeros(0, int)
    )
    np.savez(root / "scalar.npz", x_train=np.float32(3.0))
    np.savez(root / "complex.npz", x_train=x.astype(np.complex64))
    np.savez(root / "image.npz", x_train=x.reshape(8, 4, 4, 1))
    np.save(root / "array.npy", x)
    (root / "array.npy").rename(root / "array.npz")
    shutil.copy(root / "d.npz", root / "text_member.npz")
    with zipfile.ZipFile(root / "text_member.npz", "a") as archive:
        archive.writestr("notes.txt", "hello")
    (root / "m.keras").write_bytes(b"PK placeholder")
    (root / "empty.keras").write_bytes(b"")
    (root / "random.keras").write_bytes(os.urandom(300))
    (root / "hostile.tflite").write_bytes(sorted(tflite_fuzz.CORPUS.glob("*.tflite"))[0].read_bytes())
    generate(root / "mlp.tflite", root / "gen", tflm_arena=False)
    for name, edit in {
        "edited_arena": lambda info: info.update(arena_bytes="lots"),
        "edited_shape": lambda info: info["inputs"][0].update(shape=[-1, 16]),
        "edited_prefix": lambda info: info.update(prefix="tr\n#error x"),
    }.items():
        shutil.copytree(root / "gen", root / name)
        info = json.loads((root / name / "model_info.json").read_text())
        edit(info)
        (root / name / "model_info.json").write_text(json.dumps(info))
    (root / "boards").mkdir()
    (root / "boards" / "latin1.toml").write_bytes("name = 'Carte \xe9lectronique'\n".encode("latin-1"))
    (root / "dep_in").mkdir()
    shutil.copy(root / "mlp.tflite", root / "dep_in" / "model.tflite")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under `root`, with a hash of each file: equal before and after a case."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def keras_inputs(root: Path) -> None:
    """Keras models and data sets that used to crash TensorFlow or mislead: NaN weights, a
    fixed-batch LSTM, labels outside the classes, image data for a flat model."""
    import keras

    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    weights = dense.get_weights()
    weights[0][0, 0] = np.nan
    dense.set_weights(weights)
    dense.save(root / "nan.keras")
    lstm = keras.Sequential([keras.Input((5, 4), batch_size=1), keras.layers.LSTM(3), keras.layers.Dense(2)])
    lstm.save(root / "lstm.keras")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save(root / "ok.keras")
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.savez(root / "flat.npz", x_train=x, y_train=np.array([0, 1, 2, 0, 1, 7]))
    np.savez(root / "seq.npz", x_train=np.zeros((6, 5, 4), np.float32), y_train=np.zeros(6, int))
    np.savez(root / "image4.npz", x_train=x.reshape(6, 2, 2, 1), y_train=np.zeros(6, int))
