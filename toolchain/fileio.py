"""Writing outputs without ever losing the user's inputs.

Outputs are written to a temporary file in the same folder and renamed into place, so a
crash or Ctrl-C leaves either the old file or the new one, never half of one; and no
stage may write over the file it read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolchain.errors import TinyrankError


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Read once: reading the umask means setting it, which would race with threads creating files.
_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file + rename in the same folder).

    `mkstemp` creates files readable by their owner only; outputs get the usual mode
    (0666 less the umask) like any file the user writes.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    """Let reports hold numpy scalars and arrays and paths without each stage converting them."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to a JSON report")


def to_json(report: Any) -> str:
    """Serialise a report the way every stage writes it (sorted keys, indented)."""
    return json.dumps(report, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json_report(path: str | os.PathLike, report: dict) -> Path:
    """Write a stage's JSON report atomically."""
    return atomic_write_text(path, to_json(report))


def check_distinct(input_path: str | os.PathLike, output_path: str | os.PathLike) -> None:
    """Refuse to write an output over the input it was made from."""
    src, dst = Path(input_path), Path(output_path)
    same = src.resolve() == dst.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst))
    if same:
        raise TinyrankError(f"output {dst} is the input file; choose another --out so the input is kept")


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Return `path` as a Path, or fail with a line naming what was expected there."""
    p = Path(path)
    if not p.is_file():
        raise TinyrankError(f"{what} {p}: no such file")
    return p


def _protected(inputs: Sequence[str | os.PathLike]) -> set[Path]:
    """The files a stage reads: each input file, and what a generated-model folder holds."""
    files: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files |= {f.resolve() for pattern in ("*.json", "*.c", "*.h") for f in p.glob(pattern)}
        elif p.exists():
            files.add(p.resolve())
    return files


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def check_writable(path: str | os.PathLike, what: str, *, folder: bool = False) -> None:
    """`path` can be created or replaced: every existing ancestor is a writable folder."""
    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        kind = "a folder" if p.is_dir() else "a file"
        raise TinyrankError(f"{what} {p}: is {kind}; expected {'a folder' if folder else 'a file name'}")
    start = p if folder and p.is_dir() else p.parent
    existing = _nearest_existing(start)
    if not existing.is_dir():
        raise TinyrankError(f"{what} {p}: {existing} is a file, so it cannot hold {p.name}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TinyrankError(f"{what} {p}: the folder {existing} is not writable")


def check_paths(
    inputs: Sequence[str | os.PathLike],
    files: dict[str, str | os.PathLike],
    folders: dict[str, str | os.PathLike] | None = None,
) -> None:
    """Before any work: every output can be written and none is, or lies inside, an input.

    `files` and `folders` map an option name (`--report`) to the path it names. An output file
    may not be an input (or a file of an input folder); an output folder may not be an input
    file, nor contain an input it would overwrite.
    """
    protected = _protected(inputs)
    outputs = [(name, Path(p), False) for name, p in files.items() if p is not None]
    outputs += [(name, Path(p), True) for name, p in (folders or {}).items() if p is not None]
    for name, path, folder in outputs:
        check_writable(path, name, folder=folder)
        target = path.resolve()
        if target in protected:
            raise TinyrankError(
                f"{name} {path}: is an input of this command; choose another path so it is kept"
            )
    seen: dict[Path, str] = {}
    for name, path, _folder in outputs:
        if path.resolve() in seen:
            raise TinyrankError(
                f"{name} {path}: also given as {seen[path.resolve()]}; choose distinct outputs"
            )
        seen[path.resolve()] = name
