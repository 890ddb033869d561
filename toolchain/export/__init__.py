"""The export stage: a generated model packaged for other build systems.

- `library`: reading a codegen folder, the library name, the stored test sample, the shared tree
- `arduino`: an Arduino library zip (1.5 format) with an example sketch
- `platformio`: a PlatformIO library (library.json) that CMake and Zephyr projects can add too
- `render`: the Jinja templates in `firmware_templates/export/`; `cli`: `tinyrank export`
"""

from toolchain.export.arduino import export_arduino
from toolchain.export.library import model_library
from toolchain.export.platformio import export_platformio

__all__ = ["export_arduino", "export_platformio", "model_library"]
