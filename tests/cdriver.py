"""Host C programs that exercise the kernels' arithmetic directly, case by case.

Several tests check a C helper against a Python model of TFLite Micro's integer maths:
they compile a small driver against `firmware_templates/kernels/` (warning-free, under
UBSan, so an overflow fails loudly) and feed it one case per line on stdin.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

KERNELS = Path(__file__).resolve().parent.parent / "firmware_templates" / "kernels"


def build_driver(source: str, folder: Path, name: str = "driver") -> Path:
    """Compile `source` (a whole C program) with the kernel headers on the include path."""
    main = folder / f"{name}.c"
    main.write_text(source)
    exe = folder / name
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsanitize=undefined",
            "-fno-sanitize-recover=all",
            f"-I{KERNELS}",
            str(main),
            "-o",
            str(exe),
        ],
        check=True,
        timeout=120,
    )
    return exe


def run_driver(exe: Path, cases: Iterable[Iterable[object]]) -> list[str]:
    """Feed one case per line (values separated by spaces); return the driver's output lines."""
    text = "".join(" ".join(map(str, case)) + "\n" for case in cases)
    return subprocess.run(
        [str(exe)], input=text, capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
