"""Jinja rendering of the export templates (`firmware_templates/export/`)."""

from __future__ import annotations

from typing import Any

from toolchain.export.library import ModelLibrary, c_comment, c_string
from toolchain.firmware.project import TEMPLATES_DIR

EXPORT_TEMPLATES = TEMPLATES_DIR / "export"


def render(template: str, lib: ModelLibrary, **extra: Any) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(EXPORT_TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["c_string"] = c_string
    env.filters["c_comment"] = c_comment
    info = lib.info
    return env.get_template(template).render(
        lib=lib,
        name=lib.name,
        prefix=lib.prefix,
        PREFIX=lib.macro,
        info=info,
        input=info["inputs"][0],
        output=info["outputs"][0],
        **extra,
    )
