"""Terminal output that reads well everywhere: live on a terminal, plain lines in files and CI logs.

Every stage prints through `make_console()`: when stdout (or stderr) is not a terminal, or
`NO_COLOR` is set (https://no-color.org), it writes no escape codes at all (no colour, no
bold, no cursor movement) and no carriage returns. Rich alone keeps bold under NO_COLOR and
redraws progress bars with escape codes, so this is decided here once.

`FitProgress` is the one progress display for Keras training: a live bar on a terminal, one
line per epoch elsewhere (Keras' own bar writes carriage returns and escapes into log files).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

PLAIN_WIDTH = 120  # tables in logs and CI, where there is no terminal to ask


def plain_output(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stdout) must get plain text: not a terminal, NO_COLOR, or TERM=dumb."""
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR", "") != "":
        return True
    if os.environ.get("TERM") == "dumb":
        return True
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def make_console(stderr: bool = False) -> Any:
    """A rich Console for stdout (or stderr) that writes no escape codes when the output must be plain."""
    from rich.console import Console

    if plain_output(sys.stderr if stderr else sys.stdout):
        # Plain text is read in logs and pasted: never break a line (a path) to fit 80 columns.
        width = int(os.environ.get("COLUMNS", "0") or 0) or PLAIN_WIDTH
        return Console(
            stderr=stderr,
            color_system=None,
            force_terminal=False,
            highlight=False,
            soft_wrap=True,
            width=width,
        )
    return Console(stderr=stderr)


def progress_bar(console: Any = None, transient: bool = True) -> Any:
    """A rich Progress that draws only on a live terminal (disabled, and silent, elsewhere)."""
    from rich.progress import Progress

    console = console or make_console(stderr=True)
    return Progress(console=console, transient=transient, disable=not console.is_terminal)


def fit_progress(epochs: int, label: str = "training") -> Any:
    """A Keras callback showing training progress: a live bar on a terminal, else a line per epoch.

    Pass it in `callbacks=` and fit with `verbose=0`, so Keras prints nothing of its own.
    """
    import keras

    class FitProgress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.console = make_console(stderr=False)
            self.live = self.console.is_terminal
            self.progress: Any = None
            self.task: Any = None
            self.started = 0.0

        def on_train_begin(self, logs=None) -> None:
            self.started = time.perf_counter()
            if self.live:
                self.progress = progress_bar(self.console, transient=False)
                self.progress.start()
                self.task = self.progress.add_task(label, total=epochs)

        def on_epoch_end(self, epoch, logs=None) -> None:
            metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items() if _is_number(v))
            if self.progress is not None:
                self.progress.update(self.task, advance=1, description=f"{label}: {metrics}")
            else:
                seconds = time.perf_counter() - self.started
                print(f"{label}: epoch {epoch + 1}/{epochs}: {metrics} ({seconds:.0f} s)", flush=True)

        def on_train_end(self, logs=None) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return FitProgress()


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
