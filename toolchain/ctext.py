"""Text from outside (model files, model_info.json, board files, file names) made safe for generated C.

Every Jinja environment that writes C, headers or platformio.ini passes each `{{ value }}`
through `c_safe` (as its `finalize`), so no string can close a comment, end a string
literal, start a preprocessor line or form a trigraph, wherever a template puts it. Code
the generator writes itself contains none of these, so it passes unchanged; code copied
from tinyrank's own sources that may hold comments (kernel prototypes) is wrapped in `CCode`.
"""

from __future__ import annotations

import re
from typing import Any

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_REPLACEMENTS = (
    ("\\", "\\\\"),  # first, so the escapes below stay single
    ('"', '\\"'),
    ("*/", "* /"),
    ("/*", "/ *"),
    ("//", "/ /"),
    ("??", "?\\?"),  # trigraphs (on under -std=c99): `??/` would be a backslash
)


class CCode(str):
    """C text written by tinyrank itself (never from a model or board file): `c_safe` leaves it as is."""


def c_safe(value: Any) -> Any:
    """`value` unchanged unless it is a string; a string loses line breaks and control characters
    (each becomes `?`) and has comment delimiters, quotes, backslashes and trigraphs neutralised,
    so it reads the same inside a C comment or a C string literal."""
    if not isinstance(value, str) or isinstance(value, CCode):
        return value
    text = _UNPRINTABLE.sub("?", value)
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    return text


def printable(text: str, limit: int = 80) -> str:
    """A name from a file as it may appear in an error message: one line, printable, bounded."""
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
