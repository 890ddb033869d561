"""Logs that read well everywhere: no escape codes or carriage returns when output is not a terminal or
NO_COLOR is set; a line per epoch for Keras training instead of its progress bar."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolchain.console import fit_progress, make_console, plain_output

ESCAPES = re.compile(r"\x1b|\r")
TINYRANK = [sys.executable, "-m", "toolchain.cli"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _printed(monkeypatch, stream: io.StringIO) -> str:
    monkeypatch.setattr(sys, "stdout", stream)
    make_console().print("[bold red]loud[/bold red] table")
    return stream.getvalue()


def test_terminal_gets_styles_but_pipes_and_no_color_do_not(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert "\x1b[" in _printed(monkeypatch, FakeTerminal())  # the check below could fail
    assert not ESCAPES.search(_printed(monkeypatch, io.StringIO()))
    monkeypatch.setenv("NO_COLOR", "1")
    assert plain_output(FakeTerminal())
    assert _printed(monkeypatch, FakeTerminal()) == "loud table\n"


def test_training_progress_is_one_line_per_epoch_in_logs(capsys):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model.fit(x, np.arange(32) % 2, epochs=3, verbose=0, callbacks=[fit_progress(3, "training")])
    out = capsys.readouterr().out
    assert [line.split(":")[1].strip() for line in out.splitlines()] == [
        "epoch 1/3",
        "epoch 2/3",
        "epoch 3/3",
    ]
    assert "loss" in out and not ESCAPES.search(out)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", TERM="xterm-256color", **extra)
    return env


def _run_in_terminal(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal (so is a TTY) and return everything written."""
    master, slave = pty.openpty()
    with subprocess.Popen(
        command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env, cwd=cwd
    ) as proc:
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        status = proc.wait(timeout=300)
    os.close(master)
    return status, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_stages_write_no_escape_codes_to_pipes_or_under_no_color(digits_mlp, digits_npz, tmp_path):
    repo = Path(__file__).resolve().parent.parent
    small, tflite = tmp_path / "small.keras", tmp_path / "model.tflite"
    for args in (
        ["compress", str(digits_mlp), "--data", str(digits_npz), "--energy", "0.9"]
        + ["--finetune-epochs", "2", "--out", str(small)],
        ["convert", str(small), "--data", str(digits_npz), "--out", str(tflite)],
    ):
        result = subprocess.run(
            TINYRANK + args, capture_output=True, text=True, env=_env(), cwd=repo, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr
        assert not ESCAPES.search(result.stdout + result.stderr), args[0]
        if args[0] == "compress":
            # Two epochs: one in float, the last one int8-aware; each phase reports its own epochs.
            assert "fine-tuning: epoch 1/1" in result.stdout, result.stdout
    status, written = _run_in_terminal(
        TINYRANK + ["codegen", str(tflite), "--out", str(tmp_path / "gen")], _env(NO_COLOR="1"), repo
    )
    assert status == 0, written
    # The terminal itself turns "\n" into "\r\n"; anything else would be the program's doing.
    assert "FULLY_CONNECTED" in written and not ESCAPES.search(written.replace("\r\n", "\n"))
