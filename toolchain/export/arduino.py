"""`tinyrank export --arduino`: the model as an Arduino library (1.5 format, recursive layout) in a zip.

The zip holds one folder, the library, as "Add .ZIP Library" and `arduino-cli lib install
--zip-path` expect:

    <name>/library.properties        metadata (name, version, architectures, includes, ...)
    <name>/README.md, keywords.txt   the C API in five lines, install steps; IDE colouring
    <name>/src/<name>.h              the one public header (the IDE's "Include Library" adds it)
    <name>/src/<name>/               the model and its kernels, compiled recursively
    <name>/examples/<name>_demo/     <name>_demo.ino and sample.h (a stored test sample)
    <name>/extras/model_info.json    what codegen recorded about the model

Entries carry a fixed timestamp, so the same model always gives the same zip bytes.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from toolchain.errors import TinyrankError
from toolchain.export.library import ModelLibrary, model_tree
from toolchain.export.render import render
from toolchain.fileio import atomic_write_bytes

# Arduino cores for 32-bit Arm Cortex-M built with GCC and newlib, where const data stays in flash.
ARCHITECTURES = (
    "mbed",
    "mbed_nano",
    "mbed_rp2040",
    "mbed_portenta",
    "mbed_nicla",
    "mbed_giga",
    "samd",
    "renesas_uno",
    "rp2040",
    "stm32",
)
REPEAT_MS = 5000
ZIP_TIMESTAMP = (2024, 1, 1, 0, 0, 0)


def sketch_name(lib: ModelLibrary) -> str:
    return f"{lib.name}_demo"


def arduino_tree(lib: ModelLibrary) -> dict[str, bytes]:
    """Every file of the library, by path inside the library folder."""
    sketch = sketch_name(lib)
    context = {
        "architectures": ARCHITECTURES,
        "sketch": sketch,
        "repeat_ms": REPEAT_MS,
        "arduino": True,
        "classes": bool(lib.labels) or lib.sample_label is not None,
    }
    tree = model_tree(lib)
    tree["library.properties"] = render("library.properties.j2", lib, **context).encode()
    tree["README.md"] = render("README.md.j2", lib, **context).encode()
    tree["keywords.txt"] = render("keywords.txt.j2", lib, **context).encode()
    tree[f"examples/{sketch}/{sketch}.ino"] = render("sketch.ino.j2", lib, **context).encode()
    tree[f"examples/{sketch}/sample.h"] = render("sample.h.j2", lib, **context).encode()
    return tree


def zip_bytes(root: str, tree: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree):
            entry = zipfile.ZipInfo(f"{root}/{path}", date_time=ZIP_TIMESTAMP)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, tree[path])
    return buffer.getvalue()


def export_arduino(lib: ModelLibrary, out_zip: str | Path) -> dict:
    """Write the library zip atomically; returns what went into it."""
    out = Path(out_zip)
    if out.suffix.lower() != ".zip":
        raise TinyrankError(
            f"--arduino {out}: the Arduino IDE installs libraries from a .zip file; name it *.zip"
        )
    if out.is_dir():
        raise TinyrankError(f"--arduino {out}: is a folder; give a .zip file name")
    tree = arduino_tree(lib)
    atomic_write_bytes(out, zip_bytes(lib.name, tree))
    return {
        "format": "arduino",
        "zip": str(out),
        "name": lib.name,
        "version": lib.version,
        "example": f"examples/{sketch_name(lib)}/{sketch_name(lib)}.ino",
        "architectures": list(ARCHITECTURES),
        "files": sorted(f"{lib.name}/{p}" for p in tree),
    }
