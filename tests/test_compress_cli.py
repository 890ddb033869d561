"""`tinyrank compress` end to end: outputs, report, and one clear line for each bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from toolchain import cli
from toolchain.data import save_dataset


@pytest.fixture(autouse=True)
def only_compress(monkeypatch):
    """Register only this stage, so these tests do not depend on the other stages' modules."""
    monkeypatch.setattr(cli, "STAGE_MODULES", ("toolchain.compress.cli",))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compress_writes_model_and_report_and_keeps_the_input(digits_mlp, digits_npz, tmp_path, capsys):
    from toolchain.models import load_keras_model

    before = _sha(digits_mlp)
    out, report_path = tmp_path / "small.keras", tmp_path / "r.json"
    code, stdout, err = _run(
        capsys,
        "compress",
        digits_mlp,
        "--data",
        digits_npz,
        "--ranks",
        "dense_1=8,dense_2=6",
        "--finetune-epochs",
        "1",
        "--out",
        out,
        "--report",
        report_path,
    )
    assert code == 0, err
    assert _sha(digits_mlp) == before
    report = json.loads(report_path.read_text())
    assert report["output"] == str(out) and report["params"]["after"] < report["params"]["before"]
    assert "dense_1_u" in stdout and "accuracy, finetuned" in stdout
    small = load_keras_model(out)
    assert small.get_layer("dense_1_u").units == 8 and small.get_layer("dense_2_u").units == 6


def test_pareto_plot_from_the_command_line(digits_mlp, digits_npz, tmp_path, capsys, monkeypatch):
    from toolchain.compress import pipeline

    monkeypatch.setattr(pipeline, "PARETO_FRACTIONS", (1.0, 0.5))  # each point trains two models
    plot = tmp_path / "p.png"
    code, _, err = _run(
        capsys,
        "compress",
        digits_mlp,
        "--data",
        digits_npz,
        "--target-params",
        "0.5",
        "--pareto",
        "--finetune-epochs",
        "1",
        "--plot",
        plot,
        "--out",
        tmp_path / "s.keras",
    )
    assert code == 0, err
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["compress", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "tinyrank compress mlp.keras --data" in text and "--target-params" in text


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--ranks", "dense_1=0"], "layer 'dense_1': rank 0 must be at least 1"),
        (["--ranks", "dense_1=999"], "rank 999 must be in 1..64"),
        (["--ranks", "conv9=4"], "layer 'conv9' does not exist"),
        (["--plot", "x.png"], "--plot draws the --pareto sweep"),
    ],
)
def test_bad_options_exit_2_with_one_line(digits_mlp, digits_npz, tmp_path, capsys, extra, message):
    out = tmp_path / "small.keras"
    code, _, err = _run(capsys, "compress", digits_mlp, "--data", digits_npz, "--out", out, *extra)
    assert code == 2
    assert err.startswith("tinyrank: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_bad_files_exit_2_naming_the_file(digits_mlp, digits_npz, tmp_path, capsys):
    out = tmp_path / "o.keras"
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(digits_mlp.read_bytes()[:500])
    wrong_kind = tmp_path / "model.txt"
    wrong_kind.write_text("x")
    for model in (text, corrupt, wrong_kind, tmp_path / "missing.keras"):
        code, _, err = _run(capsys, "compress", model, "--data", digits_npz, "--out", out)
        assert code == 2 and str(model) in err, err
    assert text.read_text() == "not a model"


def test_bad_data_exit_2_naming_the_key(digits_mlp, tmp_path, capsys):
    out = tmp_path / "o.keras"
    shape = save_dataset(
        tmp_path / "shape.npz", x_train=np.zeros((5, 63), np.float32), y_train=np.zeros(5, np.int64)
    )
    nan = np.zeros((5, 64), np.float32)
    nan[0, 0] = np.inf
    inf = save_dataset(tmp_path / "inf.npz", x_train=nan, y_train=np.zeros(5, np.int64))
    text = save_dataset(tmp_path / "text.npz", x_train=np.array(["a"] * 5), y_train=np.zeros(5, np.int64))
    for data, message in (
        (shape, "'x_train' has samples of shape (63,)"),
        (inf, "NaN or Inf"),
        (text, "dtype"),
    ):
        code, _, err = _run(capsys, "compress", digits_mlp, "--data", data, "--out", out)
        assert code == 2 and message in err, err
    assert not out.exists()


def test_output_over_the_input_is_refused(digits_mlp, digits_npz, capsys):
    before = _sha(digits_mlp)
    code, _, err = _run(capsys, "compress", digits_mlp, "--data", digits_npz, "--out", digits_mlp)
    assert code == 2 and "is an input of this command" in err
    assert _sha(digits_mlp) == before
