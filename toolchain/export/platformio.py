"""`tinyrank export --platformio-lib`: the model as a PlatformIO library that CMake projects can use too.

    DIR/library.json          PlatformIO manifest: `lib_deps = file://DIR` pulls the model in
    DIR/CMakeLists.txt        add_subdirectory(DIR) for a plain CMake project
    DIR/<name>.cmake          one include() line for a Zephyr application (links into `app`)
    DIR/README.md             the C API in five lines
    DIR/src/<name>.h, src/<name>/, extras/model_info.json   as in the Arduino library

DIR is replaced only when it is empty or an earlier export (its library.json says so): a
folder that holds anything else is refused rather than cleared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from toolchain.errors import TinyrankError
from toolchain.export.library import ModelLibrary, model_tree
from toolchain.export.render import render
from toolchain.fileio import atomic_write_bytes

MARKER_KEYWORD = "tinyrank"


def platformio_tree(lib: ModelLibrary) -> dict[str, bytes]:
    sources = sorted(name for name in lib.files if name.endswith(".c"))
    context = {"arduino": False, "sources": sources, "architectures": (), "sketch": "", "repeat_ms": 0}
    tree = model_tree(lib)
    tree["library.json"] = render("library.json.j2", lib, **context).encode()
    tree["CMakeLists.txt"] = render("CMakeLists.txt.j2", lib, **context).encode()
    tree[f"{lib.name}.cmake"] = render("snippet.cmake.j2", lib, **context).encode()
    tree["README.md"] = render("README.md.j2", lib, **context).encode()
    return tree


def _is_earlier_export(folder: Path) -> bool:
    manifest = folder / "library.json"
    try:
        keywords = json.loads(manifest.read_text(encoding="utf-8")).get("keywords", [])
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(keywords, list) and MARKER_KEYWORD in keywords


def check_output_folder(folder: Path, gen_dir: Path) -> None:
    """Refuse a folder that is the model's own, holds it, or holds files of someone else."""
    resolved, gen = folder.resolve(), gen_dir.resolve()
    if resolved == gen or gen.is_relative_to(resolved) or resolved.is_relative_to(gen):
        raise TinyrankError(f"--platformio-lib {folder}: must be outside the codegen folder {gen_dir}")
    if folder.exists() and not folder.is_dir():
        raise TinyrankError(f"--platformio-lib {folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not _is_earlier_export(folder):
        raise TinyrankError(
            f"--platformio-lib {folder}: folder is not empty and was not made by `tinyrank export`; "
            "give a new or empty folder"
        )


def export_platformio(lib: ModelLibrary, folder: str | Path, gen_dir: str | Path) -> dict:
    """Write the library folder; an earlier export there is replaced as a whole."""
    folder = Path(folder)
    check_output_folder(folder, Path(gen_dir))
    tree = platformio_tree(lib)
    if folder.is_dir():
        for child in folder.iterdir():  # an earlier export: drop files the new model no longer has
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for path, content in tree.items():
        atomic_write_bytes(folder / path, content)
    return {
        "format": "platformio",
        "folder": str(folder),
        "name": lib.name,
        "version": lib.version,
        "lib_deps": f"file://{folder.resolve()}",
        "cmake_include": str((folder / f"{lib.name}.cmake").resolve()),
        "files": sorted(tree),
    }
