"""What every exported library holds: the generated model, its kernels, a name and a test sample.

An export reads a codegen output folder (never changes it) and lays the model out as a
library tree, `{relative path: bytes}`, that the Arduino and PlatformIO writers package:

    src/<name>.h            the public header (includes the model's C API)
    src/<name>/...          model.h, model.c, model_weights.c and the kernels it uses
    examples/<name>_demo/   a sketch running the model on a stored sample (Arduino only)

Strings that come from the model or the user (names, labels) are checked against a strict
pattern or escaped before they reach C, properties files or JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolchain.errors import DataError, TinyrankError

LIBRARY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")  # also a C identifier and a folder name
VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
MODEL_FILES = ("model.h", "model.c", "model_weights.c")
LOCAL_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a file in the model folder, no path
LOCAL_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([A-Za-z0-9_][A-Za-z0-9_.-]*)"', re.M)
LABEL_MAX_CHARS = 40


@dataclass
class ModelLibrary:
    """The generated model as a library: its files and what the example needs to run it."""

    name: str
    version: str
    prefix: str
    info: dict
    files: dict[str, bytes]  # file name in the model folder -> content
    sample: list[int]  # int8 input 0 of the stored test sample
    sample_note: str  # where the sample came from, for the sketch's comments
    sample_label: int | None = None
    labels: list[str] = field(default_factory=list)

    @property
    def header(self) -> str:
        return f"{self.name}.h"

    @property
    def macro(self) -> str:
        return self.prefix.upper()


def read_generated_model(gen_dir: str | Path) -> tuple[dict, dict[str, bytes]]:
    """model_info.json and the C sources of a codegen output folder (firmware projects skipped)."""
    from toolchain.firmware.project import read_model_info

    gen = Path(gen_dir)
    if not gen.is_dir():
        raise TinyrankError(f"{gen}: no such folder; give the output folder of `tinyrank codegen`")
    info = read_model_info(gen)
    for key in ("prefix", "inputs", "outputs"):
        if key not in info:
            raise TinyrankError(f"{gen / 'model_info.json'}: missing key '{key}'")
    prefix = str(info["prefix"])
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,31}", prefix):
        raise TinyrankError(f"{gen / 'model_info.json'}: prefix '{prefix[:40]}' is not a C identifier")
    return info, shipped_files(gen, info)


def shipped_files(gen: Path, info: dict) -> dict[str, bytes]:
    """The model's own files and the kernel sources it uses, with every local header they include.

    The list comes from model_info.json's `kernels` and the `#include "..."` lines, not from the
    folder's contents: a folder reused across models keeps kernels an earlier model needed, and
    shipping those would compile code the model never calls.
    """
    kernels = info.get("kernels", [])
    if not isinstance(kernels, list) or not all(
        isinstance(k, str) and LOCAL_FILE.fullmatch(k) and k.endswith(".c") for k in kernels
    ):
        raise TinyrankError(f"{gen / 'model_info.json'}: 'kernels' must be a list of .c file names")
    files: dict[str, bytes] = {}
    pending = [*MODEL_FILES, *kernels]
    while pending:
        name = pending.pop()
        if name in files:
            continue
        path = gen / name
        if not path.is_file():
            needed_by = "model_info.json's kernels" if name in kernels else "an #include"
            raise TinyrankError(
                f"{path}: missing ({needed_by} names it); regenerate the folder with `tinyrank codegen`"
            )
        files[name] = path.read_bytes()
        text = files[name].decode("utf-8", errors="replace")
        pending.extend(h for h in LOCAL_INCLUDE.findall(text) if h not in files)
    return dict(sorted(files.items()))


def default_name(info: dict) -> str:
    """`tinyrank_<prefix>` for a model generated with its own --prefix, else from the .tflite file name."""
    prefix = str(info.get("prefix", "tr"))
    stem = Path(str(info.get("tflite", "model"))).stem
    base = prefix if prefix != "tr" else stem
    base = re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_") or "model"
    return f"tinyrank_{base}"[:63]


def check_name(name: str) -> str:
    if not LIBRARY_NAME.match(name):
        raise TinyrankError(
            f"--name '{name[:70]}': a library name here is a letter then letters, digits or '_' "
            "(at most 63; it is also the header, folder and C identifier)"
        )
    if name.lower().startswith("arduino"):
        raise TinyrankError(
            f"--name '{name}': names starting with 'Arduino' are reserved for Arduino's own libraries"
        )
    return name


def check_version(version: str) -> str:
    if not VERSION.match(version):
        raise TinyrankError(f"--lib-version '{version[:40]}': use MAJOR.MINOR.PATCH, e.g. 1.0.0")
    return version


def parse_labels(text: str | None, outputs: int) -> list[str]:
    """Class names from `a,b,c` or from a file with one per line; as many as the model's outputs."""
    if not text:
        return []
    path = Path(text)
    raw = path.read_text(encoding="utf-8").splitlines() if path.is_file() else text.split(",")
    labels = [line.strip() for line in raw if line.strip()]
    if len(labels) != outputs:
        raise TinyrankError(
            f"--labels: {len(labels)} labels given but output 0 of the model has {outputs} values"
        )
    for label in labels:
        if len(label) > LABEL_MAX_CHARS or not label.isprintable():
            raise TinyrankError(
                f"--labels: '{label[:50]}' must be printable and at most {LABEL_MAX_CHARS} characters"
            )
    return labels


def quantize(values: np.ndarray, scale: float, zero_point: int) -> list[int]:
    """Real values to the model's int8 input, rounded exactly as TFLite Micro's QUANTIZE rounds."""
    from toolchain.oracle import quantize_input

    q = quantize_input(np.asarray(values, dtype=np.float32).reshape(1, -1), scale, zero_point)
    return [int(v) for v in np.asarray(q).reshape(-1)]


def pick_sample(info: dict, data: str | Path | None, index: int) -> tuple[list[int], str, int | None]:
    """(int8 input, description, class label or None): sample `index` of x_test (else x_train)."""
    from toolchain.data import class_labels, load_dataset

    spec = info["inputs"][0]
    size = int(spec["size"])
    if data is None:
        return [int(spec["zero_point"])] * size, "no --data given: an all-zero input", None
    dataset = load_dataset(data)
    x, y = dataset.eval_x, dataset.eval_y
    key = "x_test" if dataset.x_test is not None else "x_train"
    if not 0 <= index < len(x):
        raise DataError(f"--sample {index}: {data} has {len(x)} samples in '{key}'")
    sample = np.asarray(x[index])
    if sample.size != size:
        raise DataError(
            f"{data}: '{key}' samples hold {sample.size} values but the model's input 0 takes {size}"
        )
    labels = class_labels(y)
    label = int(labels[index]) if labels is not None else None
    return (
        quantize(sample, float(spec["scale"]), int(spec["zero_point"])),
        f"{key}[{index}] of {Path(data).name}",
        label,
    )


def model_library(
    gen_dir: str | Path,
    *,
    name: str | None = None,
    version: str = "1.0.0",
    data: str | Path | None = None,
    sample: int = 0,
    labels: str | None = None,
) -> ModelLibrary:
    """Read and check everything an export needs, before any file is written."""
    info, files = read_generated_model(gen_dir)
    name = check_name(name or default_name(info))
    version = check_version(version)
    outputs = int(info["outputs"][0]["size"]) if info["outputs"] else 0
    label_names = parse_labels(labels, outputs)
    values, note, label = pick_sample(info, data, sample)
    if label is not None and outputs and not 0 <= label < outputs:
        label = None
    return ModelLibrary(name, version, str(info["prefix"]), info, files, values, note, label, label_names)


def c_string(text: str) -> str:
    """A C string literal for `text` (printable ASCII kept, everything else escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f'\\x{b:02x}""' for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """Text safe inside a /* */ comment (no comment terminator, no control characters)."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text)).replace("*/", "* /")


def model_tree(lib: ModelLibrary) -> dict[str, bytes]:
    """The sources every library layout shares: public header and the model folder under src/."""
    from toolchain.export.render import render

    tree = {f"src/{lib.name}/{file}": content for file, content in lib.files.items()}
    tree[f"src/{lib.header}"] = render("public_header.h.j2", lib).encode()
    tree["extras/model_info.json"] = (json.dumps(lib.info, indent=2, sort_keys=True) + "\n").encode()
    return tree
